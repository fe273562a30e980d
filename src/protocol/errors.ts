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
  if (!/^(0|-?[1-9]\d{0,18})$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}
