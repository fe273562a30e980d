// Error replies in the reference's words (code word first, no leading '-').
export const errors = {
  syntax: 'ERR syntax error',
  notInteger: 'ERR value is not an integer or out of range',
  timeoutNotInteger: 'ERR timeout is not an integer or out of range',
  timeoutNegative: 'ERR timeout is negative',
  noauth: 'NOAUTH Authentication required.',
  oom: "OOM command not allowed when used memory > 'maxmemory'.",
  loading: 'LOADING Disque is loading the dataset in memory',
  leaving: 'LEAVING This node is leaving the cluster, please connect to a different one',
  badId: 'BADID Invalid Job ID format.',
  noJob: 'NOJOB Job not known in the context of this node.',
  tooLate:
    'TOOLATE Half of job TTL already elapsed, you are no longer allowed to postpone the next delivery.',
  paused: 'PAUSED Queue paused in input, try later',
  maxlen: 'MAXLEN Queue is already longer than the specified MAXLEN count',
  noreplTimeout: 'NOREPL Timeout reached before replicating to the requested number of nodes',
  noreplNotEnough: 'NOREPL Not enough reachable nodes for the requested replication level',
  noreplRemoved: 'NOREPL job removed (expired?) before the requested replication level was achieved',
  invalidCursor: 'ERR invalid cursor or option name',
} as const;

/** Parses a whole decimal integer as the reference's string2ll does. */
export function parseInteger(s: string): number | undefined {
  // By hand: this runs for several arguments of most commands.
  const len = s.length;
  let i = 0;
  let neg = false;
  if (len > 0 && s.charCodeAt(0) === 0x2d) {
    neg = true;
    i = 1;
  }
  const digits = len - i;
  if (digits < 1 || digits > 19) return undefined;
  const first = s.charCodeAt(i);
  // No leading zeros (and no "-0"): "0" alone is the only number starting with 0.
  if (first === 0x30) return digits === 1 && !neg ? 0 : undefined;
  let n = 0;
  for (; i < len; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  if (neg) n = -n;
  return Number.isSafeInteger(n) ? n : undefined;
}
