// A TCP proxy in front of a server that counts round trips: a round trip
// starts when the client sends after the server last answered (or first).
// Commands written together before waiting for replies are one round trip;
// commands each awaited before the next are one each.
import net from 'node:net';

export interface CountingProxy {
  port: number;
  /** Round trips since the last reset(). */
  readonly roundTrips: number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: number, host = '127.0.0.1'): Promise<CountingProxy> {
  let roundTrips = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, host);
    sockets.add(client).add(upstream);
    // Per connection: did the server answer since the client last sent?
    let answered = true;
    client.on('data', (d) => {
      if (answered) roundTrips++;
      answered = false;
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      answered = true;
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get roundTrips() {
      return roundTrips;
    },
    reset() {
      roundTrips = 0;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
