// Queue names and job bodies are bytes: the node keeps them as latin1
// strings (one char per byte, as clients sent them). HTTP speaks UTF-8:
// names from URLs and JSON are turned into those bytes, and names shown in
// JSON or /metrics are the bytes read as UTF-8.

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** A node-side (latin1) string as text. */
export function fromWire(s: string): string {
  return PRINTABLE_ASCII.test(s) ? s : Buffer.from(s, 'latin1').toString('utf8');
}

/** Text from a URL or JSON as the node-side (latin1) string of its UTF-8 bytes. */
export function toWire(s: string): string {
  return PRINTABLE_ASCII.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}
