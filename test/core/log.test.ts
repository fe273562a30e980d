// The logger's rate-limited lines (failed AUTH, refused connections).
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Logger, LIMITED_BURST, LIMITED_EVERY_MS } from '../../src/config/log.js';

describe('Logger.limited', () => {
  it('writes a burst, then one line per period, and says how many it left out', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-log-'));
    try {
      let now = 1_000_000;
      const log = new Logger(() => now);
      log.setFile(path.join(dir, 'log.txt'));
      const lines = () => readFileSync(path.join(dir, 'log.txt'), 'utf8').split('\n').filter((l) => l !== '');
      for (let i = 0; i < 100; i++) log.limited('warning', 'auth', `attempt ${i}`);
      expect(lines()).toHaveLength(LIMITED_BURST);
      expect(lines().every((l) => / # attempt \d+$/.test(l))).toBe(true);
      // Another kind has its own allowance.
      log.limited('warning', 'other', 'other kind');
      expect(lines()).toHaveLength(LIMITED_BURST + 1);
      now += LIMITED_EVERY_MS;
      log.limited('warning', 'auth', 'attempt 100');
      log.limited('warning', 'auth', 'attempt 101');
      const all = lines();
      expect(all).toHaveLength(LIMITED_BURST + 2);
      expect(all[all.length - 1]).toMatch(/ # attempt 100 \(90 more like this not logged\)$/);
      // Below the log level nothing is written or counted.
      log.setLevel('warning');
      log.limited('verbose', 'auth', 'quiet');
      now += 100 * LIMITED_EVERY_MS;
      log.limited('warning', 'auth', 'attempt 102');
      expect(lines()[lines().length - 1]).toMatch(/ # attempt 102 \(1 more like this not logged\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
