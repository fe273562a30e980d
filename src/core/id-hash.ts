// The hash of job IDs for the index (job-index.ts): HalfSipHash-1-3, the
// 32-bit member of the SipHash family, keyed with random bits drawn at
// start-up. It covers the whole ID, and without the key nobody can choose
// IDs that land in one chain: clients name the IDs of ACKJOB's dummy acks,
// and a chain of thousands would make every lookup a walk.
import { randomFillSync } from 'node:crypto';

const key = new Uint32Array(2);
randomFillSync(key);
const K0 = key[0]! | 0;
const K1 = key[1]! | 0;

// State of the hash being computed (module-level: hashing never nests).
let v0 = 0;
let v1 = 0;
let v2 = 0;
let v3 = 0;

function round(): void {
  v0 = (v0 + v1) | 0;
  v1 = (v1 << 5) | (v1 >>> 27);
  v1 ^= v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = (v3 << 8) | (v3 >>> 24);
  v3 ^= v2;
  v0 = (v0 + v3) | 0;
  v3 = (v3 << 7) | (v3 >>> 25);
  v3 ^= v0;
  v2 = (v2 + v1) | 0;
  v1 = (v1 << 13) | (v1 >>> 19);
  v1 ^= v2;
  v2 = (v2 << 16) | (v2 >>> 16);
}

function begin(): void {
  v0 = K0;
  v1 = K1;
  v2 = 0x6c796765 ^ K0;
  v3 = 0x74656462 ^ K1;
}

function word(m: number): void {
  v3 ^= m;
  round();
  v0 ^= m;
}

function end(bytes: number): number {
  word(bytes << 24);
  v2 ^= 0xff;
  round();
  round();
  round();
  return (v1 ^ v3) >>> 0;
}

/** Hash of `n` 32-bit words from words[from]. */
export function hashWords(words: Uint32Array, from: number, n: number): number {
  begin();
  for (let i = 0; i < n; i++) word(words[from + i]! | 0);
  return end(n * 4);
}

/** Hash of the first `n` bytes (a multiple of 4) of bytes[from], or of a latin1 string's chars when given one. */
export function hashBytes(src: Uint8Array | string, from: number, n: number): number {
  begin();
  if (typeof src === 'string') {
    for (let i = from; i < from + n; i += 4) {
      word((src.charCodeAt(i) & 0xff) | ((src.charCodeAt(i + 1) & 0xff) << 8) | ((src.charCodeAt(i + 2) & 0xff) << 16) | ((src.charCodeAt(i + 3) & 0xff) << 24));
    }
  } else {
    for (let i = from; i < from + n; i += 4) word(src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24));
  }
  return end(n);
}
