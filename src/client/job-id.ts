// Job IDs: `D-<first 8 hex of the creating node's ID>-<24 random chars>-<4 hex>`.
// The last field is the TTL in minutes, with its lowest bit telling at most
// once (even) from at least once (odd) jobs.

const JOB_ID = /^D-([0-9a-f]{8})-[A-Za-z0-9+/]{24}-([0-9a-f]{4})$/;

/** What a job ID tells without asking the server. */
export interface JobIdInfo {
  /** First 8 hex characters of the ID of the node that created the job. */
  nodePrefix: string;
  /** Approximate TTL in minutes as encoded in the ID. */
  ttlMinutes: number;
  /** True for RETRY 0 jobs (delivered at most once). */
  atMostOnce: boolean;
}

/** True if `id` has the shape of a Disque job ID. */
export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}

/** Parses a job ID; undefined if it does not have the Disque shape. */
export function parseJobId(id: string): JobIdInfo | undefined {
  const m = JOB_ID.exec(id);
  if (!m) return undefined;
  const ttl = parseInt(m[2]!, 16);
  return { nodePrefix: m[1]!, ttlMinutes: ttl, atMostOnce: (ttl & 1) === 0 };
}

/** The node prefix of a job ID (undefined for malformed IDs). */
export function jobNodePrefix(id: string): string | undefined {
  return JOB_ID.exec(id)?.[1];
}
