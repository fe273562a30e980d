// Reply buffers: replies larger than a connection's own buffer borrow a
// pooled buffer, which goes back to the pool once the bytes are out.
import { describe, it, expect } from 'vitest';
import { ReplyBuffer, largeBuffers, OWN_BUFFER_MAX } from '../../src/protocol/reply.js';

function body(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('ReplyBuffer with large replies', () => {
  it('writes a large bulk reply byte for byte, then reuses the pooled buffer', () => {
    const out = new ReplyBuffer();
    const b = body(OWN_BUFFER_MAX + 100, 1);
    const written: Buffer[] = [];
    out.status('OK');
    out.bulkBytes(b, 0, b.length);
    out.flushTo((data) => {
      written.push(Buffer.from(data));
      return true;
    });
    expect(written[0]!.toString('latin1')).toBe(`+OK\r\n$${b.length}\r\n${b.toString('latin1')}\r\n`);
    const idle = largeBuffers.idleBytes;
    expect(idle).toBeGreaterThanOrEqual(128 * 1024);
    // A second large reply takes the idle buffer instead of a new one.
    out.bulkBytes(b, 0, b.length);
    expect(largeBuffers.idleBytes).toBe(idle - 128 * 1024);
    out.flushTo(() => true);
    expect(largeBuffers.idleBytes).toBe(idle);
    // Small replies after it go to the connection's own buffer.
    out.ok();
    let small = '';
    out.flushTo((data) => {
      small = data.toString('latin1');
      return true;
    });
    expect(small).toBe('+OK\r\n');
    expect(largeBuffers.idleBytes).toBe(idle);
  });

  it('does not give a buffer back while the writer still holds it', () => {
    const out = new ReplyBuffer();
    const b = body(300 * 1024, 2);
    out.bulkBytes(b, 0, b.length);
    const before = largeBuffers.idleBytes;
    let release: (() => void) | null = null;
    let held: Buffer | null = null;
    out.flushTo((data, r) => {
      held = data;
      release = r;
      return false; // the transport keeps the bytes until the kernel took them
    });
    expect(release).not.toBeNull();
    // Another reply meanwhile must not overwrite the held bytes.
    out.bulkBytes(body(300 * 1024, 3), 0, 300 * 1024);
    out.flushTo(() => true);
    expect(held!.subarray(held!.indexOf(0x0a) + 1, held!.length - 2).equals(b)).toBe(true);
    const idle = largeBuffers.idleBytes;
    release!();
    expect(largeBuffers.idleBytes).toBe(idle + 512 * 1024);
    expect(idle).toBeGreaterThanOrEqual(before);
  });

  it('take() copies a large reply out and keeps the pool whole', () => {
    const out = new ReplyBuffer();
    const b = body(200 * 1024, 4);
    out.bulkBytes(b, 0, b.length);
    const copy = out.take();
    expect(copy.subarray(copy.indexOf(0x0a) + 1, copy.length - 2).equals(b)).toBe(true);
    expect(out.empty).toBe(true);
  });
});
