// GET /metrics: the Prometheus text format parses strictly, counters move
// with ADDJOB/GETJOB/ACKJOB/NACK, and the per-queue and per-command series
// are there. A node with 10,000 queues is scraped and the time printed
// (measured, not asserted: see bench/ for performance).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type Redis from 'ioredis';
import { client } from '../helpers/cluster.js';
import { get, parseExposition, startHttpServer } from '../helpers/http.js';
import type { ServerHandle } from '../helpers/server.js';

let h: ServerHandle & { http: number };
let r: Redis;

beforeAll(async () => {
  h = await startHttpServer();
  r = client(h.port);
});
afterAll(async () => {
  r?.disconnect();
  await h?.destroy();
});

async function scrape() {
  const res = await get(h.http, '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(res.text);
}

describe('/metrics', () => {
  it('parses, declares a type for every family, and has the node-wide families', async () => {
    const m = await scrape();
    for (const [name, type] of [
      ['disque_jobs', 'gauge'],
      ['disque_jobs_added_total', 'counter'],
      ['disque_memory_used_bytes', 'gauge'],
      ['disque_memory_max_bytes', 'gauge'],
      ['disque_clients_connected', 'gauge'],
      ['disque_clients_blocked', 'gauge'],
      ['disque_commands_processed_total', 'counter'],
      ['disque_command_duration_seconds', 'histogram'],
      ['disque_cluster_nodes', 'gauge'],
      ['disque_bus_messages_received_total', 'counter'],
      ['disque_bus_messages_sent_total', 'counter'],
      ['disque_replication_wait_seconds', 'histogram'],
      ['disque_persistence_journal_backlog_records', 'gauge'],
      ['disque_persistence_last_snapshot_timestamp_seconds', 'gauge'],
      ['disque_persistence_last_snapshot_bytes', 'gauge'],
      ['disque_persistence_misconf', 'gauge'],
      ['disque_queue_length', 'gauge'],
      ['disque_queue_oldest_job_age_seconds', 'gauge'],
      ['disque_queue_paused', 'gauge'],
    ]) {
      expect(m.types.get(name!), name).toBe(type);
    }
    expect(m.value('disque_up')).toBe(1);
    expect(m.value('disque_cluster_nodes', { state: 'ok' })).toBe(1);
    expect(m.value('disque_memory_max_bytes')).toBeGreaterThan(0);
    for (const state of ['wait-repl', 'active', 'queued', 'acked']) expect(m.value('disque_jobs', { state }), state).toBe(0);
  });

  it('moves its counters with ADDJOB, GETJOB, ACKJOB and NACK, per queue and per command', async () => {
    const before = await scrape();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await r.call('ADDJOB', 'mq', `job ${i}`, '0')) as string);
    const got = (await r.call('GETJOB', 'NOHANG', 'FROM', 'mq')) as [string, string, string][];
    expect(got).toHaveLength(1);
    expect(await r.call('ACKJOB', got[0]![1])).toBe(1);
    const again = (await r.call('GETJOB', 'NOHANG', 'FROM', 'mq')) as [string, string, string][];
    expect(await r.call('NACK', again[0]![1])).toBe(1);
    await r.call('PAUSE', 'mq', 'in');

    const m = await scrape();
    const q = { queue: 'mq' };
    expect(m.value('disque_queue_length', q)).toBe(2);
    expect(m.value('disque_queue_jobs_added_total', q)).toBe(3);
    expect(m.value('disque_queue_jobs_delivered_total', q)).toBe(2);
    expect(m.value('disque_queue_jobs_acked_total', q)).toBe(1);
    expect(m.value('disque_queue_jobs_nacked_total', q)).toBe(1);
    expect(m.value('disque_queue_paused', q)).toBe(1);
    expect(m.value('disque_queue_oldest_job_age_seconds', q)).toBeGreaterThanOrEqual(0);
    const moved = (name: string) => m.value(name)! - (before.value(name) ?? 0);
    expect(moved('disque_jobs_added_total')).toBe(3);
    expect(moved('disque_jobs_delivered_total')).toBe(2);
    expect(moved('disque_jobs_acked_total')).toBe(1);
    expect(moved('disque_jobs_nacked_total')).toBe(1);
    expect(moved('disque_commands_processed_total')).toBeGreaterThanOrEqual(8);
    expect(m.value('disque_jobs', { state: 'queued' })).toBe(2);

    // The per-command histogram: cumulative buckets ending in +Inf = count.
    const addjob = m.samples.filter((s) => s.name === 'disque_command_duration_seconds_bucket' && s.labels.command === 'addjob');
    expect(addjob.length).toBeGreaterThan(2);
    for (let i = 1; i < addjob.length; i++) expect(addjob[i]!.value).toBeGreaterThanOrEqual(addjob[i - 1]!.value);
    expect(addjob.at(-1)!.labels.le).toBe('+Inf');
    expect(addjob.at(-1)!.value).toBe(m.value('disque_command_duration_seconds_count', { command: 'addjob' }));
    expect(m.value('disque_command_duration_seconds_count', { command: 'addjob' })).toBeGreaterThanOrEqual(3);
    expect(m.value('disque_command_duration_seconds_count', { command: 'getjob' })).toBeGreaterThanOrEqual(2);
    expect(m.value('disque_command_duration_seconds_sum', { command: 'ackjob' })).toBeGreaterThan(0);
  });

  it('escapes queue names as label values', async () => {
    await r.call('ADDJOB', 'we"ird\\q\nname', 'x', '0');
    const m = await scrape();
    expect(m.value('disque_queue_length', { queue: 'we"ird\\q\nname' })).toBe(1);
  });

  it('answers a scrape of a node with 10,000 queues (time printed)', async () => {
    const N = 10_000;
    for (let from = 0; from < N; from += 1000) {
      const p = r.pipeline();
      for (let i = from; i < from + 1000; i++) p.call('ADDJOB', `load:${i}`, 'x', '0');
      await p.exec();
    }
    // The node sends its headers once the whole exposition is built
    // (Content-Length), so time to headers is the node's work plus one
    // round trip; the body then streams over loopback.
    const headers: number[] = [];
    const whole: number[] = [];
    const built: number[] = [];
    const cpu: number[] = [];
    let text = '';
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${h.http}/metrics`);
      headers.push(performance.now() - t0);
      expect(res.status).toBe(200);
      const timing = res.headers.get('server-timing') ?? '';
      built.push(Number(/build;dur=([\d.]+)/.exec(timing)?.[1]));
      cpu.push(Number(/cpu;dur=([\d.]+)/.exec(timing)?.[1]));
      text = await res.text();
      whole.push(performance.now() - t0);
    }
    const m = parseExposition(text);
    expect(m.samples.filter((s) => s.name === 'disque_queue_length').length).toBeGreaterThanOrEqual(N);
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!.toFixed(1);
    const list = (a: number[]) => a.map((t) => t.toFixed(1)).join(' ');
    console.log(
      `[metrics] scrape of ${N} queues, ${(text.length / 1e6).toFixed(1)} MB: ` +
        `built by the node in ms ${list(built)} (median ${median(built)}), CPU ms ${list(cpu)} (median ${median(cpu)}); ` +
        `to headers ms ${list(headers)} (median ${median(headers)}); whole body ms ${list(whole)} (median ${median(whole)})`,
    );
  }, 120_000);
});
