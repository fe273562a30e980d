// GET /metrics: the Prometheus text format. Everything is read when
// Prometheus scrapes, from counters the node keeps anyway (plain numbers
// and typed arrays incremented where things happen: the queues and
// JobStore.totals in src/core, each command's Log2Histogram next to its
// call count, the bus's per-type counts in src/cluster/links.ts): a node
// nobody scrapes does no work for metrics.
//
// prom-client holds the node-wide gauges and counters (collect() reads the
// node at scrape time). Written here directly: the per-queue families (with
// 10,000 queues they are 70,000 lines, and prom-client's per-value label
// handling took several times the 50 ms a scrape may take), and the
// histograms, whose counts are Log2Histograms prom-client cannot be handed.
import { Registry, Gauge, Counter } from 'prom-client';
import type { HttpHost } from './host.js';
import type { Log2Histogram } from '../core/histogram.js';
import { pausedStateName, type Queue } from '../core/queue.js';
import { JOB_STATE_NAMES } from '../core/job.js';
import { RATE, CONCURRENCY } from '../core/policy.js';
import { fromWire } from './names.js';
import { ExpositionWriter } from './exposition-writer.js';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Histogram bounds exported, as powers of two of the recorded unit (le = 2^k units). */
const MICROSECOND_POWERS = [3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]; // 8 us to 8.4 s
const MILLISECOND_POWERS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]; // 1 ms to 16 s
const PAUSED_VALUE = { none: 0, in: 1, out: 2, all: 3 } as const;
const NODE_STATES = ['ok', 'fail?', 'fail', 'leaving', 'handshake', 'noaddr'] as const;

interface HistogramSource {
  /** Label pairs, formatted (`command="addjob"`), or ''. */
  labels: string;
  h: Log2Histogram;
}

/** A histogram family from Log2Histograms; `perSecond`: recorded units in a second. */
function histogram(name: string, help: string, perSecond: number, powers: number[], sources: HistogramSource[]): string {
  let s = `# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
  for (const { labels, h } of sources) {
    const pre = labels === '' ? '' : `${labels},`;
    for (const k of powers) s += `${name}_bucket{${pre}le="${2 ** k / perSecond}"} ${h.below(k)}\n`;
    s += `${name}_bucket{${pre}le="+Inf"} ${h.count}\n`;
    const braces = labels === '' ? '' : `{${labels}}`;
    s += `${name}_sum${braces} ${h.sum / perSecond}\n${name}_count${braces} ${h.count}\n`;
  }
  return s;
}

export class Metrics {
  private readonly registry = new Registry();

  constructor(private readonly host: HttpHost) {
    const reg = [this.registry];
    const store = host.store;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: reg, collect() { this.set(read()); } });
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers: reg, collect() { this.reset(); this.inc(read()); } });

    gauge('disque_up', 'Always 1: the node answered the scrape.', () => 1);
    gauge('disque_uptime_seconds', 'Seconds since the node started.', () => host.uptimeSeconds);
    gauge('disque_loading', '1 while persisted jobs are being loaded (commands answer -LOADING).', () => (host.loading ? 1 : 0));
    new Gauge({
      name: 'disque_jobs',
      help: 'Jobs on this node by state.',
      labelNames: ['state'],
      registers: reg,
      collect() {
        const by = store.jobsByState();
        JOB_STATE_NAMES.forEach((state, i) => this.set({ state }, by[i] ?? 0));
      },
    });
    gauge('disque_queues', 'Queues on this node.', () => store.queueCount);
    counter('disque_jobs_added_total', 'New jobs queued on this node.', () => store.totals.added);
    counter('disque_jobs_delivered_total', 'Jobs delivered to consumers by this node.', () => store.totals.delivered);
    counter('disque_jobs_acked_total', 'Jobs acknowledged (ACKJOB, FASTACK) by clients of this node.', () => store.totals.acked);
    counter('disque_jobs_nacked_total', 'NACKs of jobs queued again on this node.', () => store.totals.nacked);
    gauge('disque_memory_used_bytes', 'Memory of jobs and queues (INFO used_memory), what maxmemory limits.', () => store.usedMemory);
    gauge('disque_memory_max_bytes', 'maxmemory.', () => store.maxmemory);
    gauge('disque_clients_connected', 'Connected clients.', () => host.clientsConnected);
    gauge('disque_clients_blocked', 'Clients blocked in GETJOB.', () => store.blockedCount);
    counter('disque_commands_processed_total', 'Commands run (CONFIG RESETSTAT resets it).', () => host.commandsProcessed);
    counter('disque_connections_received_total', 'Client connections accepted (CONFIG RESETSTAT resets it).', () => host.connectionsReceived);

    new Gauge({
      name: 'disque_cluster_nodes',
      help: 'Nodes this node knows, myself included, by state.',
      labelNames: ['state'],
      registers: reg,
      collect() {
        const count = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
        for (const p of host.peers()) count.set(p.state, (count.get(p.state) ?? 0) + 1);
        for (const [state, n] of count) this.set({ state }, n);
      },
    });
    gauge('disque_cluster_reachable_nodes', 'Other nodes reachable now (INFO cluster_reachable_nodes).', () => host.reachablePeers);
    const bus = (name: string, help: string, pick: (m: { received: number; sent: number }) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['type'],
        registers: reg,
        collect() {
          this.reset();
          for (const m of host.busMessages()) if (pick(m) > 0) this.inc({ type: m.type }, pick(m));
        },
      });
    bus('disque_bus_messages_received_total', 'Cluster bus messages received, by type (a batch of job messages counts once).', (m) => m.received);
    bus('disque_bus_messages_sent_total', 'Cluster bus messages sent, by type (a batch of job messages counts once).', (m) => m.sent);
    counter('disque_replication_timeouts_total', 'ADDJOB clients answered -NOREPL on timeout.', () => host.replicationWait().timeouts);

    const persistence = () => host.persistence();
    gauge('disque_persistence_enabled', '1 with appendonly yes.', () => (persistence().enabled ? 1 : 0));
    gauge('disque_persistence_misconf', '1 while writes to Redis fail (write commands answer -MISCONF).', () => (persistence().misconf ? 1 : 0));
    gauge('disque_persistence_journal_backlog_records', 'Journal records captured and not yet sent to Redis.', () => persistence().backlog);
    gauge('disque_persistence_journal_writes_in_flight', 'Journal writes sent and not yet confirmed by Redis.', () => persistence().writesInFlight);
    gauge('disque_persistence_journal_bytes', 'Bytes of the journal in Redis since the last snapshot.', () => persistence().journalBytes);
    gauge('disque_persistence_last_snapshot_timestamp_seconds', 'Unix time of the last snapshot (0: none yet).', () => persistence().lastSnapshotTime / 1000);
    gauge('disque_persistence_last_snapshot_bytes', 'Size of the last snapshot.', () => persistence().lastSnapshotBytes);
    gauge('disque_persistence_last_snapshot_duration_seconds', 'Time the last snapshot took to write (-1: none yet).', () => {
      const ms = persistence().lastSnapshotMs;
      return ms < 0 ? -1 : ms / 1000;
    });

    gauge('process_resident_memory_bytes', 'Resident memory of the process.', () => process.memoryUsage.rss());
    gauge('nodejs_heap_used_bytes', 'V8 heap in use (jobs are held off the heap).', () => process.memoryUsage().heapUsed);
    counter('process_cpu_seconds_total', 'User and system CPU time of the process.', () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    });
  }

  /** Size of the last exposition: the next one's buffer starts there. */
  private lastSize = 64 * 1024;

  /** The whole exposition, as the bytes to send. */
  async exposition(): Promise<Buffer> {
    const common = await this.registry.metrics();
    const w = new ExpositionWriter(this.lastSize + 4096);
    w.ascii(common);
    w.ascii(this.histograms());
    this.queueFamilies(w);
    this.lastSize = w.pos;
    return w.result();
  }

  private histograms(): string {
    const host = this.host;
    const commands: HistogramSource[] = [];
    for (const c of host.commandStats()) if (c.latency.count > 0) commands.push({ labels: `command="${escapeLabel(c.name)}"`, h: c.latency });
    return (
      histogram('disque_command_duration_seconds', 'Time commands took to run, by command (commands run at least once).', 1e6, MICROSECOND_POWERS, commands) +
      histogram('disque_replication_wait_seconds', 'Time ADDJOB clients waited until their job reached its replication level.', 1e3, MILLISECOND_POWERS, [
        { labels: '', h: host.replicationWait().waitMs },
      ])
    );
  }

  /**
   * The per-queue families, written as bytes (see the header): each queue's
   * label is encoded once, then copied into every family's line.
   */
  private queueFamilies(w: ExpositionWriter): void {
    const store = this.host.store;
    const queues = store.allQueues();
    const n = queues.length;
    const arena = new ExpositionWriter(n * 24 + 64);
    const ends = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      arena.ascii('{queue="');
      arena.utf8(escapeLabel(fromWire(queues[i]!.name)));
      arena.ascii('"} ');
      ends[i] = arena.pos;
    }
    const labels = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) labels[i] = arena.buf.subarray(i === 0 ? 0 : ends[i - 1], ends[i]);
    const family = (name: string, type: 'gauge' | 'counter', help: string, value: (q: Queue) => number): void => {
      w.ascii(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`);
      const nameBytes = Buffer.from(name, 'latin1');
      for (let i = 0; i < n; i++) {
        w.bytes(nameBytes);
        w.bytes(labels[i]!);
        w.number(value(queues[i]!));
        w.newline();
      }
    };
    family('disque_queue_length', 'gauge', 'Jobs queued, by queue.', (q) => q.length);
    family('disque_queue_jobs_added_total', 'counter', 'New jobs queued, by queue.', (q) => q.added);
    family('disque_queue_jobs_delivered_total', 'counter', 'Jobs delivered to consumers, by queue (QSTAT jobs-out).', (q) => q.jobsOut);
    family('disque_queue_jobs_acked_total', 'counter', 'Jobs acknowledged by clients of this node, by queue.', (q) => q.acked);
    family('disque_queue_jobs_nacked_total', 'counter', 'NACKs, by queue.', (q) => q.nacked);
    const now = store.clock.now();
    family('disque_queue_oldest_job_age_seconds', 'gauge', 'Age of the oldest queued job, by queue (0 when empty).', (q) => {
      const ctime = store.oldestJobCtime(q);
      return ctime < 0 ? 0 : Math.max(0, now - ctime) / 1000;
    });
    family('disque_queue_paused', 'gauge', 'Paused state, by queue: 0 none, 1 in, 2 out, 3 all.', (q) => PAUSED_VALUE[pausedStateName(q.flags)]);
    this.scheduledAndPolicies(w);
  }

  /**
   * Jobs scheduled for later (ADDJOB DELAY, NACK DELAY) by queue, with
   * every queue that has some (a queue may hold nothing else yet), and the
   * QPOLICY families of queues with a policy.
   */
  private scheduledAndPolicies(w: ExpositionWriter): void {
    const store = this.host.store;
    const delayed = new Map<string, number>();
    for (const q of store.allQueues()) delayed.set(q.name, 0);
    for (const [name, n] of store.scheduledQueues()) delayed.set(name, n);
    const label = (name: string) => `queue="${escapeLabel(fromWire(name))}"`;
    let s = '# HELP disque_queue_delayed Jobs scheduled to be queued later (ADDJOB DELAY, NACK DELAY), by queue.\n# TYPE disque_queue_delayed gauge\n';
    for (const [name, n] of delayed) s += `disque_queue_delayed{${label(name)}} ${n}\n`;
    w.utf8(s);
    const policies = [...store.policies.all()];
    if (policies.length === 0) return;
    const now = store.clock.now();
    const kinds = [
      ['rate', RATE],
      ['concurrency', CONCURRENCY],
    ] as const;
    s = '# HELP disque_queue_policy_held_total Deliveries held back by the queue\'s QPOLICY on this node, by queue and limit.\n# TYPE disque_queue_policy_held_total counter\n';
    for (const p of policies) for (const [k, i] of kinds) if (p.has(i)) s += `disque_queue_policy_held_total{${label(p.queue)},policy="${k}"} ${p.held[i]}\n`;
    s += '# HELP disque_queue_policy_limit The QPOLICY limit, by queue and limit (rate: jobs per window).\n# TYPE disque_queue_policy_limit gauge\n';
    for (const p of policies) for (const [k, i] of kinds) if (p.has(i)) s += `disque_queue_policy_limit{${label(p.queue)},policy="${k}"} ${p.limit(i)}\n`;
    s += '# HELP disque_queue_policy_share This node\'s share of the QPOLICY limit, by queue and limit.\n# TYPE disque_queue_policy_share gauge\n';
    for (const p of policies) for (const [k, i] of kinds) if (p.has(i)) s += `disque_queue_policy_share{${label(p.queue)},policy="${k}"} ${p.share[i]}\n`;
    s += '# HELP disque_queue_policy_used What this node uses of its share: deliveries in the window (rate), jobs in flight (concurrency).\n# TYPE disque_queue_policy_used gauge\n';
    for (const p of policies) for (const [k, i] of kinds) if (p.has(i)) s += `disque_queue_policy_used{${label(p.queue)},policy="${k}"} ${p.usage(i, now)}\n`;
    w.utf8(s);
  }
}

/** A label value in the text format: backslash, double quote and newline escaped. */
function escapeLabel(s: string): string {
  return /[\\"\n]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : s;
}
