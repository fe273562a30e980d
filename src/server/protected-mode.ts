// Protected mode (ours; Redis 3.2's, with Redis 6's conditions): a node
// started with no requirepass and no bind listens on every interface with
// nothing guarding its jobs, so until one of the two is set it serves only
// clients on this machine. Anyone else is told why and how to change it,
// then disconnected before any command runs. Checked per connection, so
// CONFIG SET of protected-mode or requirepass applies to the next client.
import type { Socket } from 'node:net';
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import type { Stats } from '../commands/context.js';
import { refuseConnection } from './refuse.js';
import { protectedModeRefuses } from '../config/access.js';

// The rule itself is in src/config/access.ts (HTTP applies it too).
export { isLoopback, protectedModeRefuses } from '../config/access.js';

/** Redis 6's text, naming this server. */
export const PROTECTED_MODE_ERROR =
  '-DENIED Disque is running in protected mode because protected mode is enabled, no bind address was ' +
  'specified, no authentication password is requested to clients. In this mode connections are only ' +
  'accepted from the loopback interface. If you want to connect from external computers to Disque you ' +
  'may adopt one of the following solutions: 1) Just disable protected mode sending the command ' +
  "'CONFIG SET protected-mode no' from the loopback interface by connecting to Disque from the same host " +
  'the server is running, however MAKE SURE Disque is not publicly accessible from internet if you do so. ' +
  'Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected ' +
  "mode by editing the Disque configuration file, and setting the protected mode option to 'no', and then " +
  'restarting the server. 3) If you started the server manually just for testing, restart it with the ' +
  "'--protected-mode no' option. 4) Setup a bind address or an authentication password (requirepass). " +
  'NOTE: You only need to do one of the above things in order for the server to start accepting ' +
  'connections from the outside.\r\n';

/**
 * For each accepted socket: true when protected mode refused it (the error
 * is on its way, the socket is closing, rejected_connections counted).
 * A socket with no address (already gone) is refused too.
 */
export function refuseInProtectedMode(
  host: { readonly config: Config; readonly log: Logger; readonly stats: Stats },
  socket: Socket,
): boolean {
  if (!protectedModeRefuses(host.config, socket.remoteAddress)) return false;
  host.stats.rejectedConnections++;
  host.log.limited('verbose', 'protected-mode', `Protected mode: refused a client from ${socket.remoteAddress}:${socket.remotePort}`);
  refuseConnection(socket, PROTECTED_MODE_ERROR);
  return true;
}
