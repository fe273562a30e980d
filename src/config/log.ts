// Log lines in the reference's format: "pid:M 23 Nov 06:18:00.123 * text",
// where the mark is . debug, - verbose, * notice, # warning. Lines go to
// standard output, or are appended to `logfile`, filtered by `loglevel`.
import { openSync, writeSync, closeSync } from 'node:fs';

export const LOG_LEVELS = ['debug', 'verbose', 'notice', 'warning'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const MARKS = ['.', '-', '*', '#'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export class Logger {
  private level = 2;
  private fd: number | null = null;
  private file = '';

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
