// Public API of the disque-ts client library.
export { Disque, type DisqueOptions, type PauseOptions } from './client.js';
export { Worker, type WorkerOptions, type WorkerStats, type WorkerEvents, type JobHandler, type JobContext, type Backoff } from './worker.js';
export { task, Task, type TaskOptions, type TaskContext, type TaskEnvelope, Chain, type EnqueueOptions, type BatchOptions, type BatchCallback } from './task.js';
export { ResultHandle, GroupHandle, type ResultOptions, type WaitOptions, type Progress } from './results.js';
export { BatchHandle, tallyQueue, type BatchOutcome } from './batch.js';
export { progressQueue, readProgress } from './progress.js';
export { setImmediateMode, immediateMode } from './immediate.js';
export { kick, revokeJob, rescheduleJob, AlreadyDeliveredError, type KickOptions } from './control.js';
export type { TaskFailure, RemoteError } from './envelope.js';
export { schedule, Scheduler, nextTick, lastTickAtOrBefore, planTick, type SchedulerOptions, type SchedulerEvents, type ScheduleTarget, type ScheduleTick, type ScheduledJobBody, type ScheduleSpec, type EverySpec, type CronSpec, type TickPlan } from './schedule.js';
export { codecs, bufferCodec, stringCodec, jsonCodec, msgpackCodec, type Codec, type BodyInput } from './codec.js';
export { parseDeadLetter, type DeadLetter, type DeadLetterEnvelope } from './dead-letter.js';
export { isJobId, parseJobId, type JobIdInfo } from './job-id.js';
export type { FollowProducersOptions } from './follow.js';
export type { Address, AddressSpec } from './nodes.js';
export type { FailoverReason, ConnectionEvents } from './connection.js';
export * from './errors.js';
export type * from './types.js';
