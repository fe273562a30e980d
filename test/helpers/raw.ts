// A raw TCP client for protocol-level tests: send exact bytes, read replies.
import net from 'node:net';

export class RawClient {
  private data = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.data = Buffer.concat([this.data, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Everything received so far as latin1. */
  get text(): string {
    return this.data.toString('latin1');
  }

  /** Waits until the received text satisfies `cond`, or the deadline passes. */
  async until(cond: (text: string) => boolean, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!cond(this.text)) {
      if (this.closed && !cond(this.text)) throw new Error(`connection closed; received: ${JSON.stringify(this.text)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; received: ${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.text;
  }

  /** Waits for the server to close the connection. */
  async closedByServer(timeoutMs = 5000): Promise<void> {
    await this.until(() => this.closed, timeoutMs).catch(() => {
      if (!this.closed) throw new Error('server did not close the connection');
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Encodes a command as a RESP multibulk request. */
export function resp(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}
