// Config files, overrides, CONFIG SET validation and CONFIG REWRITE.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Config, ConfigError, overridesFromArgv, parseMemory, globMatch } from '../../src/config/config.js';
import { splitArgs } from '../../src/protocol/split-args.js';

function tmpFile(content: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-config-'));
  const f = path.join(dir, 'disque.conf');
  writeFileSync(f, content);
  return f;
}

describe('config', () => {
  it('reads the reference format with comments, quotes and memory units', () => {
    const f = tmpFile('# a comment\nport 7712\nmaxmemory 100mb\nlogfile "my log.txt"\nappendonly yes\ncluster-meet 127.0.0.1:7711\ncluster-meet 127.0.0.1:7713\n');
    const c = Config.load(f);
    expect(c.int('port')).toBe(7712);
    expect(c.int('maxmemory')).toBe(100 * 1024 * 1024);
    expect(c.str('logfile')).toBe('my log.txt');
    expect(c.bool('appendonly')).toBe(true);
    expect(c.list('cluster-meet')).toEqual(['127.0.0.1:7711', '127.0.0.1:7713']);
    expect(c.int('hz')).toBe(10);
  });

  it('lets --directive overrides from the command line win', () => {
    const f = tmpFile('port 7712\n');
    const c = Config.load(f, overridesFromArgv(['--port', '7799', '--loglevel', 'debug']));
    expect(c.int('port')).toBe(7799);
    expect(c.str('loglevel')).toBe('debug');
  });

  it('stops on an unknown directive or bad value, naming file, line and reason', () => {
    const f = tmpFile('port 7712\n\nbogus-directive 3\n');
    expect(() => Config.load(f)).toThrowError(ConfigError);
    try {
      Config.load(f);
    } catch (e) {
      const err = e as ConfigError;
      expect(err.file).toBe(f);
      expect(err.line).toBe(3);
      expect(err.message).toContain('bogus-directive');
    }
    expect(() => Config.load(tmpFile('port 99999\n'))).toThrowError(/port.*between 0 and 65535/);
    expect(() => Config.load(tmpFile('appendonly maybe\n'))).toThrowError(/'yes' or 'no'/);
    expect(() => Config.load(tmpFile('maxmemory lots\n'))).toThrowError(/memory amount/);
    expect(() => Config.load(tmpFile('logfile "unbalanced\n'))).toThrowError(/unbalanced quotes/);
  });

  it('validates CONFIG SET like the file and refuses unsupported parameters', () => {
    const c = Config.defaults();
    expect(c.set('maxmemory', '2mb')).toBeUndefined();
    expect(c.int('maxmemory')).toBe(2 * 1024 * 1024);
    expect(c.set('maxmemory', 'lots')).toBe("Invalid argument 'lots' for CONFIG SET 'maxmemory'");
    expect(c.set('port', '7000')).toBe('Unsupported CONFIG parameter: port');
    expect(c.set('nosuch', '1')).toBe('Unsupported CONFIG parameter: nosuch');
    expect(c.set('cluster-node-timeout', '-5')).toMatch(/Invalid argument/);
  });

  it('applies several CONFIG SET pairs together, each listener once, and undoes all when one is refused', () => {
    const c = Config.defaults();
    const seen: string[] = [];
    const check = () => {
      seen.push(`${c.str('tls-cert-file')}|${c.str('tls-key-file')}`);
      if (c.str('tls-key-file') === 'bad') throw new Error('ERR Unable to update TLS configuration');
    };
    c.onChange('tls-cert-file', check);
    c.onChange('tls-key-file', check);
    expect(c.setMany([['tls-cert-file', 'a.crt'], ['TLS-KEY-FILE', 'a.key']])).toBeUndefined();
    expect(seen).toEqual(['a.crt|a.key']);
    expect(c.setMany([['tls-cert-file', 'b.crt'], ['tls-key-file', 'bad']])).toMatch(/Unable to update TLS/);
    expect([c.str('tls-cert-file'), c.str('tls-key-file')]).toEqual(['a.crt', 'a.key']);
    expect(c.setMany([['tls-cert-file', 'b.crt'], ['tls-cert-file', 'c.crt']])).toMatch(/Duplicate parameter/);
    expect(c.setMany([['tls-protocols', 'TLSv1.3 SSLv3']])).toMatch(/Invalid argument/);
    expect(c.str('tls-cert-file')).toBe('a.crt');
  });

  it('rewrites the file in place, keeping comments and order', () => {
    const f = tmpFile('# my node\nport 7712\n# timeout below\ncluster-node-timeout 15000\nloglevel notice\n');
    const c = Config.load(f);
    c.set('cluster-node-timeout', '3000');
    c.set('appendonly', 'yes');
    c.rewrite();
    const lines = readFileSync(f, 'utf8').split('\n');
    expect(lines.slice(0, 5)).toEqual(['# my node', 'port 7712', '# timeout below', 'cluster-node-timeout 3000', 'loglevel notice']);
    expect(lines).toContain('appendonly yes');
    expect(lines.filter((l) => l.startsWith('appendonly'))).toHaveLength(1);
    // Rewriting twice changes nothing more.
    c.rewrite();
    expect(readFileSync(f, 'utf8').split('\n')).toEqual(lines);
    expect(Config.load(f).int('cluster-node-timeout')).toBe(3000);
  });

  it('parses memory units and globs as the reference does', () => {
    expect(parseMemory('1k')).toBe(1000);
    expect(parseMemory('1kb')).toBe(1024);
    expect(parseMemory('3GB')).toBe(3 * 1024 ** 3);
    expect(parseMemory('12x')).toBeUndefined();
    expect(globMatch('max*', 'maxmemory')).toBe(true);
    expect(globMatch('*node-time?ut', 'cluster-node-timeout')).toBe(true);
    expect(globMatch('port', 'tcp-port')).toBe(false);
  });

  it('splits arguments with quotes and escapes', () => {
    expect(splitArgs('set a "b c" \'d e\' "x\\x41\\n"')).toEqual(['set', 'a', 'b c', 'd e', 'xA\n']);
    expect(splitArgs('"unbalanced')).toBeNull();
    expect(splitArgs('"a"b')).toBeNull();
    expect(splitArgs('   ')).toEqual([]);
  });
});
