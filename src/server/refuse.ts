// Turning a just-accepted client away with an error (protected mode,
// maxclients). Sockets are accepted paused: ending one that is never read
// leaves it open for good, since its end-of-stream is never seen, and
// closing it with unread input makes the kernel reset the connection, which
// can discard the error before the client reads it. So the input is read
// and dropped until the client hangs up, and a client that does not is cut
// off after a short while.
import type { Socket } from 'node:net';

/** How long a refused client may keep its connection open after the error. */
export const REFUSED_LINGER_MS = 2000;

export function refuseConnection(socket: Socket, error: string): void {
  socket.on('error', () => {});
  socket.end(error);
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
