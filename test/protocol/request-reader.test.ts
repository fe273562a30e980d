// The request reader on its own: which arguments come out as bytes, and the
// buffers a request spanning reads borrows.
import { describe, it, expect } from 'vitest';
import { RequestReader, BYTES_ARG_MIN, type ArgBytes } from '../../src/protocol/request.js';
import { largeBuffers } from '../../src/protocol/reply.js';
import { resp } from '../helpers/raw.js';

interface Seen {
  args: string[];
  /** Copies of the bytes arguments (the reader's views live only during the call). */
  bytes: (Buffer | undefined)[] | null;
}

function reader(): { r: RequestReader; seen: Seen[] } {
  const seen: Seen[] = [];
  const r = new RequestReader(
    {
      request: (args: string[], bytes: ArgBytes | null) => seen.push({ args, bytes: bytes && bytes.map((b) => b && Buffer.from(b)) }),
      protocolError: (m) => expect.fail(`protocol error ${m}`),
      overLimit: () => expect.fail('over limit'),
    },
    { maxQueryBuffer: 1 << 30, maxBulkLen: 512 << 20 },
  );
  return { r, seen };
}

/** Feeds `data` through one reused read buffer, in reads of `step` bytes, as the transport does. */
function feed(r: RequestReader, data: Buffer, step: number): void {
  const readBuffer = Buffer.alloc(step);
  for (let at = 0; at < data.length; at += step) {
    const n = data.copy(readBuffer, 0, at, Math.min(at + step, data.length));
    r.feed(readBuffer, n);
    readBuffer.fill(0xee); // what the next read would write over it
  }
}

describe('RequestReader', () => {
  it('gives arguments of BYTES_ARG_MIN bytes or more (past the command name) as bytes, the rest as strings, in request order', () => {
    const long = Buffer.alloc(BYTES_ARG_MIN, 0xfe);
    const short = Buffer.alloc(BYTES_ARG_MIN - 1, 0x41);
    for (const step of [7, 1000, 1 << 20]) {
      const { r, seen } = reader();
      feed(r, Buffer.concat([resp('PING', 'x'), resp('ADDJOB', 'q', long, '0'), resp('ADDJOB', 'q', short, '0'), resp('X'.repeat(2000))]), step);
      expect(seen.map((s) => s.args[0]!.slice(0, 6))).toEqual(['PING', 'ADDJOB', 'ADDJOB', 'XXXXXX']);
      expect(seen[0]!.bytes).toBeNull();
      expect(seen[1]!.args).toEqual(['ADDJOB', 'q', '', '0']);
      expect(seen[1]!.bytes![2]!.equals(long)).toBe(true);
      expect(seen[1]!.bytes![1]).toBeUndefined();
      expect(seen[2]!.bytes).toBeNull();
      expect(seen[2]!.args[2]).toBe(short.toString('latin1'));
      // The command name is always a string.
      expect(seen[3]!.args[0]).toBe('X'.repeat(2000));
    }
  });

  it('borrows a pooled buffer for a request over 256 KiB that spans reads, and gives it back once the request ran', () => {
    const body = Buffer.alloc(300 * 1024, 0x5a);
    const { r, seen } = reader();
    const idle = largeBuffers.idleBytes;
    const req = resp('ADDJOB', 'q', body, '0');
    feed(r, req, 64 * 1024);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.bytes![2]!.equals(body)).toBe(true);
    const back = largeBuffers.idleBytes;
    expect(back).toBeGreaterThan(idle);
    // The next such request takes the same buffer: nothing new is kept.
    feed(r, req, 64 * 1024);
    expect(seen).toHaveLength(2);
    expect(seen[1]!.bytes![2]!.equals(body)).toBe(true);
    expect(largeBuffers.idleBytes).toBe(back);
  });
});
