// Commands are declared once (name, arity, flags, handler); dispatch, arity
// errors and the COMMAND command all derive from the declarations.
import type { CommandFlag, CommandSpec, CommandEntry, CommandTableView } from '../commands/context.js';
import { Log2Histogram } from '../core/histogram.js';

/** What MONITOR and SLOWLOG show in place of a secret argument (Redis's word). */
export const REDACTED = '(redacted)';

export class Command implements CommandEntry {
  readonly flags: ReadonlySet<CommandFlag>;
  /** The flags dispatch checks on every call, as plain fields. */
  readonly isWrite: boolean;
  readonly isDenyOom: boolean;
  readonly isNoAuth: boolean;
  readonly isLoading: boolean;
  readonly isFast: boolean;
  calls = 0;
  usec = 0;
  /** Microseconds per call since start, for /metrics (CONFIG RESETSTAT leaves it: Prometheus counters only grow). */
  readonly latency = new Log2Histogram();
  constructor(readonly spec: CommandSpec) {
    this.flags = new Set(spec.flags);
    this.isWrite = this.flags.has('write');
    this.isDenyOom = this.flags.has('denyoom');
    this.isNoAuth = this.flags.has('noauth');
    this.isLoading = this.flags.has('loading');
    this.isFast = this.flags.has('fast');
  }
  get name(): string {
    return this.spec.name;
  }
  get arity(): number {
    return this.spec.arity;
  }
  has(flag: CommandFlag): boolean {
    return this.flags.has(flag);
  }
  /** argv as MONITOR and SLOWLOG show it: secrets replaced (see CommandSpec.secretArgs). */
  shown(argv: string[]): string[] {
    const secret = this.spec.secretArgs?.(argv);
    if (secret === undefined || secret.length === 0) return argv;
    const out = argv.slice();
    for (const i of secret) if (i < out.length) out[i] = REDACTED;
    return out;
  }
  arityOk(argc: number): boolean {
    const a = this.spec.arity;
    return a > 0 ? argc === a : argc >= -a;
  }
}

export class CommandTable implements CommandTableView {
  private readonly byName = new Map<string, Command>();
  /** Names as clients spell them ("ADDJOB"), so most lookups skip lowercasing. */
  private readonly bySpelling = new Map<string, Command>();

  constructor(specs: readonly CommandSpec[]) {
    for (const s of specs) this.byName.set(s.name, new Command(s));
  }

  /** The command named `name`, whatever its case. */
  lookup(name: string): Command | undefined {
    const seen = this.bySpelling.get(name);
    if (seen !== undefined) return seen;
    const cmd = this.byName.get(name.toLowerCase());
    // Only real names are remembered, and only a few spellings of each.
    if (cmd !== undefined && this.bySpelling.size < 4 * this.byName.size) this.bySpelling.set(name, cmd);
    return cmd;
  }

  all(): Command[] {
    return [...this.byName.values()];
  }

  get size(): number {
    return this.byName.size;
  }

  /** rename-command: '' removes the command. */
  rename(from: string, to: string): boolean {
    const cmd = this.byName.get(from.toLowerCase());
    if (!cmd) return false;
    this.bySpelling.clear();
    this.byName.delete(from.toLowerCase());
    if (to !== '') this.byName.set(to.toLowerCase(), cmd);
    return true;
  }
}
