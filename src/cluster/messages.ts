// The bus's message vocabulary: types (the reference's, plus the secret
// handshake), flags and the fields every message carries. bus.ts moves
// frames; the files named after protocols handle the messages.
/**
 * 3: job messages (REPLJOB, YOURJOBS and the job-ID messages) travel in the
 * binary layout of job-frames.ts, several per frame. (2 sent them as msgpack
 * maps.) Nodes of different versions refuse each other's links rather than
 * misread each other.
 */
export const BUS_PROTOCOL_VERSION = 3;

/** Message types: the reference's, ours (policies, NACK DELAY), and the secret handshake. */
export const MsgType = {
  PING: 0,
  PONG: 1,
  MEET: 2,
  FAIL: 3,
  REPLJOB: 4,
  GOTJOB: 5,
  ENQUEUE: 6,
  QUEUED: 7,
  SETACK: 8,
  WILLQUEUE: 9,
  GOTACK: 10,
  DELJOB: 11,
  NEEDJOBS: 12,
  YOURJOBS: 13,
  WORKING: 14,
  PAUSE: 15,
  // Ours (msgpack, like gossip; nodes that do not know them ignore them):
  /** NACK ... DELAY: the other owners wait for the delay (`ids`, `a`: delay in ms). */
  NACKDELAY: 16,
  /** Queue policy records (`ps`), with the allocation when straight from the node that made the version (`a`: 1). */
  QPOLICY: 17,
  /** Shares of a policy's limits: a request (`w`), a grant (`g`) or a report (`rr`, `rc`). */
  QSHARE: 18,
  AUTH_HELLO: 100,
  AUTH_CHALLENGE: 101,
  AUTH_PROOF: 102,
} as const;

export const MSG_NAMES: Record<number, string> = Object.fromEntries(Object.entries(MsgType).map(([k, v]) => [v, k]));

/** Message flags (the reference's mflags[0]). */
export const MSG_FLAG_NOREPLY = 1 << 0;
export const MSG_FLAG_INCR_NACKS = 1 << 1;
export const MSG_FLAG_INCR_DELIV = 1 << 2;

/** Header fields every message carries. */
export interface BusHeader {
  /** Protocol version. */
  v: number;
  /** Sender node ID. */
  s: string;
  /** Sender client port. */
  p: number;
  /** Sender node flags. */
  f: number;
}

/** Every message: header fields plus a type-specific body. */
export interface BusMessage extends BusHeader {
  /** Type (MsgType). */
  t: number;
  /** Message flags (MSG_FLAG_*). */
  m?: number;
  [key: string]: unknown;
}
