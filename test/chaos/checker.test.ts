// The checker's accounting: lost, duplicates, unknown and phantom deliveries.
import { describe, it, expect } from 'vitest';
import { check, errorKind, History } from '../../chaos/checker.js';

describe('checker', () => {
  it('counts a job acknowledged to its producer and never delivered as lost', () => {
    const h = new History();
    h.sent.add('a');
    h.sent.add('b');
    h.addAcked('D-1', 'a', 1);
    h.addAcked('D-2', 'b', 1);
    h.delivered('D-1', 'a');
    const v = check(h);
    expect(v.acked).toBe(2);
    expect(v.delivered).toBe(1);
    expect(v.lost).toBe(1);
    expect(v.lostIds).toEqual(['D-2']);
    expect(v.drainMs).toBeNull();
  });

  it('counts repeated deliveries as duplicates, and jobs no producer got an ID for as unknown', () => {
    const h = new History();
    for (const b of ['a', 'b']) h.sent.add(b);
    h.addAcked('D-1', 'a', 1);
    h.delivered('D-1', 'a');
    h.delivered('D-1', 'a');
    h.delivered('D-1', 'a');
    // ADDJOB of "b" failed on the client's side, yet the job exists.
    h.addFailed('client-timeout');
    h.delivered('D-9', 'b');
    const v = check(h);
    expect(v.lost).toBe(0);
    expect(v.duplicates).toBe(2);
    expect(v.unknown).toBe(1);
    expect(v.phantom).toBe(0);
    expect(v.addErrors).toEqual({ 'client-timeout': 1 });
  });

  it('flags a delivery whose body no producer sent as a phantom', () => {
    const h = new History();
    h.delivered('D-5', 'never-sent');
    expect(check(h).phantom).toBe(1);
  });

  it('sorts errors into kinds', () => {
    expect(errorKind(new Error('NOREPL Not enough reachable nodes for the requested replication level'))).toBe('NOREPL');
    expect(errorKind(new Error('MISCONF Redis is unreachable (connection lost)'))).toBe('MISCONF');
    expect(errorKind(new Error('Command timed out'))).toBe('client-timeout');
    expect(errorKind(Object.assign(new Error('no Disque node reachable'), { name: 'ConnectionError' }))).toBe('connection');
  });
});
