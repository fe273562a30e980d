// The sizes bench's reply skipper: finds where each reply ends, whatever the
// reads' boundaries, without parsing the bodies.
import { describe, it, expect } from 'vitest';
import { ReplySkipper } from '../../bench/sizes.js';

describe('ReplySkipper', () => {
  it('counts nested replies with large bulks split at every byte, and error replies', () => {
    const body = 'b'.repeat(70000);
    const stream = Buffer.from(
      `+OK\r\n*1\r\n*3\r\n$1\r\nq\r\n$2\r\nid\r\n$${body.length}\r\n${body}\r\n*-1\r\n-ERR no\r\n$-1\r\n*0\r\n:5\r\n`,
      'latin1',
    );
    for (const step of [1, 7, 4096, stream.length]) {
      const s = new ReplySkipper();
      const seen: boolean[] = [];
      s.onReply = (error) => seen.push(error);
      for (let i = 0; i < stream.length; i += step) s.feed(stream.subarray(i, i + step));
      expect(seen, `reads of ${step} bytes`).toEqual([false, false, false, true, false, false, false]);
    }
  });
});
