// The dead-letter envelope: what a Worker ADDJOBs to its dead-letter queue
// when it gives up on a job. Disque has no dead-letter queue of its own; the
// reference suggests this pattern using the NACK / additional-delivery counters.

/** Dead-letter job body (JSON). */
export interface DeadLetterEnvelope {
  /** ID of the job given up on. */
  id: string;
  /** Its queue. */
  queue: string;
  /** Its body, as UTF-8 text when it is valid UTF-8, otherwise base64. */
  body: string;
  bodyEncoding: 'utf8' | 'base64';
  /** The last error (for jobs delivered too often without an error seen here: a MaxAttemptsError). */
  error: { name: string; message: string; stack?: string };
  nacks: number;
  additionalDeliveries: number;
  /** Deliveries counted, including the last one. */
  attempts: number;
  /** ID of the node that delivered the job the last time. */
  nodeId?: string;
  /** ISO time the worker gave up. */
  failedAt: string;
}

/** A dead letter read back, with the original body bytes. */
export interface DeadLetter extends Omit<DeadLetterEnvelope, 'body' | 'bodyEncoding' | 'failedAt'> {
  body: Buffer;
  failedAt: Date;
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

export function makeEnvelope(
  job: { id: string; queue: string; body: Buffer; nacks?: number; additionalDeliveries?: number },
  error: unknown,
  attempts: number,
  nodeId: string | undefined,
): DeadLetterEnvelope {
  const utf8 = isUtf8(job.body);
  const e = error instanceof Error ? error : new Error(String(error));
  return {
    id: job.id,
    queue: job.queue,
    body: job.body.toString(utf8 ? 'utf8' : 'base64'),
    bodyEncoding: utf8 ? 'utf8' : 'base64',
    error: { name: e.name, message: e.message, ...(e.stack === undefined ? {} : { stack: e.stack }) },
    nacks: job.nacks ?? 0,
    additionalDeliveries: job.additionalDeliveries ?? 0,
    attempts,
    ...(nodeId === undefined ? {} : { nodeId }),
    failedAt: new Date().toISOString(),
  };
}

/** Reads a dead-letter job body (as GETJOB returned it) back. */
export function parseDeadLetter(body: Buffer | string): DeadLetter {
  const env = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as DeadLetterEnvelope;
  const { body: text, bodyEncoding, failedAt, ...rest } = env;
  return { ...rest, body: Buffer.from(text, bodyEncoding === 'base64' ? 'base64' : 'utf8'), failedAt: new Date(failedAt) };
}
