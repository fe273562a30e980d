// The bytes of a /metrics answer, written straight into one growing Buffer
// (see metrics.ts).

/**
 * Text written straight into one growing Buffer: building the per-queue
 * lines as JS strings left a 3.5 MB rope of 280,000 pieces for every
 * scrape of 10,000 queues, and flattening it cost more than writing it.
 */
export class ExpositionWriter {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A string of ASCII characters only (names, help texts, numbers). */
  ascii(s: string): void {
    this.ensure(s.length);
    this.pos += this.buf.latin1Write(s, this.pos, s.length);
  }

  utf8(s: string): void {
    this.ensure(s.length * 3);
    this.pos += this.buf.utf8Write(s, this.pos);
  }

  /** Bytes (TypedArray.set: a copy without Buffer.copy's argument handling). */
  bytes(b: Buffer): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  number(v: number): void {
    if (v >= 0 && v < 1e15 && Number.isInteger(v)) {
      this.ensure(16);
      const buf = this.buf;
      if (v < 10) {
        buf[this.pos++] = 48 + v;
        return;
      }
      let digits = 0;
      for (let x = v; x > 0; x = Math.floor(x / 10)) digits++;
      let p = this.pos + digits - 1;
      for (let x = v; x > 0; x = Math.floor(x / 10)) buf[p--] = 48 + (x % 10);
      this.pos += digits;
    } else {
      this.ascii(String(v));
    }
  }

  newline(): void {
    this.ensure(1);
    this.buf[this.pos++] = 10;
  }

  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
