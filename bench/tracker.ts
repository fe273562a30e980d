// Job bodies and the lost/duplicate check.
//
// Every produced body carries who produced it and a per-producer sequence
// number at fixed offsets:  J<pid:6 digits>:<seq:10 digits>:xxxx...  padded to
// the body size. A consumer reads the two numbers back without allocating and
// counts each (pid, seq) in a per-producer byte array. At the end, a job whose
// ADDJOB got a job id but was never seen is lost; one seen twice is duplicated.

export const PID_DIGITS = 6;
export const SEQ_DIGITS = 10;
const SEQ_OFFSET = 1 + PID_DIGITS + 1;
export const MIN_BODY = SEQ_OFFSET + SEQ_DIGITS + 1;

/** Body for (pid, seq) as a latin1 string; used for templates and slow paths. */
export function makeBody(pid: number, seq: number, size: number): string {
  const head = `J${String(pid).padStart(PID_DIGITS, '0')}:${String(seq).padStart(SEQ_DIGITS, '0')}:`;
  return head + 'x'.repeat(Math.max(0, size - head.length));
}

/** Offset of the seq digits inside a body. */
export const seqOffsetInBody = SEQ_OFFSET;

/** Writes `value` as `width` zero-padded ASCII digits at buf[off..off+width). */
export function writeDigits(buf: Buffer, off: number, value: number, width: number): void {
  for (let i = off + width - 1; i >= off; i--) {
    const d = value % 10;
    buf[i] = 48 + d;
    value = (value - d) / 10;
  }
}

export interface ProducedData {
  pid: number;
  /** Seqs 0..n-1 were sent and answered. */
  n: number;
  /** Seqs among them whose ADDJOB got an error reply (not expected back). */
  failed: number[];
}

export interface SeenData {
  pid: number;
  counts: Uint8Array;
}

export interface TrackerData {
  produced: ProducedData[];
  seen: SeenData[];
  foreign: number;
}

export interface Verification {
  /** ADDJOBs (or LPUSHes) that succeeded: jobs we expect to get back exactly once. */
  expected: number;
  /** Distinct expected jobs seen by consumers (during the run or the final drain). */
  received: number;
  lost: number;
  duplicated: number;
  /** Bodies seen that no successful producer accounts for (failed ADDJOB that was queued anyway, or junk). */
  unexpected: number;
}

export class Tracker {
  private readonly produced = new Map<number, ProducedData>();
  private readonly seen = new Map<number, Uint8Array>();
  foreign = 0;

  addProduced(p: ProducedData): void {
    const cur = this.produced.get(p.pid);
    if (cur) throw new Error(`producer ${p.pid} reported twice`);
    this.produced.set(p.pid, { pid: p.pid, n: p.n, failed: p.failed.slice() });
  }

  /** Counts one received body. Hot path: no allocation unless a new producer shows up. */
  markSeen(body: string): void {
    if (body.length < MIN_BODY || body.charCodeAt(0) !== 74 /* J */) {
      this.foreign++;
      return;
    }
    let pid = 0;
    for (let i = 1; i <= PID_DIGITS; i++) pid = pid * 10 + body.charCodeAt(i) - 48;
    let seq = 0;
    for (let i = SEQ_OFFSET; i < SEQ_OFFSET + SEQ_DIGITS; i++) seq = seq * 10 + body.charCodeAt(i) - 48;
    let arr = this.seen.get(pid);
    if (arr === undefined || seq >= arr.length) arr = this.grow(pid, arr, seq);
    if (arr[seq]! < 255) arr[seq]!++;
  }

  private grow(pid: number, arr: Uint8Array | undefined, seq: number): Uint8Array {
    let size = arr ? arr.length : 1024;
    while (size <= seq) size *= 2;
    const n = new Uint8Array(size);
    if (arr) n.set(arr);
    this.seen.set(pid, n);
    return n;
  }

  toData(): TrackerData {
    return {
      produced: [...this.produced.values()],
      seen: [...this.seen.entries()].map(([pid, counts]) => ({ pid, counts })),
      foreign: this.foreign,
    };
  }

  merge(d: TrackerData): void {
    for (const p of d.produced) this.addProduced(p);
    for (const s of d.seen) {
      let arr = this.seen.get(s.pid);
      if (arr === undefined || arr.length < s.counts.length) arr = this.grow(s.pid, arr, s.counts.length - 1);
      for (let i = 0; i < s.counts.length; i++) arr[i] = Math.min(255, arr[i]! + s.counts[i]!);
    }
    this.foreign += d.foreign;
  }

  verify(): Verification {
    let expected = 0;
    let received = 0;
    let lost = 0;
    let duplicated = 0;
    let unexpected = this.foreign;
    for (const [pid, p] of this.produced) {
      const counts = this.seen.get(pid) ?? new Uint8Array(0);
      const failed = new Set(p.failed);
      for (let s = 0; s < Math.max(p.n, counts.length); s++) {
        const c = counts[s] ?? 0;
        if (s >= p.n || failed.has(s)) {
          if (c > 0) unexpected += c;
          continue;
        }
        expected++;
        if (c === 0) lost++;
        else {
          received++;
          if (c > 1) duplicated += c - 1;
        }
      }
    }
    for (const [pid, counts] of this.seen) {
      if (this.produced.has(pid)) continue;
      for (const c of counts) unexpected += c;
    }
    return { expected, received, lost, duplicated, unexpected };
  }
}
