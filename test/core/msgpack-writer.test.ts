// MsgWriter writes plain msgpack: what it writes, msgpackr reads back as the same value.
import { describe, it, expect } from 'vitest';
import { Packr } from 'msgpackr';
import { MsgWriter } from '../../src/core/msgpack-writer.js';

const unpackr = new Packr({ useRecords: false, mapsAsObjects: true });

function roundTrip(write: (w: MsgWriter) => void): unknown {
  const w = new MsgWriter(4); // small, so writes must grow it
  write(w);
  return unpackr.unpack(w.copy());
}

// Around the fix/8-bit header limits and the short-string copy loop.
const LENGTHS = [0, 1, 31, 32, 63, 64, 65, 255, 256, 70_000];

describe('MsgWriter', () => {
  it('writes strings as msgpack strings: ASCII, non-ASCII anywhere, every header size', () => {
    for (const n of LENGTHS) {
      const ascii = 'a'.repeat(n);
      expect(roundTrip((w) => w.string(ascii))).toBe(ascii);
      if (n === 0) continue;
      for (const s of [`${'b'.repeat(n - 1)}é`, `€${'c'.repeat(n - 1)}`, `${'d'.repeat(n >> 1)}\u{1f600}`]) {
        expect(roundTrip((w) => w.string(s))).toBe(s);
      }
    }
  });

  it('writes latin1 strings as byte strings, byte for byte', () => {
    for (const n of LENGTHS) {
      const s = Array.from({ length: n }, (_, i) => String.fromCharCode(i % 256)).join('');
      const got = roundTrip((w) => w.latin1Bytes(s)) as Buffer;
      expect(Buffer.isBuffer(got)).toBe(true);
      expect(got.equals(Buffer.from(s, 'latin1'))).toBe(true);
    }
  });

  it('keeps values written before and after a string that is not ASCII', () => {
    expect(
      roundTrip((w) => {
        w.arrayHeader(3);
        w.number(7);
        w.string('x'.repeat(40) + 'ü');
        w.string('D-'.padEnd(40, 'z'));
      }),
    ).toEqual([7, 'x'.repeat(40) + 'ü', 'D-'.padEnd(40, 'z')]);
  });
});
