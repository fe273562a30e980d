// Warms up the hot paths before the node takes clients. V8 runs new code in
// its interpreter until a function has been called often enough to be
// compiled: the first thousand ADDJOBs a fresh node served took up to a
// hundred times longer than later ones, and clients of a node just started
// under load waited hundreds of milliseconds for their first replies. A few
// thousand jobs through a scratch store, and requests through a scratch
// reader and reply buffer, compile what a loaded node runs most; nothing of
// the node's own state is touched. It takes 100-300 ms of CPU, so it runs
// once the node listens, a slice of about a millisecond per event-loop turn
// (warmUpSteps), and clients are served between slices.
import { SystemClock } from '../core/clock.js';
import { JobStore } from '../core/store.js';
import { JobState, newJobFields } from '../core/job.js';
import { generateJobId } from '../core/job-id.js';
import { writeJob } from '../core/job-codec.js';
import { MsgWriter } from '../core/msgpack-writer.js';
import { RequestReader } from '../protocol/request.js';
import { ReplyBuffer } from '../protocol/reply.js';
import { parseInteger } from '../protocol/errors.js';

const ROUNDS = 4000;
const NODE_ID = '0123456789abcdef0123456789abcdef01234567';

function resp(args: string[]): string {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${a.length}\r\n${a}\r\n`;
  return s;
}

/** Rounds per slice of warmUpSteps. */
const SLICE = 100;

/** The whole warm-up at once. */
export function warmUp(): void {
  for (const _ of warmUpSteps());
}

/** The warm-up in slices: run one per next() call. */
export function* warmUpSteps(): Generator<void> {
  const clock = new SystemClock();
  const store = new JobStore({ clock, myId: () => NODE_ID, maxmemory: 64 << 20 });
  const out = new ReplyBuffer();
  const writer = new MsgWriter(4096);
  const body = 'x'.repeat(64);
  const q = store.queueFor('warmup');

  // The store: add and queue, fetch and reply, ack and collect, NACK, lookups.
  for (let i = 0; i < ROUNDS; i++) {
    const fields = newJobFields(generateJobId(NODE_ID, 86400, 300), JobState.WaitRepl, store.selfOnly());
    fields.queue = 'warmup';
    fields.body = body;
    store.nextCtime(fields);
    fields.etime = clock.now() + 86_400_000;
    fields.retry = 300;
    fields.qtime = clock.now() + 300_000;
    const job = store.addJob(fields, true)!;
    store.enqueueJob(job, false);
    out.status(job.id);
    if (i % 2 === 1) {
      const got = store.fetchJob(q)!;
      out.arrayLen(3);
      out.bulk(got.queue);
      const at = out.beginBulk(40);
      got.copyIdTo(out.buffer, at);
      out.endBulk(40);
      out.bulkBytes(got.bodyBytes(), got.bodyOffset(), got.bodyLength);
      writer.pos = 0;
      writeJob(writer, got, clock, true);
      const again = store.lookupJob(got.id)!;
      if (i % 4 === 1) store.enqueueJob(again, true);
      else {
        store.acknowledgeJob(again);
        store.unregisterJob(again);
      }
    }
    out.len = 0;
    if (i % SLICE === SLICE - 1) yield;
  }
  store.processJobs();
  store.flushAll();

  // The request reader: pipelined and single requests.
  const requests = Buffer.from(
    resp(['ADDJOB', 'warmup', body, '0']) + resp(['GETJOB', 'NOHANG', 'FROM', 'warmup']) + resp(['PING']) + resp(['ACKJOB', generateJobId(NODE_ID, 60, 1)]),
    'latin1',
  );
  let seen = 0;
  const reader = new RequestReader(
    {
      request: (args) => {
        for (const a of args) seen += a.length;
        parseInteger('0');
      },
      protocolError: () => {},
      overLimit: () => {},
    },
    { maxQueryBuffer: 1 << 30, maxBulkLen: 1 << 29 },
  );
  for (let i = 0; i < ROUNDS / 2; i++) {
    reader.feed(requests, requests.length);
    if (i % SLICE === SLICE - 1) yield;
  }
  void seen;
}
