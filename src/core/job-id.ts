// Job IDs, in the reference's format (README, "Job IDs"):
//
//   D-dcb833cf-8YL1NT17e9+wsA/09NqxscQI-05a1
//   D- | first 8 hex of the node ID | 144 random bits, base64 | TTL in minutes
//
// The TTL field is 4 hex digits, odd for at-least-once jobs (RETRY > 0) and
// even for at-most-once jobs, so a node can tell the two apart from the ID
// alone when it has no copy of the job.
import { randomFillSync } from 'node:crypto';

export const JOB_ID_LEN = 40;

// Random bytes are drawn from the CSPRNG in large batches: one syscall per
// thousands of IDs.
const RANDOM_POOL_SIZE = 18 * 4096;
const randomPool = Buffer.allocUnsafe(RANDOM_POOL_SIZE);
let randomOffset = RANDOM_POOL_SIZE;
const idBuf = Buffer.allocUnsafe(JOB_ID_LEN);
const HEX = '0123456789abcdef';
const B64 = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 'latin1');

/**
 * The last ID generateJobId made, and its packed form (see packJobId): the
 * store takes a fresh ID without parsing it back. '' when it did not pack
 * (a node ID prefix that is not lowercase hex).
 */
export let generatedId = '';
export const generatedPacked = new Uint8Array(24);
/** The node ID whose prefix generatedPacked holds, and whether that prefix packs. */
let packedFor = '';
let prefixPacks = false;

export function generateJobId(nodeId: string, ttlSeconds: number, retry: number): string {
  if (randomOffset + 18 > RANDOM_POOL_SIZE) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  let ttl = Math.floor(ttlSeconds / 60);
  if (ttl > 65535) ttl = 65535;
  if (ttl < 0) ttl = 1;
  ttl = retry > 0 ? ttl | 1 : ttl & ~1;

  idBuf[0] = 0x44; // 'D'
  idBuf[1] = 0x2d; // '-'
  idBuf.write(nodeId, 2, 8, 'latin1');
  idBuf[10] = 0x2d;
  // 18 random bytes as 24 base64 characters, 3 bytes to 4 chars at a time.
  let o = 11;
  for (let r = randomOffset; r < randomOffset + 18; r += 3) {
    const b0 = randomPool[r]!, b1 = randomPool[r + 1]!, b2 = randomPool[r + 2]!;
    idBuf[o++] = B64[b0 >> 2]!;
    idBuf[o++] = B64[((b0 & 3) << 4) | (b1 >> 4)]!;
    idBuf[o++] = B64[((b1 & 15) << 2) | (b2 >> 6)]!;
    idBuf[o++] = B64[b2 & 63]!;
  }
  randomOffset += 18;
  idBuf[35] = 0x2d;
  idBuf[36] = HEX.charCodeAt((ttl >> 12) & 15);
  idBuf[37] = HEX.charCodeAt((ttl >> 8) & 15);
  idBuf[38] = HEX.charCodeAt((ttl >> 4) & 15);
  idBuf[39] = HEX.charCodeAt(ttl & 15);
  const id = idBuf.latin1Slice(0, JOB_ID_LEN);

  // The packed form, straight from the same bytes.
  if (nodeId !== packedFor) {
    packedFor = nodeId;
    prefixPacks = true;
    for (let i = 0; i < 4; i++) {
      const hi = hexAt(nodeId, 2 * i);
      const lo = hexAt(nodeId, 2 * i + 1);
      if ((hi | lo) < 0) prefixPacks = false;
      generatedPacked[i] = (hi << 4) | lo;
    }
  }
  if (prefixPacks) {
    for (let i = 0, r = randomOffset - 18; i < 18; i++, r++) generatedPacked[4 + i] = randomPool[r]!;
    generatedPacked[22] = ttl >> 8;
    generatedPacked[23] = ttl & 0xff;
    generatedId = id;
  } else {
    generatedId = '';
  }
  return id;
}

/** Checks length, prefix and separators, as the reference does. */
export function isValidJobId(id: string): boolean {
  return (
    id.length === JOB_ID_LEN &&
    id.charCodeAt(0) === 0x44 &&
    id.charCodeAt(1) === 0x2d &&
    id.charCodeAt(10) === 0x2d &&
    id.charCodeAt(35) === 0x2d
  );
}

/** The TTL in minutes encoded in the ID; invalid hex digits count as 0. */
export function ttlMinutesFromJobId(id: string): number {
  let v = 0;
  for (let i = 36; i < 40; i++) {
    const d = parseInt(id[i] ?? '', 16);
    v = (v << 4) | (Number.isNaN(d) ? 0 : d);
  }
  return v;
}

/** At-most-once jobs (RETRY 0) have an even TTL field. */
export function isAtMostOnceJobId(id: string): boolean {
  return (ttlMinutesFromJobId(id) & 1) === 0;
}

/** The 8-hex node prefix of an ID: where the job was created. */
export function jobIdNodePrefix(id: string): string {
  return id.slice(2, 10);
}

// ---------------------------------------------------------------- packing
//
// The store keeps IDs in the reference's canonical alphabet (lowercase hex
// node prefix and TTL, base64 random part) as the 24 bytes they encode:
// 4 for the node prefix, 18 random, 2 for the TTL. Any other 40-character
// ID a client or peer may send (the reference checks only length and
// separators) is kept as its 40 raw bytes instead.

/** Bytes of a packed canonical ID. */
export const PACKED_ID_LEN = 24;

const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) HEX_VALUE[HEX.charCodeAt(i)] = i;
const B64_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64[i]!] = i;

function hexAt(id: string, i: number): number {
  const c = id.charCodeAt(i);
  return c < 256 ? HEX_VALUE[c]! : -1;
}

function b64At(id: string, i: number): number {
  const c = id.charCodeAt(i);
  return c < 256 ? B64_VALUE[c]! : -1;
}

/**
 * Packs a valid ID (see isValidJobId) into out[off, off + 24). Returns false,
 * leaving out's bytes undefined, when the ID is not in the canonical alphabet.
 */
export function packJobId(id: string, out: Uint8Array, off: number): boolean {
  for (let i = 0; i < 4; i++) {
    const hi = hexAt(id, 2 + 2 * i);
    const lo = hexAt(id, 3 + 2 * i);
    if ((hi | lo) < 0) return false;
    out[off + i] = (hi << 4) | lo;
  }
  let o = off + 4;
  for (let c = 11; c < 35; c += 4) {
    const a = b64At(id, c);
    const b = b64At(id, c + 1);
    const d = b64At(id, c + 2);
    const e = b64At(id, c + 3);
    if ((a | b | d | e) < 0) return false;
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 15) << 4) | (d >> 2);
    out[o++] = ((d & 3) << 6) | e;
  }
  for (let i = 0; i < 2; i++) {
    const hi = hexAt(id, 36 + 2 * i);
    const lo = hexAt(id, 37 + 2 * i);
    if ((hi | lo) < 0) return false;
    out[off + 22 + i] = (hi << 4) | lo;
  }
  return true;
}

/** Writes the 40 characters of the ID packed at src[off] into out[pos] (as latin1 bytes). */
export function unpackJobId(src: Uint8Array, off: number, out: Uint8Array, pos: number): void {
  out[pos] = 0x44;
  out[pos + 1] = 0x2d;
  for (let i = 0; i < 4; i++) {
    const v = src[off + i]!;
    out[pos + 2 + 2 * i] = HEX.charCodeAt(v >> 4);
    out[pos + 3 + 2 * i] = HEX.charCodeAt(v & 15);
  }
  out[pos + 10] = 0x2d;
  let o = pos + 11;
  for (let s = off + 4; s < off + 22; s += 3) {
    const b0 = src[s]!, b1 = src[s + 1]!, b2 = src[s + 2]!;
    out[o++] = B64[b0 >> 2]!;
    out[o++] = B64[((b0 & 3) << 4) | (b1 >> 4)]!;
    out[o++] = B64[((b1 & 15) << 2) | (b2 >> 6)]!;
    out[o++] = B64[b2 & 63]!;
  }
  out[pos + 35] = 0x2d;
  for (let i = 0; i < 2; i++) {
    const v = src[off + 22 + i]!;
    out[pos + 36 + 2 * i] = HEX.charCodeAt(v >> 4);
    out[pos + 37 + 2 * i] = HEX.charCodeAt(v & 15);
  }
}
