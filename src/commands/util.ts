// Argument helpers shared by the command files, with the reference's errors.
import { errors, parseInteger } from '../protocol/errors.js';
import { isValidJobId } from '../core/job-id.js';
import type { Call } from './context.js';
import type { ReplyBuffer } from '../protocol/reply.js';
import { JOB_DEFAULT_RETRY_MAX, type Job } from '../core/job.js';
import { JOB_ID_LEN } from '../core/job-id.js';
import { passwordMatches } from '../config/access.js';

/** Checks every ID first, so an invalid one means nothing is done. */
export function validateJobIds(call: Call, from: number, to = call.argv.length): boolean {
  for (let i = from; i < to; i++) {
    if (!isValidJobId(call.argv[i]!)) {
      call.reply.error(errors.badId);
      return false;
    }
  }
  return true;
}

/** An integer argument, or replies `message` and returns undefined. */
export function intArg(call: Call, s: string, message: string = errors.notInteger): number | undefined {
  const n = parseInteger(s);
  if (n === undefined) call.reply.error(message);
  return n;
}

/** A millisecond timeout: non-negative integer; 0 means none. */
export function timeoutArg(call: Call, s: string): number | undefined {
  const n = parseInteger(s);
  if (n === undefined) {
    call.reply.error(errors.timeoutNotInteger);
    return undefined;
  }
  if (n < 0) {
    call.reply.error(errors.timeoutNegative);
    return undefined;
  }
  return n;
}

/** A SCAN cursor: an unsigned decimal number. */
export function cursorArg(call: Call, s: string): number | undefined {
  if (!/^\d+$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER) {
    call.reply.error(errors.invalidCursor);
    return undefined;
  }
  return Number(s);
}

export function eq(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b;
}

/** A job as GETJOB and QPEEK return it: [queue, id, body] (+ counters). */
export function replyJob(out: ReplyBuffer, job: Job, withCounters: boolean): void {
  out.arrayLen(withCounters ? 7 : 3);
  out.bulk(job.queue);
  const at = out.beginBulk(JOB_ID_LEN);
  job.copyIdTo(out.buffer, at);
  out.endBulk(JOB_ID_LEN);
  out.bulkBytes(job.bodyBytes(), job.bodyOffset(), job.bodyLength);
  if (withCounters) {
    out.bulk('nacks');
    out.int(job.nacks);
    out.bulk('additional-deliveries');
    out.int(job.deliveries);
  }
}

/**
 * AUTH and HELLO AUTH: whether `given` is the requirepass (never, when none
 * is set), compared in constant time (src/config/access.ts). A wrong
 * password is logged with the client's address (rate-limited: a guessing
 * client cannot flood the log), never the password itself.
 */
export function checkPassword(call: Call, given: string, via: 'AUTH' | 'HELLO AUTH'): boolean {
  if (call.node.config.str('requirepass') === '') return false;
  if (passwordMatches(call.node.config, given)) return true;
  call.node.log.limited('warning', 'auth', `Failed ${via} from ${call.client.addr} (client id=${call.client.id})`);
  return false;
}

/**
 * ADDJOB's checks of REPLICATE, RETRY, DELAY and TTL together, with the
 * reference's errors (replied here), and its default RETRY (-1: a tenth of
 * the TTL, at most 5 minutes, at least 1 second). The RETRY to use, or
 * undefined after an error.
 */
export function checkedRetry(reply: ReplyBuffer, replicate: number, retry: number, delay: number, ttl: number): number | undefined {
  // Replicating a job that is never re-queued is pointless.
  if (replicate > 1 && retry === 0) {
    reply.error('ERR With RETRY set to 0 please explicitly set  REPLICATE to 1 (at-most-once delivery)');
    return undefined;
  }
  if (delay >= ttl) {
    reply.error('ERR The specified DELAY is greater than TTL. Job refused since would never be delivered');
    return undefined;
  }
  if (retry !== -1) return retry;
  return Math.max(1, Math.min(Math.floor(ttl / 10), JOB_DEFAULT_RETRY_MAX));
}
