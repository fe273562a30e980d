// Errors raised by the client. Server error replies start with a code word
// (NOREPL, PAUSED, ...); each known code has its own class so callers can
// `catch (e) { if (e instanceof PausedError) ... }` instead of matching text.

/** Base class of every error this library throws. */
export class DisqueError extends Error {
  override name = 'DisqueError';
}

/** An error reply from the server. `code` is its first word, e.g. `NOREPL`. */
export class ReplyError extends DisqueError {
  override name = 'ReplyError';
  /** The reply's code word, e.g. `NOREPL`, `ERR`. */
  readonly code: string;
  /** The command that got the reply, upper case, e.g. `ADDJOB`. */
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.code = /^[A-Z]+/.exec(message)?.[0] ?? 'ERR';
    this.command = command;
  }
}

/** `-ERR`: a generic error (syntax, bad argument, unknown command). */
export class CommandError extends ReplyError {
  override name = 'CommandError';
}
/** `-NOREPL`: ADDJOB could not reach the requested replication level in time. */
export class NoReplError extends ReplyError {
  override name = 'NoReplError';
}
/** `-PAUSED`: the queue is paused in input. */
export class PausedError extends ReplyError {
  override name = 'PausedError';
}
/** `-MAXLEN`: the queue already holds at least MAXLEN jobs. */
export class MaxLenError extends ReplyError {
  override name = 'MaxLenError';
}
/** `-LEAVING`: the node is leaving the cluster; talk to another node. */
export class LeavingError extends ReplyError {
  override name = 'LeavingError';
}
/** `-NOJOB`: the node does not know the job (WORKING). */
export class NoJobError extends ReplyError {
  override name = 'NoJobError';
}
/** `-TOOLATE`: half of the job's TTL has elapsed; WORKING is refused. */
export class TooLateError extends ReplyError {
  override name = 'TooLateError';
}
/** `-BADID`: a malformed job ID. */
export class BadIdError extends ReplyError {
  override name = 'BadIdError';
}
/** `-OOM`: the server is out of memory. */
export class OomError extends ReplyError {
  override name = 'OomError';
}
/** `-LOADING`: the server is still loading its data set. */
export class LoadingError extends ReplyError {
  override name = 'LoadingError';
}
/** `-NOAUTH` / `-WRONGPASS`: authentication required or refused. */
export class AuthError extends ReplyError {
  override name = 'AuthError';
}

const byCode: Record<string, new (message: string, command?: string) => ReplyError> = {
  ERR: CommandError,
  NOREPL: NoReplError,
  PAUSED: PausedError,
  MAXLEN: MaxLenError,
  LEAVING: LeavingError,
  NOJOB: NoJobError,
  TOOLATE: TooLateError,
  BADID: BadIdError,
  OOM: OomError,
  LOADING: LoadingError,
  NOAUTH: AuthError,
  WRONGPASS: AuthError,
};

/** The typed error for a server error reply text such as `PAUSED Queue paused...`. */
export function replyError(message: string, command?: string): ReplyError {
  const code = /^[A-Z]+/.exec(message)?.[0] ?? '';
  const Cls = byCode[code] ?? ReplyError;
  return new Cls(message, command);
}

/** No node could be reached (or every node was leaving) within `failoverTimeout`. */
export class ConnectionError extends DisqueError {
  override name = 'ConnectionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The client was closed with `quit()`/`disconnect()` before the command completed. */
export class ClientClosedError extends DisqueError {
  override name = 'ClientClosedError';
  constructor(message = 'the client is closed') {
    super(message);
  }
}

/** A cluster-wide operation (drain) could not reach every node HELLO lists; it did what it could on the others. */
export class UnreachableNodesError extends DisqueError {
  override name = 'UnreachableNodesError';
  constructor(
    message: string,
    /** IDs of the nodes not reached (or that failed midway). */
    readonly nodeIds: string[],
    /** What was done on the other nodes: for drain(), the jobs deleted. */
    readonly done: number,
  ) {
    super(message);
  }
}

/** The command was in flight when `interrupt()` ended it; it may or may not have run. */
export class InterruptedError extends DisqueError {
  override name = 'InterruptedError';
  constructor(message = 'interrupted before the reply arrived') {
    super(message);
  }
}

/** A job body could not be encoded or decoded by the codec in use. */
export class CodecError extends DisqueError {
  override name = 'CodecError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The worker gave up on a job because it was delivered too many times. */
export class MaxAttemptsError extends DisqueError {
  override name = 'MaxAttemptsError';
}

/** A task's arguments were refused before anything was sent: not JSON-serialisable, or its `validate` said no. */
export class InvalidArgumentsError extends DisqueError {
  override name = 'InvalidArgumentsError';
  constructor(
    message: string,
    /** Where in the arguments, e.g. `args.to[2]` (undefined when `validate` refused them). */
    readonly path?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The task failed for good (its worker gave up on it); `remote` is the error its handler threw. */
export class TaskFailedError extends DisqueError {
  override name = 'TaskFailedError';
  constructor(
    message: string,
    /** The error as the worker reported it. */
    readonly remote: { name: string; message: string; stack?: string },
    /** Task and job ID of the step that failed. */
    readonly task: string,
    readonly jobId: string,
    /** Deliveries counted, including the last one. */
    readonly attempts: number,
  ) {
    super(message);
  }
}

/** No result (or no start) arrived within the timeout, or within the result's TTL. */
export class TaskTimeoutError extends DisqueError {
  override name = 'TaskTimeoutError';
}

/** The call was revoked through its handle before its result arrived. */
export class TaskRevokedError extends DisqueError {
  override name = 'TaskRevokedError';
}

/**
 * The reason of a handler's `ctx.signal` when the job was revoked while it
 * ran: acknowledged (ACKJOB from any client or node, the dashboard) or
 * deleted elsewhere. The worker neither acknowledges nor NACKs it after.
 */
export class JobRevokedError extends DisqueError {
  override name = 'JobRevokedError';
  constructor(
    /** The job's ID. */
    readonly jobId: string,
    message = `job ${jobId} was revoked (acknowledged or deleted elsewhere) while its handler ran`,
  ) {
    super(message);
  }
}
