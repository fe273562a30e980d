// Who may use the node, as the directives say: protected mode (no
// requirepass and no bind: loopback clients only) and the requirepass
// check. The client port (src/server), the AUTH commands (src/commands) and
// HTTP (src/http) all decide with these, so the rules live in one place.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from './config.js';

/** 127.0.0.0/8, ::1, and 127.x as an IPv6 socket shows it (::ffff:127.x.y.z). */
export function isLoopback(addr: string | undefined): boolean {
  if (addr === undefined) return false;
  const a = addr.toLowerCase();
  if (a === '::1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Whether protected mode turns away a client connecting from `addr`. */
export function protectedModeRefuses(config: Config, addr: string | undefined): boolean {
  return (
    config.bool('protected-mode') &&
    config.str('requirepass') === '' &&
    config.list('bind').length === 0 &&
    !isLoopback(addr)
  );
}

/**
 * Whether `given` is the requirepass (never, when none is set). SHA-256
 * digests are compared in constant time, so the time taken says nothing
 * about the password or its length. `encoding`: how `given` holds its bytes
 * (latin1 for RESP arguments, utf8 for HTTP).
 */
export function passwordMatches(config: Config, given: string, encoding: 'latin1' | 'utf8' = 'latin1'): boolean {
  const pass = config.str('requirepass');
  if (pass === '') return false;
  const a = createHash('sha256').update(given, encoding).digest();
  const b = createHash('sha256').update(pass, 'latin1').digest();
  return timingSafeEqual(a, b);
}
