// OpenTelemetry spans for task calls, through @opentelemetry/api when the
// application has it (an optional peer dependency, loaded on first use).
// Without it, or without an SDK registered, spans are not recording and
// nothing is added to the call. The enqueue span's context travels in the
// call as a W3C traceparent string, so the processing span is its child
// whichever process runs the handler.
import { createRequire } from 'node:module';
import type * as Otel from '@opentelemetry/api';

type Api = typeof Otel;
let loaded: Api | null | undefined;

/** The application's @opentelemetry/api, or null when it has none. */
function otel(): Api | null {
  if (loaded === undefined) {
    try {
      // The API keeps its registered SDK on globalThis: this copy sees the application's.
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as Api;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

const TRACER = 'disque-ts';

/** What a span of a task call is about. */
export interface CallInfo {
  task: string;
  queue: string;
}

/** An enqueue span in flight: its traceparent goes into the call; end() once ADDJOB answered. */
export interface EnqueueSpan {
  traceparent: string;
  end(result: { jobId?: string; count?: number; error?: unknown }): void;
}

/** Starts the span of an enqueue (a child of the active span); undefined when nobody records. */
export function startEnqueueSpan(info: CallInfo): EnqueueSpan | undefined {
  const api = otel();
  if (!api) return undefined;
  const span = api.trace.getTracer(TRACER).startSpan(`enqueue ${info.task}`, {
    kind: api.SpanKind.PRODUCER,
    attributes: {
      'messaging.system': 'disque',
      'messaging.operation.type': 'send',
      'messaging.destination.name': info.queue,
      'disque.task': info.task,
    },
  });
  if (!span.isRecording()) return undefined;
  const sc = span.spanContext();
  return {
    traceparent: `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`,
    end({ jobId, count, error }) {
      if (jobId !== undefined) span.setAttribute('messaging.message.id', jobId);
      if (count !== undefined) span.setAttribute('messaging.batch.message_count', count);
      if (error !== undefined) fail(api, span, error);
      span.end();
    },
  };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Runs `fn` (the handler and what follows it before the ACK) inside a
 * processing span, the child of the call's enqueue span; a throw is
 * recorded on the span and passed on.
 */
export async function traceProcess<R>(
  info: CallInfo & { jobId: string; attempt: number; traceparent: string | undefined },
  fn: () => Promise<R>,
): Promise<R> {
  const api = otel();
  if (!api) return fn();
  let parent = api.context.active();
  const m = info.traceparent === undefined ? null : TRACEPARENT.exec(info.traceparent);
  if (m) parent = api.trace.setSpanContext(parent, { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16), isRemote: true });
  const span = api.trace.getTracer(TRACER).startSpan(
    `process ${info.task}`,
    {
      kind: api.SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'disque',
        'messaging.operation.type': 'process',
        'messaging.destination.name': info.queue,
        'messaging.message.id': info.jobId,
        'disque.task': info.task,
        'disque.attempt': info.attempt,
      },
    },
    parent,
  );
  if (!span.isRecording()) return fn();
  try {
    return await api.context.with(api.trace.setSpan(parent, span), fn);
  } catch (e) {
    fail(api, span, e);
    throw e;
  } finally {
    span.end();
  }
}

function fail(api: Api, span: Otel.Span, error: unknown): void {
  const e = error instanceof Error ? error : new Error(String(error));
  span.recordException(e);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: e.message });
}
