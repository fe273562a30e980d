// Self-checks of the generator's own pieces and the TLS table (no server needed):
//   node dist/bench/selftest.js
// The parser must give the same replies however the stream is split, the
// histogram must report quantiles within its 3% resolution, the tracker
// must count lost and duplicated jobs exactly, redis-benchmark's CSV must
// read back as its numbers, and a TLS row must pair with its plain row.
import assert from 'node:assert/strict';
import { Histogram } from './histogram.js';
import { parseBenchCsv, plainBody, requestsSent } from './redis-benchmark.js';
import { markdown, tlsRatios, type Scenario, type Summary } from './report.js';
import { ReplyParser, RespError, encode, type Reply } from './resp.js';
import { makeBody, Tracker, writeDigits, SEQ_DIGITS, seqOffsetInBody } from './tracker.js';

function parserSplits(): void {
  const stream = Buffer.from(
    '+PONG\r\n+OK\r\n+OKAY\r\n-ERR bad\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n' +
      '*2\r\n*3\r\n$1\r\nq\r\n$2\r\nid\r\n$4\r\nbody\r\n$-1\r\n+PONG\r\n',
    'latin1',
  );
  const want: Reply[] = ['PONG', 'OK', 'OKAY', new RespError('ERR bad'), 42, -7, 'hello', '', null, null, [], [['q', 'id', 'body'], null], 'PONG'];
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const got: Reply[] = [];
      const p = new ReplyParser((r) => got.push(r));
      // Copies: the parser must not rely on chunks staying intact.
      p.feed(Buffer.from(stream.subarray(0, i)));
      p.feed(Buffer.from(stream.subarray(i, j)));
      p.feed(Buffer.from(stream.subarray(j)));
      assert.deepEqual(got, want, `split at ${i},${j}`);
    }
  }
  assert.equal(encode(['PING']).toString(), '*1\r\n$4\r\nPING\r\n');
}

function histogram(): void {
  const h = new Histogram();
  for (let i = 1; i <= 100_000; i++) h.recordMs(i / 1000); // 1 µs .. 100 ms uniform
  const near = (got: number, want: number): void => assert.ok(Math.abs(got - want) / want < 0.04, `${got} vs ${want}`);
  near(h.quantileMs(0.5), 50);
  near(h.quantileMs(0.99), 99);
  assert.equal(h.maxMs, 100);
  const h2 = Histogram.from(h.toData());
  h2.merge(h);
  assert.equal(h2.total, 200_000);
  near(h2.quantileMs(0.5), 50);
}

function tracker(): void {
  const t = new Tracker();
  t.addProduced({ pid: 1, n: 10, failed: [3] });
  t.addProduced({ pid: 2, n: 5, failed: [] });
  for (let s = 0; s < 10; s++) if (s !== 7 && s !== 3) t.markSeen(makeBody(1, s, 64)); // 7 lost, 3 failed
  t.markSeen(makeBody(1, 5, 64)); // duplicate
  for (let s = 0; s < 5; s++) t.markSeen(makeBody(2, s, 30));
  t.markSeen('junk');
  assert.deepEqual(t.verify(), { expected: 14, received: 13, lost: 1, duplicated: 1, unexpected: 1 });
  // Seq digits patched in place must read back as the same job.
  const b = Buffer.from(makeBody(4, 0, 40), 'latin1');
  writeDigits(b, seqOffsetInBody, 1234567, SEQ_DIGITS);
  assert.equal(b.toString('latin1'), makeBody(4, 1234567, 40));
}

function benchCsv(): void {
  // redis-benchmark 7.0 --csv, with a warning on stderr (not here) and a 64-byte body in the test name.
  const out =
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"\n' +
    `"ADDJOB q ${plainBody(64)} 0","37174.72","0.940","0.304","0.903","1.375","2.023","6.119"\n`;
  assert.deepEqual(parseBenchCsv(out), { rps: 37174.72, avgMs: 0.94, p50Ms: 0.903, p95Ms: 1.375, p99Ms: 2.023, maxMs: 6.119 });
  assert.equal(parseBenchCsv('"test","rps"\n'), null);
  assert.equal(plainBody(64).length, 64);
  // Whole pipelines: -n 1000 -P 16 sends 1008 (seen with LPUSH and LLEN).
  assert.equal(requestsSent(1000, 16), 1008);
  assert.equal(requestsSent(50_000, 16), 50_000);
  assert.equal(requestsSent(1000, 1), 1000);
}

function tlsReport(): void {
  const sc = (id: string, pipeline: number, extra: Partial<Scenario> = {}): Scenario =>
    ({ id, workload: 'produce', generator: 'redis-benchmark', conns: 50, pipeline, cluster: false, ...extra });
  const sum = (scenario: Scenario, flavor: Summary['flavor'], opsPerSec: number, p99Ms: number): Summary => ({
    scenario, flavor, rounds: 1, opsPerSec, minOpsPerSec: opsPerSec, maxOpsPerSec: opsPerSec, p50Ms: 1, p99Ms, maxMs: p99Ms,
    generatorCpuPct: 50, checked: 0, lost: 0, duplicated: 0, unexpected: 0, queueChecks: [], errors: 0, warnings: [],
  });
  const plain = sc('produce-c50-p16', 16);
  const aof = sc('produce-c50-p16-aof', 16, { aof: true });
  const tls = sc('produce-c50-p16-tls', 16, { tls: true });
  const summaries = [sum(aof, 'ours', 10, 50), sum(plain, 'ours', 100, 4), sum(plain, 'reference', 90, 5), sum(tls, 'ours', 60, 6)];
  assert.deepEqual(tlsRatios(summaries), [
    { workload: 'produce', pipeline: 16, flavor: 'ours', plainOpsPerSec: 100, tlsOpsPerSec: 60, ratio: 0.6, plainP99Ms: 4, tlsP99Ms: 6 },
  ]);
  const md = markdown({ title: 't', header: [], scenarios: [plain, tls], flavors: ['ours', 'reference'], summaries, memory: [] });
  assert.match(md, /\| produce, TLS \| ADDJOB \| redis-benchmark \| 50 \| 16 \| 60 \| n\/a \(no TLS\) \|/);
}

parserSplits();
histogram();
tracker();
benchCsv();
tlsReport();
process.stdout.write('bench selftest ok\n');
