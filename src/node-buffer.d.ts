// Buffer methods Node has long had but @types/node does not declare: the
// per-encoding forms that toString() and write() dispatch to. Calling them
// directly skips that dispatch, which shows on the hot paths.
interface Buffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length?: number): number;
  utf8Write(s: string, offset: number, length?: number): number;
}
