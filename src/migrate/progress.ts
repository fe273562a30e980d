// What disque-migrate shows while it runs (a block redrawn in place on a
// terminal, a line every few seconds otherwise) and its summary at the end.
import type { Migrator } from './migrator.js';

const MAX_QUEUES_SHOWN = 8;

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function printable(name: string): string {
  // Queue names are bytes: keep the terminal safe.
  return name.replace(/[^\x20-\x7e]/g, '?');
}

export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private drawnLines = 0;
  /** [time, moved] samples for the recent rate. */
  private samples: [number, number][] = [];

  constructor(
    private readonly m: Migrator,
    private readonly out: NodeJS.WriteStream,
    private readonly dryRun: boolean,
  ) {}

  start(): void {
    const tty = this.out.isTTY === true;
    this.timer = setInterval(() => (tty ? this.redraw() : this.out.write(this.lines()[0] + '\n')), tty ? 250 : 5000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
  }

  /** A line above the progress block. */
  note(line: string): void {
    this.clear();
    this.out.write(`disque-migrate: ${line}\n`);
  }

  private moved(): number {
    const c = this.m.counts;
    return c.moved.queued + c.moved.delayed + c.moved.delivered + c.skipped;
  }

  /** Jobs per second over the last few seconds. */
  private rate(): number {
    const now = Date.now();
    const moved = this.moved();
    this.samples.push([now, moved]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > 3000) this.samples.shift();
    const [t0, m0] = this.samples[0]!;
    return now > t0 ? Math.round(((moved - m0) * 1000) / (now - t0)) : 0;
  }

  private lines(): string[] {
    const c = this.m.counts;
    const verb = this.dryRun ? 'would move' : 'moved';
    const out = [
      `${verb} ${this.moved()} of ${c.found} jobs found (queued ${c.moved.queued}, delayed ${c.moved.delayed}, ` +
        `delivered ${c.moved.delivered}, already on target ${c.skipped}) | ${this.rate()} jobs/s | errors ${c.errors} | ` +
        duration(Date.now() - this.m.startedAt),
    ];
    if (c.waiting > 0) out.push(`  ${c.waiting} jobs wait on the source: delivered to its consumers, or being added`);
    const queues = [...c.perQueue].sort((a, b) => b[1] - a[1]);
    for (const [q, n] of queues.slice(0, MAX_QUEUES_SHOWN)) out.push(`  ${pad(n, 9)}  ${printable(q)}`);
    if (queues.length > MAX_QUEUES_SHOWN) out.push(`  (${queues.length - MAX_QUEUES_SHOWN} more queues)`);
    return out;
  }

  private redraw(): void {
    this.clear();
    const lines = this.lines();
    this.out.write(lines.join('\n') + '\n');
    this.drawnLines = lines.length;
  }

  private clear(): void {
    if (this.drawnLines > 0 && this.out.isTTY) this.out.write(`\x1b[${this.drawnLines}A\x1b[J`);
    this.drawnLines = 0;
  }

  /** The summary printed at the end. */
  summary(): string {
    const c = this.m.counts;
    const ms = Date.now() - this.m.startedAt;
    const moved = c.moved.queued + c.moved.delayed + c.moved.delivered;
    const rate = ms > 0 ? Math.round(((moved + c.skipped) * 1000) / ms) : 0;
    const s: string[] = [];
    s.push(
      this.dryRun
        ? `Dry run: ${moved} of ${c.found} jobs found would be moved (nothing was changed), ${(ms / 1000).toFixed(1)} s`
        : `Moved ${moved} of ${c.found} jobs found in ${(ms / 1000).toFixed(1)} s (${rate} jobs/s), with their IDs`,
    );
    s.push(`  queued     ${pad(c.moved.queued, 9)}`);
    s.push(`  delayed    ${pad(c.moved.delayed, 9)}  (queued on the target when their delay ends)`);
    s.push(`  delivered  ${pad(c.moved.delivered, 9)}  (not acknowledged yet: queued again on the target at their re-queue time)`);
    if (!this.dryRun) s.push(`  already on the target: ${c.skipped} (removed from the source)`);
    if (c.acked > 0) s.push(`  acknowledged on the source (by its consumers), not moved: ${c.acked}`);
    if (c.expiring > 0) s.push(`  TTL ending, left to expire on the source: ${c.expiring}`);
    if (c.perQueue.size > 0) {
      s.push('Per queue:');
      for (const [q, n] of [...c.perQueue].sort((a, b) => b[1] - a[1])) s.push(`  ${pad(n, 9)}  ${printable(q)}`);
    }
    if (c.errors > 0) {
      s.push(`Errors: ${c.errors}`);
      for (const [msg, n] of c.errorMessages) s.push(`  ${pad(n, 6)} x ${msg}`);
    }
    if (this.m.left > 0) s.push(`Not moved, still on the source: ${this.m.left} jobs`);
    if (c.copiesLeft > 0) s.push(`Copies that could not be deleted from a source node: ${c.copiesLeft}`);
    if (this.m.interrupted) s.push('Interrupted before the end: run again to move the rest (jobs already on the target are skipped).');
    return s.join('\n') + '\n';
  }
}
