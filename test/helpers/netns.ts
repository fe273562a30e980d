// A client that connects from an address other than loopback, without any
// real network: a network namespace joined to this one by a veth pair with
// link-local addresses (169.254.a.b/30). Needs root and iproute2 (as in
// CI); creating it fails the test with a clear message otherwise.
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';

interface Run {
  stdout: string;
  stderr: string;
  code: number;
}

function run(cmd: string, args: string[], timeoutMs = 15000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'latin1', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ stdout, stderr: stderr || (err ? err.message : ''), code });
    });
  });
}

async function ip(...args: string[]): Promise<string> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Sends raw bytes from inside the namespace, prints what came back and whether the server closed. */
const CLIENT = `
const net = require('node:net');
const [host, port, b64] = process.argv.slice(1);
let data = '';
const done = (how) => { process.stdout.write(JSON.stringify({ data, how })); process.exit(0); };
const s = net.connect(Number(port), host, () => s.write(Buffer.from(b64, 'base64')));
s.setEncoding('latin1');
s.on('data', (d) => { data += d; });
s.on('error', (e) => done('error ' + e.code));
s.on('close', () => done('closed'));
setTimeout(() => done('timeout'), 5000);
`;

export class NetNs {
  private constructor(
    readonly name: string,
    private readonly hostIf: string,
    /** This (the server's) side of the pair. */
    readonly hostAddr: string,
    /** The address clients in the namespace connect from. */
    readonly nsAddr: string,
  ) {}

  static async create(): Promise<NetNs> {
    const tag = `${process.pid.toString(36)}${randomInt(36 ** 3).toString(36)}`.slice(-8);
    const name = `disque-test-${tag}`;
    const hostIf = `dqh${tag}`;
    const nsIf = `dqn${tag}`;
    try {
      // A /30 no interface here uses yet (other test runs may hold one).
      const used = await ip('-4', '-o', 'addr', 'show');
      let prefix = '';
      for (let i = 0; i < 50 && prefix === ''; i++) {
        const a = randomInt(1, 255);
        const b = randomInt(0, 64) * 4;
        const p = `169.254.${a}.`;
        if (a === 169 || [0, 1, 2, 3].some((k) => used.includes(` ${p}${b + k}/`))) continue;
        prefix = `${p}${b}`;
      }
      if (prefix === '') throw new Error('no free 169.254.x.y/30 found');
      const [, , a, b] = prefix.split('.').map(Number);
      const hostAddr = `169.254.${a}.${b! + 1}`;
      const nsAddr = `169.254.${a}.${b! + 2}`;
      const ns = new NetNs(name, hostIf, hostAddr, nsAddr);
      try {
        await ip('netns', 'add', name);
        await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
        await ip('link', 'set', nsIf, 'netns', name);
        await ip('addr', 'add', `${hostAddr}/30`, 'dev', hostIf);
        await ip('link', 'set', hostIf, 'up');
        await ip('-n', name, 'addr', 'add', `${nsAddr}/30`, 'dev', nsIf);
        await ip('-n', name, 'link', 'set', nsIf, 'up');
        await ip('-n', name, 'link', 'set', 'lo', 'up');
      } catch (e) {
        await ns.remove();
        throw e;
      }
      return ns;
    } catch (e) {
      throw new Error(
        `could not set up a network namespace for a non-loopback client (these tests run as root with iproute2): ${(e as Error).message}`,
      );
    }
  }

  /**
   * Connects from the namespace to host:port, sends `bytes`, and returns what
   * the server sent until it closed the connection (how: 'closed'), or until
   * 5 s passed (how: 'timeout').
   */
  async send(host: string, port: number, bytes: Buffer): Promise<{ data: string; how: string }> {
    const r = await run('ip', ['netns', 'exec', this.name, process.execPath, '-e', CLIENT, host, String(port), bytes.toString('base64')]);
    if (r.code !== 0) throw new Error(`client in namespace ${this.name} failed: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as { data: string; how: string };
  }

  /** Removes the namespace and the pair (deleting either end deletes both). */
  async remove(): Promise<void> {
    await run('ip', ['link', 'del', this.hostIf]);
    await run('ip', ['netns', 'del', this.name]);
  }
}
