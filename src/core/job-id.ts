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
  return idBuf.toString('latin1', 0, JOB_ID_LEN);
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
