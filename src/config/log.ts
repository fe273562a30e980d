// Log lines in the reference's format: "pid:M 23 Nov 06:18:00.123 * text",
// where the mark is . debug, - verbose, * notice, # warning. Lines go to
// standard output, or are appended to `logfile`, filtered by `loglevel`.
import { openSync, writeSync, closeSync } from 'node:fs';

export const LOG_LEVELS = ['debug', 'verbose', 'notice', 'warning'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const MARKS = ['.', '-', '*', '#'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** limited(): lines of one kind written at once before the rate applies. */
export const LIMITED_BURST = 10;
/** limited(): then one line of the kind per this many milliseconds. */
export const LIMITED_EVERY_MS = 6000;

export class Logger {
  private level = 2;
  private fd: number | null = null;
  private file = '';
  /** limited(): per kind, lines that may be written now and lines left out since the last one. */
  private readonly limits = new Map<string, { tokens: number; at: number; skipped: number }>();

  /** `now` is only for tests of limited(). */
  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Whether verbose lines are written: per-job messages check it first, so
   * their text (and the job's ID string) is not built for nothing.
   */
  verboseOn = false;

  setLevel(level: string): void {
    const i = LOG_LEVELS.indexOf(level as LogLevel);
    if (i >= 0) this.level = i;
    this.verboseOn = this.level <= 1;
  }

  /** '' logs to standard output. */
  setFile(file: string): void {
    if (file === this.file) return;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = file === '' ? null : openSync(file, 'a');
    this.file = file;
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.level;
  }

  debug(msg: string): void {
    this.write(0, msg);
  }
  verbose(msg: string): void {
    this.write(1, msg);
  }
  notice(msg: string): void {
    this.write(2, msg);
  }
  warning(msg: string): void {
    this.write(3, msg);
  }

  /**
   * A line that someone outside can cause at will (a wrong password, a
   * refused connection): up to LIMITED_BURST lines of one `kind` at once,
   * then one per LIMITED_EVERY_MS, so guessing passwords in a loop cannot
   * fill the disk. The next line written says how many were left out.
   * `kind` must come from a fixed set (it keys a map).
   */
  limited(level: LogLevel, kind: string, msg: string): void {
    const lv = LOG_LEVELS.indexOf(level);
    if (lv < this.level) return;
    const now = this.now();
    let l = this.limits.get(kind);
    if (l === undefined) this.limits.set(kind, (l = { tokens: LIMITED_BURST, at: now, skipped: 0 }));
    l.tokens = Math.min(LIMITED_BURST, l.tokens + (now - l.at) / LIMITED_EVERY_MS);
    l.at = now;
    if (l.tokens < 1) {
      l.skipped++;
      return;
    }
    l.tokens--;
    const more = l.skipped > 0 ? ` (${l.skipped} more like this not logged)` : '';
    l.skipped = 0;
    this.write(lv, msg + more);
  }

  private write(level: number, msg: string): void {
    if (level < this.level) return;
    const d = new Date();
    const ts =
      `${String(d.getDate()).padStart(2, '0')} ${MONTHS[d.getMonth()]} ` +
      `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:` +
      `${String(d.getSeconds()).padStart(2, '0')}.${String(d.getMilliseconds()).padStart(3, '0')}`;
    const line = `${process.pid}:M ${ts} ${MARKS[level]} ${msg}\n`;
    try {
      writeSync(this.fd ?? 1, line);
    } catch {
      // A full disk or closed stdout must not take the server down.
    }
  }
}
