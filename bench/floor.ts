// The runtime's floor for the CPU-per-job rows (bench/cpu.ts): bare Node
// processes that exchange the messages a replicated job costs, of about the
// same sizes, and do nothing else. No RESP parsing, no job store, no
// timers: a frame is a 4-byte length, a type byte and a job number.
//
// Per job (R = replication level, peers = the next R-1 nodes on the ring):
//   client → entry   ADD   (the size of the ADDJOB request)
//   entry → peers    REPL  (a REPLJOB frame)     peers → entry  GOT
//   [journal: entry APPENDs a job record to Redis and waits for its reply]
//   entry → client   the ADDJOB reply, once every GOT (and the journal) is in
//   client → entry   GET, entry → client  the job
//   client → entry   ACK, entry → client  the reply at once
//   entry → peers    SETACK                       peers → entry  GOTACK
//   entry → peers    DELJOB once every GOTACK is in
//   [journal: each holder APPENDs an ack record and a deletion]
// Writes of one event-loop turn go out as one write per socket, as our
// server's do, through the same socket transport (src/protocol/transport.ts).
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { wrapSocket, type Transport } from '../src/protocol/transport.js';
import { freePort, findOnPath, startServer, type ServerHandle } from './servers.js';
import { procCpuMs, procUserSysMs } from './procstat.js';

export interface FloorPattern {
  nodes: number;
  replicate: number;
  journal: boolean;
  conns: number;
  bodySize: number;
}

/** Frame types. */
const ADD = 1;
const GET = 2;
const ACK = 3;
const REPLY = 4;
const REPL = 10;
const GOT = 11;
const SETACK = 12;
const GOTACK = 13;
const DEL = 14;

/** Bytes of each message, from our server's encodings with a 40-character job ID and node IDs. */
export function floorSizes(p: FloorPattern): Record<string, number> {
  const nodeList = 45 * p.replicate;
  return {
    add: 60 + p.bodySize, // *8 ADDJOB q body 0 REPLICATE R
    addReply: 44, // +D-...\r\n
    get: 45, // GETJOB NOHANG FROM q
    getReply: 75 + p.bodySize,
    ack: 65,
    ackReply: 4,
    repl: 150 + p.bodySize + nodeList,
    id: 100, // GOTJOB, SETACK, GOTACK, DELJOB: header + one ID
    journalJob: 170 + p.bodySize + nodeList,
    journalAck: 170 + nodeList,
    journalDel: 50,
  };
}

/** Frames out on a transport, gathered per event-loop turn. */
class Out {
  private pending: Buffer[] = [];
  private scheduled = false;
  constructor(readonly t: Transport) {}
  send(b: Buffer): void {
    this.pending.push(b);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }
  private readonly flush = (): void => {
    this.scheduled = false;
    const p = this.pending;
    this.pending = [];
    this.t.write(p.length === 1 ? p[0]! : Buffer.concat(p));
  };
}

function frame(type: number, job: number, size: number): Buffer {
  const b = Buffer.alloc(Math.max(9, size));
  b.writeUInt32BE(b.length - 4, 0);
  b[4] = type;
  b.writeUInt32BE(job, 5);
  return b;
}

/** Calls `f(type, job, out)` for each frame read from a socket. */
function framed(socket: net.Socket, f: (type: number, job: number, out: Out) => void): Out {
  const t = wrapSocket(socket);
  const out = new Out(t);
  let rest: Buffer | null = null;
  t.start(
    (d, n) => {
      let buf = d.subarray(0, n);
      if (rest !== null) {
        buf = Buffer.concat([rest, buf]);
        rest = null;
      }
      let p = 0;
      while (buf.length - p >= 9) {
        const len = buf.readUInt32BE(p);
        if (buf.length - p < 4 + len) break;
        f(buf[p + 4]!, buf.readUInt32BE(p + 5), out);
        p += 4 + len;
      }
      if (p < buf.length) rest = Buffer.from(buf.subarray(p));
    },
    () => {},
  );
  return out;
}

// ------------------------------------------------------------ node process

interface NodeConfig {
  port: number;
  peers: number[];
  replicate: number;
  journalPort: number;
  sizes: Record<string, number>;
}

/** A RESP APPEND to Redis per record; replies come back in order. */
class JournalLink {
  private readonly out: Out;
  private readonly waiting: (null | (() => void))[] = [];
  private readonly key: string;
  constructor(socket: net.Socket, port: number) {
    this.key = `floor:${port}`;
    const t = wrapSocket(socket);
    this.out = new Out(t);
    t.start(
      (d, n) => {
        for (let i = 0; i < n; i++) if (d[i] === 10) this.waiting.shift()?.();
      },
      () => {},
    );
  }
  append(size: number, then: null | (() => void)): void {
    const body = `*3\r\n$6\r\nAPPEND\r\n$${this.key.length}\r\n${this.key}\r\n$${size}\r\n${'x'.repeat(size)}\r\n`;
    this.out.send(Buffer.from(body, 'latin1'));
    this.waiting.push(then);
  }
}

async function nodeMain(cfg: NodeConfig): Promise<void> {
  const s = cfg.sizes;
  const connect = (port: number): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.setNoDelay(true);
      sock.pause();
      sock.once('connect', () => resolve(sock));
      sock.once('error', reject);
    });
  const journal = cfg.journalPort > 0 ? new JournalLink(await connect(cfg.journalPort), cfg.port) : null;
  // Bus: replies go back on the link a message came in on.
  const peers: Out[] = [];
  const adds = new Map<number, { out: Out; left: number }>();
  const acks = new Map<number, number>();
  const bus = net.createServer((sock) => {
    sock.setNoDelay(true);
    framed(sock, (type, job, out) => {
      switch (type) {
        case REPL:
          journal?.append(s.journalJob!, null);
          out.send(frame(GOT, job, s.id!));
          break;
        case SETACK:
          journal?.append(s.journalAck!, null);
          out.send(frame(GOTACK, job, s.id!));
          break;
        case DEL:
          journal?.append(s.journalDel!, null);
          break;
      }
    });
  });
  const onPeerReply = (type: number, job: number): void => {
    if (type === GOT) {
      const a = adds.get(job);
      if (a && --a.left === 0) {
        adds.delete(job);
        a.out.send(frame(REPLY, job, s.addReply!));
      }
    } else if (type === GOTACK) {
      const left = (acks.get(job) ?? 1) - 1;
      if (left > 0) acks.set(job, left);
      else {
        acks.delete(job);
        journal?.append(s.journalDel!, null);
        for (const p of peers) p.send(frame(DEL, job, s.id!));
      }
    }
  };
  const clients = net.createServer((sock) => {
    sock.setNoDelay(true);
    framed(sock, (type, job, out) => {
      if (type === ADD) {
        const a = { out, left: peers.length + (journal ? 1 : 0) };
        if (a.left === 0) {
          out.send(frame(REPLY, job, s.addReply!));
          return;
        }
        adds.set(job, a);
        for (const p of peers) p.send(frame(REPL, job, s.repl!));
        journal?.append(s.journalJob!, () => onPeerReply(GOT, job));
      } else if (type === GET) {
        out.send(frame(REPLY, job, s.getReply!));
      } else if (type === ACK) {
        out.send(frame(REPLY, job, s.ackReply!));
        journal?.append(s.journalAck!, null);
        if (peers.length === 0) journal?.append(s.journalDel!, null);
        else {
          acks.set(job, peers.length);
          for (const p of peers) p.send(frame(SETACK, job, s.id!));
        }
      }
    });
  });
  await new Promise<void>((r) => bus.listen(cfg.port + 10_000, '127.0.0.1', r));
  await new Promise<void>((r) => clients.listen(cfg.port, '127.0.0.1', r));
  process.send!('listening');
  // Links to the peers once every node listens.
  process.once('message', async () => {
    for (const port of cfg.peers) peers.push(framed(await connect(port + 10_000), onPeerReply));
    process.send!('linked');
  });
}

// ----------------------------------------------------------- orchestrator

export interface FloorResult {
  jobs: number;
  seconds: number;
  cpuMs: number;
  sysMs: number;
  journalCpuMs: number;
}

/** A client connection: ADD → GET → ACK, one request at a time. */
class FloorClient {
  done = 0;
  private running = false;
  private job = 0;
  private seq = 0;
  private step = 0;
  private out!: Out;
  private stopped: (() => void) | null = null;
  constructor(
    private readonly sizes: Record<string, number>,
    private readonly jobBase: number,
  ) {}
  async open(port: number): Promise<void> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const so = net.connect(port, '127.0.0.1');
      so.setNoDelay(true);
      so.pause();
      so.once('connect', () => resolve(so));
      so.once('error', reject);
    });
    this.out = framed(sock, () => this.next());
  }
  start(): Promise<void> {
    this.running = true;
    return new Promise((r) => {
      this.stopped = r;
      this.step = 0;
      this.next();
    });
  }
  stop(): void {
    this.running = false;
  }
  private next(): void {
    const s = this.sizes;
    if (this.step === 0) {
      if (!this.running) {
        this.stopped?.();
        return;
      }
      this.seq = (this.seq + 1) % 1_000_000;
      this.job = this.jobBase + this.seq;
      this.out.send(frame(ADD, this.job, s.add!));
      this.step = 1;
    } else if (this.step === 1) {
      this.out.send(frame(GET, this.job, s.get!));
      this.step = 2;
    } else if (this.step === 2) {
      this.out.send(frame(ACK, this.job, s.ack!));
      this.step = 3;
    } else {
      this.done++;
      this.step = 0;
      this.next();
    }
  }
}

const NODE_MAIN = fileURLToPath(import.meta.url);

export async function runFloor(p: FloorPattern, o: { seconds: number; warmupSeconds: number; basePort: number; ports: Set<number> }): Promise<FloorResult> {
  const sizes = floorSizes(p);
  const procs: ChildProcess[] = [];
  let redis: ServerHandle | null = null;
  const clients: FloorClient[] = [];
  try {
    if (p.journal) {
      const bin = findOnPath('redis-server');
      if (!bin) throw new Error('the floor of a persistence row needs redis-server');
      redis = await startServer('redis', { bin, port: await freePort(o.basePort, o.ports) });
    }
    const ports: number[] = [];
    for (let i = 0; i < p.nodes; i++) ports.push(await freePort(o.basePort, o.ports));
    for (let i = 0; i < p.nodes; i++) {
      const peers: number[] = [];
      for (let k = 1; k < p.replicate; k++) peers.push(ports[(i + k) % p.nodes]!);
      const cfg: NodeConfig = { port: ports[i]!, peers, replicate: p.replicate, journalPort: redis?.addr.port ?? 0, sizes };
      const child = fork(NODE_MAIN, ['floor-node', JSON.stringify(cfg)], { stdio: 'ignore' });
      procs.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (c) => reject(new Error(`floor node exited (${c})`)));
      });
    }
    for (const c of procs) {
      const linked = new Promise<void>((r) => c.once('message', () => r()));
      c.send('link');
      await linked;
    }
    for (let i = 0; i < p.conns; i++) {
      const c = new FloorClient(sizes, i * 1_000_000);
      await c.open(ports[i % p.nodes]!);
      clients.push(c);
    }
    const pids = procs.map((c) => c.pid!).concat(redis ? [redis.pid!] : []);
    const cpu = (): number => pids.reduce((s, pid) => s + (procCpuMs(pid) ?? 0), 0);
    const sys = (): number => pids.reduce((s, pid) => s + (procUserSysMs(pid)?.sys ?? 0), 0);
    const phase = async (seconds: number): Promise<number> => {
      for (const c of clients) c.done = 0;
      const runs = clients.map((c) => c.start());
      await new Promise((r) => setTimeout(r, seconds * 1000));
      for (const c of clients) c.stop();
      await Promise.all(runs);
      // The last DELJOBs and journal writes.
      await new Promise((r) => setTimeout(r, 200));
      return clients.reduce((s, c) => s + c.done, 0);
    };
    await phase(o.warmupSeconds);
    const c0 = cpu();
    const s0 = sys();
    const j0 = redis ? (procCpuMs(redis.pid!) ?? 0) : 0;
    const t0 = Date.now();
    const jobs = await phase(o.seconds);
    return {
      jobs,
      seconds: (Date.now() - t0) / 1000,
      cpuMs: cpu() - c0,
      sysMs: sys() - s0,
      journalCpuMs: redis ? (procCpuMs(redis.pid!) ?? 0) - j0 : 0,
    };
  } finally {
    for (const c of procs) c.kill('SIGKILL');
    await redis?.stop();
  }
}

if (process.argv[2] === 'floor-node') void nodeMain(JSON.parse(process.argv[3]!) as NodeConfig);
