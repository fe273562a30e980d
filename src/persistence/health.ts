// Redis health: the connection this node persists through, and whether
// writes to it work. This is where -MISCONF comes from.
//
// When a write fails (fail), the node stops capturing records (the next
// snapshot will hold the state anyway), answers write commands -MISCONF
// (writeError), and retries with backoff; once Redis answers it writes a
// fresh snapshot (a "resync", which also replaces whatever Redis kept or
// lost) and replies that were waiting are released (recovered). The
// journal, the snapshotter and the facade read the state kept here; this
// file learns about them only through HealthEvents, so it imports nothing
// else of persistence but the key names and the TLS options (redis-tls.ts).
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type { PersistenceHost } from './host.js';
import type { NodeKeys } from './keys.js';
import { describeTlsFailure, refusedAfterHandshake, type RedisTls } from './redis-tls.js';

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;
/** A TLS failure repeats at every reconnection: the same one is logged at most this often. */
const TLS_LOG_EVERY_MS = 60_000;

/**
 * Consumers keep working while Redis is failing: what these commands change
 * is either not persisted (deliveries, re-queue times) or safe to lose (an
 * ack lost in a crash means one more delivery, never a lost job).
 */
const ALLOWED_WHILE_FAILING = new Set(['getjob', 'ackjob', 'fastack', 'working', 'nack']);

export type FailureKind = 'redis_unreachable' | 'redis_error';

/** The URL without its password, for logs and INFO. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** An error text fit for one log line or one reply. */
export function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

/** What the rest of persistence does when the health changes. */
export interface HealthEvents {
  /** A write failed: drop captured records and the snapshot under way (the resync covers them). */
  failed(): void;
  /** The client is ready again while a resync is wanted: try it now. */
  ready(): void;
}

export class RedisHealth {
  /** appendonly: capture records and keep Redis in step. */
  enabled = false;
  /** Shutting down: a closing connection is no failure, and no snapshot or resync starts. */
  stopping = false;
  redis: Redis | null = null;
  keys: NodeKeys | null = null;
  /** Bumped when the client is dropped, so late callbacks of the old one are ignored. */
  epoch = 0;
  private lastConnError = '';
  /** TLS options for a rediss:// redis-url, read at start-up (readRedisTls), or null. */
  tls: RedisTls | null = null;
  /** Our side of the TLS handshake completed and Redis has not answered yet. */
  private handshaken = false;
  /** The current connection attempt already reported an error (TLS or not). */
  private attemptFailed = false;
  /** The last TLS failure logged, when, and how often it came back since. */
  private tlsLog = { text: '', at: 0, repeats: 0 };

  /** Why writes fail now (the -MISCONF text), or null while they work. */
  failure: string | null = null;
  failureKind: FailureKind = 'redis_error';
  lastWriteStatus: 'ok' | 'err' = 'ok';
  /** A resync snapshot must commit before journal entries go out again. */
  resyncWanted = false;
  /** A resync attempt (load after the outage, then the snapshot) is under way. */
  recovering = false;
  private retryDelay = 0;
  /** Date.now() before which no resync is attempted (backoff). */
  retryAt = 0;

  constructor(
    private readonly node: PersistenceHost,
    private readonly events: HealthEvents,
  ) {}

  /** The client, made on first use; ioredis keeps reconnecting it. */
  connect(): Redis {
    if (this.redis !== null) return this.redis;
    const epoch = ++this.epoch;
    const url = this.node.config.str('redis-url');
    // Loaded on first use (ioredis takes ~100 ms to load): a node without
    // persistence never needs it, and starts that much sooner.
    const { Redis } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
    const redis = new Redis(url, {
      // ioredis turns TLS on for a rediss:// URL; these add our CA and client certificate.
      ...(this.tls !== null ? { tls: { ...this.tls } } : {}),
      lazyConnect: true,
      // Fail fast instead of queueing: a write that cannot happen now is a
      // failure the node must know about (MISCONF, resync).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(RETRY_MIN_MS * 2 ** Math.min(times, 6), RETRY_MAX_MS),
      connectTimeout: 5000,
      commandTimeout: 30_000,
      protocol: 2,
      connectionName: `disque-${this.node.cluster.myself.id.slice(0, 8)}`,
      disableClientInfo: true,
    });
    redis.on('connect', () => {
      if (epoch === this.epoch && this.tls !== null) this.handshaken = true;
    });
    redis.on('error', (e: Error) => {
      if (epoch !== this.epoch) return;
      this.attemptFailed = true;
      const tlsFailure = this.tls !== null ? describeTlsFailure(e, this.handshaken, this.tls.cert !== undefined) : null;
      if (tlsFailure !== null) {
        this.lastConnError = tlsFailure;
        this.logTlsFailure(tlsFailure);
        return;
      }
      this.lastConnError = oneLine(e.message);
      this.node.log.verbose(`Redis (persistence): ${this.lastConnError}`);
    });
    redis.on('close', () => {
      if (epoch !== this.epoch) return;
      if (this.handshaken && !this.attemptFailed && this.tls !== null) {
        // Closed after our handshake without a word: Redis refused our certificate (TLS 1.3).
        this.lastConnError = refusedAfterHandshake('connection closed', this.tls.cert !== undefined);
        this.logTlsFailure(this.lastConnError);
      }
      this.handshaken = false;
      this.attemptFailed = false;
      if (this.stopping) return;
      if (this.enabled && this.failure === null) {
        this.fail(new Error(`connection to Redis lost${this.lastConnError ? ` (${this.lastConnError})` : ''}`), 'redis_unreachable');
      }
    });
    redis.on('ready', () => {
      if (epoch !== this.epoch) return;
      this.handshaken = false;
      if (this.tlsLog.text !== '') {
        this.node.log.notice('Persistence: the TLS connection to Redis works again');
        this.tlsLog = { text: '', at: 0, repeats: 0 };
      }
      if (this.resyncWanted) {
        this.retryAt = 0;
        this.events.ready();
      }
    });
    redis.connect().catch(() => {
      // Reported through 'error' and 'close'; ioredis keeps reconnecting.
    });
    this.redis = redis;
    return redis;
  }

  /**
   * Logs the first TLS failure at once, then at most one every
   * TLS_LOG_EVERY_MS while they go on, whatever their text (a refused
   * certificate shows up as an alert or as a reset, by turns).
   */
  private logTlsFailure(text: string): void {
    const now = Date.now();
    const last = this.tlsLog;
    if (last.text !== '' && now - last.at < TLS_LOG_EVERY_MS) {
      last.repeats++;
      return;
    }
    const repeats = last.repeats > 0 ? ` (${last.repeats} more failed attempts since the last report)` : '';
    this.node.log.warning(`Persistence: ${text}; Redis at ${redactUrl(this.node.config.str('redis-url'))}, retrying${repeats}`);
    this.tlsLog = { text, at: now, repeats: 0 };
  }

  waitReady(redis: Redis, ms: number): Promise<void> {
    if (redis.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (e?: Error): void => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        redis.off('close', onClose);
        if (e) reject(e);
        else resolve();
      };
      const onReady = (): void => done();
      const onClose = (): void => done(new Error(`Redis is unreachable${this.lastConnError ? ` (${this.lastConnError})` : ''}`));
      const timer = setTimeout(() => done(new Error('timed out connecting to Redis')), ms);
      redis.on('ready', onReady);
      redis.on('close', onClose);
    });
  }

  /**
   * Forgets the client at once, so a new one can start meanwhile; its late
   * callbacks are ignored. Returns it for the caller to close.
   */
  detach(): Redis | null {
    const redis = this.redis;
    this.redis = null;
    this.epoch++;
    return redis;
  }

  /** A write failed: refuse writes, drop captured records (the resync covers them), retry later. */
  fail(e: Error, kind?: FailureKind): void {
    const reason = oneLine(e.message);
    this.failureKind = kind ?? (this.redis?.status === 'ready' ? 'redis_error' : 'redis_unreachable');
    this.lastWriteStatus = 'err';
    if (this.failure === null) {
      this.node.log.warning(`Persistence: writing to Redis failed (${reason}). Write commands are refused with -MISCONF until Redis is back.`);
    }
    this.failure =
      this.failureKind === 'redis_unreachable' && this.redis?.status !== 'ready' && !reason.startsWith('Redis is unreachable')
        ? `Redis is unreachable (${reason})`
        : reason;
    this.resyncWanted = true;
    this.events.failed();
    this.retryDelay = Math.min(Math.max(RETRY_MIN_MS, this.retryDelay * 2), RETRY_MAX_MS);
    this.retryAt = Date.now() + this.retryDelay;
  }

  /** Whether a wanted resync may be tried now (Redis ready, backoff over). */
  recoveryDue(): boolean {
    if (!this.resyncWanted || this.recovering || this.stopping) return false;
    if (!this.enabled || this.redis === null || this.redis.status !== 'ready') return false;
    return Date.now() >= this.retryAt;
  }

  /** A resync snapshot committed: Redis holds our state again. Returns whether writes had been failing. */
  recovered(): boolean {
    const wasFailing = this.failure !== null;
    this.failure = null;
    this.resyncWanted = false;
    this.retryDelay = 0;
    this.lastWriteStatus = 'ok';
    return wasFailing;
  }

  /** The reason writes currently fail, or null: write commands answer -MISCONF meanwhile. */
  writeError(command?: string): string | null {
    if (this.failure === null) return null;
    if (command !== undefined && ALLOWED_WHILE_FAILING.has(command)) return null;
    return this.failure;
  }
}

/** Closes a detached client, giving a polite QUIT a second. */
export async function closeClient(redis: Redis): Promise<void> {
  try {
    await Promise.race([redis.quit(), new Promise((r) => setTimeout(r, 1000))]);
  } catch {
    // Already closed.
  }
  redis.disconnect();
}
