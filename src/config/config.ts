// Configuration: the config file (the reference's format, one directive per
// line), `--directive value` overrides from the command line, CONFIG GET and
// SET, and CONFIG REWRITE, which updates the file in place keeping comments
// and order. Everything about a directive comes from the DIRECTIVES table.
import { readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import path from 'node:path';
import { DIRECTIVES, DIRECTIVE_BY_NAME, type ConfigValue, type Directive } from './directives.js';
import { splitArgs, quoteArg } from '../protocol/split-args.js';

/** A config file or override error: names the file, the line and the reason. */
export class ConfigError extends Error {
  constructor(
    readonly reason: string,
    readonly file: string | null = null,
    readonly line: number | null = null,
    readonly text: string | null = null,
  ) {
    super(
      file !== null && line !== null
        ? `${file}:${line}: ${reason}${text !== null ? `\n>>> '${text}'` : ''}`
        : reason,
    );
  }
}

/** Parses a memory amount: 1024, 1k (1000), 1kb (1024), 5m, 5mb, 1g, 1gb. */
export function parseMemory(s: string): number | undefined {
  const m = /^(-?\d+)(b|k|kb|m|mb|g|gb)?$/i.exec(s);
  if (!m) return undefined;
  const mul: Record<string, number> = { b: 1, k: 1000, kb: 1024, m: 1e6, mb: 1024 * 1024, g: 1e9, gb: 1024 * 1024 * 1024 };
  return Number(m[1]) * (m[2] ? mul[m[2].toLowerCase()]! : 1);
}

/** Parses the words after a directive name into its value, or throws a reason. */
function parseValue(d: Directive, args: string[]): ConfigValue {
  if (d.type === 'list') {
    if (d.words !== undefined && args.length !== d.words) {
      throw new Error(`'${d.name}' takes ${d.words} argument${d.words === 1 ? '' : 's'}`);
    }
    return d.repeatable ? [args.map(quoteArg).join(' ')] : args;
  }
  if (args.length !== 1) throw new Error(`wrong number of arguments for '${d.name}'`);
  const raw = args[0]!;
  let v: ConfigValue;
  switch (d.type) {
    case 'int': {
      if (!/^-?\d+$/.test(raw)) throw new Error(`'${d.name}' must be an integer, got '${raw}'`);
      v = Number(raw);
      break;
    }
    case 'memory': {
      const n = parseMemory(raw);
      if (n === undefined) throw new Error(`'${d.name}' must be a memory amount (like 100mb), got '${raw}'`);
      v = n;
      break;
    }
    case 'bool': {
      const l = raw.toLowerCase();
      if (l !== 'yes' && l !== 'no') throw new Error(`'${d.name}' must be 'yes' or 'no', got '${raw}'`);
      v = l === 'yes';
      break;
    }
    case 'enum': {
      const l = raw.toLowerCase();
      if (!d.values!.includes(l)) throw new Error(`'${d.name}' must be one of ${d.values!.join(', ')}, got '${raw}'`);
      v = l;
      break;
    }
    default:
      v = raw;
  }
  if (typeof v === 'number') {
    if ((d.min !== undefined && v < d.min) || (d.max !== undefined && v > d.max)) {
      const range = d.max !== undefined ? `between ${d.min ?? '-inf'} and ${d.max}` : `at least ${d.min}`;
      throw new Error(`'${d.name}' must be ${range}, got ${raw}`);
    }
  }
  const bad = d.check?.(v);
  if (bad) throw new Error(bad);
  return v;
}

function defaultValue(d: Directive): ConfigValue {
  if (d.type === 'list') {
    if (d.default === '') return [];
    return d.repeatable ? [d.default] : d.default.split(' ');
  }
  return parseValue(d, d.default === '' ? [''] : [d.default]);
}

/** Turns `--port 7712 --cluster-meet a:1` into directive lines. */
export function overridesFromArgv(argv: string[]): string[][] {
  const lines: string[][] = [];
  for (const a of argv) {
    if (a.startsWith('--')) lines.push([a.slice(2)]);
    else if (lines.length > 0) lines[lines.length - 1]!.push(a);
    else throw new ConfigError(`unexpected argument '${a}' (directives are given as --name value)`);
  }
  return lines;
}

type Listener = (value: ConfigValue) => void;

export class Config {
  /** Absolute path of the config file, or null when started without one. */
  readonly file: string | null;
  private readonly values = new Map<string, ConfigValue>();
  private readonly listeners = new Map<string, Listener[]>();
  /** Repeatable directives seen in the file replace their default once. */
  private readonly seen = new Set<string>();

  private constructor(file: string | null) {
    this.file = file;
    for (const d of DIRECTIVES) this.values.set(d.name, defaultValue(d));
  }

  /** Defaults only (tests, embedding). */
  static defaults(): Config {
    return new Config(null);
  }

  /**
   * Reads `file` (may be null) then applies `overrides` (directive lines from
   * the command line). Throws ConfigError naming the file, line and reason.
   */
  static load(file: string | null, overrides: string[][] = []): Config {
    const abs = file === null ? null : path.resolve(file);
    const cfg = new Config(abs);
    if (abs !== null) cfg.loadFile(abs, new Set());
    overrides.forEach((words, i) => {
      const [name, ...args] = words;
      cfg.applyLine(name!, args, '(command line)', i + 1, words.join(' '));
    });
    return cfg;
  }

  private loadFile(file: string, including: Set<string>): void {
    if (including.has(file)) throw new ConfigError('include loop', file);
    including.add(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`can't open config file: ${(e as Error).message}`, file);
    }
    const lines = text.split('\n');
    lines.forEach((rawLine, i) => {
      const line = rawLine.trim();
      if (line === '' || line.startsWith('#')) return;
      const words = splitArgs(line);
      if (words === null) throw new ConfigError('unbalanced quotes in configuration line', file, i + 1, line);
      if (words.length === 0) return;
      const [name, ...args] = words;
      if (name!.toLowerCase() === 'include') {
        if (args.length !== 1) throw new ConfigError("'include' takes one file name", file, i + 1, line);
        this.loadFile(path.resolve(path.dirname(file), args[0]!), including);
        return;
      }
      this.applyLine(name!, args, file, i + 1, line);
    });
    including.delete(file);
  }

  private applyLine(rawName: string, args: string[], file: string, line: number, text: string): void {
    const name = rawName.toLowerCase();
    const d = DIRECTIVE_BY_NAME.get(name);
    if (!d) throw new ConfigError(`Bad directive or wrong number of arguments: unknown directive '${rawName}'`, file, line, text);
    let v: ConfigValue;
    try {
      v = parseValue(d, args);
    } catch (e) {
      throw new ConfigError((e as Error).message, file, line, text);
    }
    if (d.repeatable) {
      const prev = this.seen.has(name) ? (this.values.get(name) as string[]) : [];
      this.seen.add(name);
      this.values.set(name, [...prev, ...(v as string[])]);
    } else {
      this.values.set(name, v);
    }
  }

  get(name: string): ConfigValue {
    const v = this.values.get(name);
    if (v === undefined) throw new Error(`unknown directive ${name}`);
    return v;
  }

  int(name: string): number {
    return this.get(name) as number;
  }

  bool(name: string): boolean {
    return this.get(name) as boolean;
  }

  str(name: string): string {
    return this.get(name) as string;
  }

  list(name: string): string[] {
    return this.get(name) as string[];
  }

  /** Calls `fn` after every change of `name` made by set() or setValue(). */
  onChange(name: string, fn: Listener): void {
    const l = this.listeners.get(name) ?? [];
    l.push(fn);
    this.listeners.set(name, l);
  }

  /**
   * CONFIG SET: validates `raw` as the file parser would and applies it.
   * Returns an error message (the reference's wording) or undefined.
   * `apply` may veto: it runs before listeners and can return an error.
   */
  set(rawName: string, raw: string): string | undefined {
    const name = rawName.toLowerCase();
    const d = DIRECTIVE_BY_NAME.get(name);
    if (!d || !d.settable) return `Unsupported CONFIG parameter: ${rawName}`;
    let v: ConfigValue;
    try {
      if (d.type === 'list') {
        const words = splitArgs(raw) ?? [];
        if (d.words && d.repeatable) {
          if (words.length % d.words !== 0) throw new Error('bad format');
          const entries: string[] = [];
          for (let i = 0; i < words.length; i += d.words) {
            entries.push((parseValue(d, words.slice(i, i + d.words)) as string[])[0]!);
          }
          v = entries;
        } else {
          v = parseValue(d, words);
        }
      } else {
        v = parseValue(d, [raw]);
      }
    } catch {
      return `Invalid argument '${raw}' for CONFIG SET '${rawName}'`;
    }
    return this.setValue(name, v);
  }

  /** Sets an already-valid value and notifies listeners; a listener may throw to refuse. */
  setValue(name: string, v: ConfigValue): string | undefined {
    const old = this.values.get(name)!;
    this.values.set(name, v);
    try {
      for (const fn of this.listeners.get(name) ?? []) fn(v);
    } catch (e) {
      this.values.set(name, old);
      return (e as Error).message;
    }
    return undefined;
  }

  /** The value as CONFIG GET and the config file show it. */
  format(name: string): string {
    const d = DIRECTIVE_BY_NAME.get(name)!;
    const v = this.values.get(name)!;
    if (name === 'dir') return process.cwd();
    switch (d.type) {
      case 'bool':
        return v ? 'yes' : 'no';
      case 'list':
        return (v as string[]).join(' ');
      default:
        return String(v);
    }
  }

  /** CONFIG GET pattern: [name, value] pairs for directives matching the glob. */
  matching(pattern: string): [string, string][] {
    const out: [string, string][] = [];
    for (const d of DIRECTIVES) {
      if (d.secret) continue;
      if (globMatch(pattern.toLowerCase(), d.name)) out.push([d.name, this.format(d.name)]);
    }
    return out;
  }

  /**
   * CONFIG REWRITE: rewrites the file so it reflects the running config.
   * Lines of directives keep their place (a repeatable directive reuses its
   * lines in order); comments and unknown lines are kept; directives that
   * differ from their default and were not in the file are appended.
   * Written to a temporary file and renamed, so a crash leaves old or new.
   */
  rewrite(): void {
    if (this.file === null) throw new Error('The server is running without a config file');
    const oldLines = existsSync(this.file) ? readFileSync(this.file, 'utf8').split('\n') : [];
    if (oldLines.length > 0 && oldLines[oldLines.length - 1] === '') oldLines.pop();
    const wanted = new Map<string, string[]>();
    for (const d of DIRECTIVES) {
      if (d.name === 'include' || d.name === 'rename-command') continue;
      wanted.set(d.name, this.linesFor(d));
    }
    const out: string[] = [];
    const placed = new Set<string>();
    for (const raw of oldLines) {
      const trimmed = raw.trim();
      const words = trimmed === '' || trimmed.startsWith('#') ? null : splitArgs(trimmed);
      const name = words?.[0]?.toLowerCase();
      if (name === undefined || !wanted.has(name)) {
        if (trimmed === '# Generated by CONFIG REWRITE') continue;
        out.push(raw);
        continue;
      }
      const lines = wanted.get(name)!;
      placed.add(name);
      // Keep a line that sets the default if the user wrote it.
      const next = lines.shift();
      if (next !== undefined) out.push(next);
    }
    const extra: string[] = [];
    for (const d of DIRECTIVES) {
      const lines = wanted.get(d.name);
      if (!lines || lines.length === 0) continue;
      if (!placed.has(d.name) && this.isDefault(d)) continue;
      extra.push(...lines);
    }
    if (extra.length > 0) {
      while (out.length > 0 && out[out.length - 1]!.trim() === '') out.pop();
      out.push('# Generated by CONFIG REWRITE', ...extra);
    }
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, out.join('\n') + '\n');
    renameSync(tmp, this.file);
  }

  private linesFor(d: Directive): string[] {
    const v = this.values.get(d.name)!;
    if (d.type === 'list') {
      if (d.repeatable) return (v as string[]).map((e) => `${d.name} ${e}`);
      return (v as string[]).length ? [`${d.name} ${(v as string[]).map(quoteArg).join(' ')}`] : [];
    }
    return [`${d.name} ${quoteArg(this.format(d.name))}`];
  }

  private isDefault(d: Directive): boolean {
    if (d.name === 'dir') return false;
    const def = defaultValue(d);
    const v = this.values.get(d.name)!;
    return JSON.stringify(def) === JSON.stringify(v);
  }
}

/** Glob matching as Redis does for CONFIG GET (* ? [abc] and \\ escapes). */
export function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(
    '^' +
      pattern.replace(/\\(.)|([.+^${}()|\\])|(\*)|(\?)|(\[[^\]]*\])/g, (m, esc, special, star, q, cls) => {
        if (esc !== undefined) return '\\' + esc;
        if (special !== undefined) return '\\' + special;
        if (star !== undefined) return '.*';
        if (q !== undefined) return '.';
        return cls.replace(/^\[\^?/, (p: string) => (p === '[^' ? '[^' : '['));
      }) +
      '$',
    's',
  );
  return re.test(s);
}
