// Small helpers to read replies in tests.

/** The error text of a reply that must fail (the test fails if it succeeds). */
export async function err(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error reply');
}

/** SHOW / QSTAT style flat [field, value, ...] replies as an object. */
export function pairs(reply: unknown): Record<string, unknown> {
  const a = reply as unknown[];
  const o: Record<string, unknown> = {};
  for (let i = 0; i < a.length; i += 2) o[String(a[i])] = a[i + 1];
  return o;
}

/** One field of an INFO (or CLUSTER INFO) reply. */
export function infoField(info: string, field: string): string | undefined {
  return info.split('\r\n').find((l) => l.startsWith(field + ':'))?.slice(field.length + 1);
}
