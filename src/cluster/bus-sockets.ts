// Bus sockets: plain TCP, or with tls-cluster mutual TLS. Both ends present the node's
// tls-cert-file and check the peer's against tls-ca-cert-file/dir; the peer's
// name is not checked (peers are reached by the address gossip gives, as in
// Redis Cluster), the CA is what admits a node. The cluster-secret handshake
// still runs inside the encrypted link.
import net from 'node:net';
import tls from 'node:tls';
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import { loadTls, TLS_DIRECTIVES, type TlsSettings } from '../config/tls.js';

const HANDSHAKE_LOG_MS = 10_000;

export class BusSockets {
  private settings: TlsSettings | null = null;
  private servers: tls.Server[] = [];
  private readonly lastFailureLog = new Map<string, number>();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  get secure(): boolean {
    return this.settings !== null;
  }

  /** Loads the certificates (tls-cluster yes); throws naming the directive at fault. */
  init(): void {
    if (!this.config.bool('tls-cluster')) return;
    this.settings = loadTls(this.config);
    for (const d of TLS_DIRECTIVES) this.config.onChange(d, this.reload);
  }

  /** A listener whose `onLink` gets sockets ready for bus frames (TLS: after the handshake). */
  createServer(onLink: (socket: net.Socket) => void): net.Server {
    const t = this.settings;
    if (t === null) return net.createServer({ pauseOnConnect: true }, onLink);
    const srv = tls.createServer({ ...t.context, requestCert: true, rejectUnauthorized: true }, onLink);
    srv.on('tlsClientError', (e, s) => this.handshakeFailed((s.remoteAddress ?? '').replace(/^::ffff:/, ''), e));
    this.servers.push(srv);
    return srv;
  }

  /**
   * The address links leave from: the first `bind` address, as the
   * reference does, so peers see (and gossip) the address this node listens
   * on, and rules keyed on addresses (a firewall, a partition in the fault
   * tests) apply to the bus too. None for a wildcard or another family than
   * the peer's.
   */
  private sourceAddress(host: string): string | undefined {
    const bind = this.config.list('bind')[0];
    if (bind === undefined || bind === '*' || bind === '0.0.0.0' || bind === '::') return undefined;
    const family = net.isIP(bind);
    return family !== 0 && family === net.isIP(host) ? bind : undefined;
  }

  /** Opens a link socket; `ready` is the event after which frames may flow. */
  connect(host: string, port: number): { socket: net.Socket; ready: 'connect' | 'secureConnect' } {
    const t = this.settings;
    const localAddress = this.sourceAddress(host);
    if (t === null) return { socket: net.connect({ host, port, localAddress }), ready: 'connect' };
    // tls.connect takes net.connect's options too (localAddress), though its type omits them.
    const options: tls.ConnectionOptions & net.TcpNetConnectOpts = {
      host,
      port,
      localAddress,
      ...t.context,
      rejectUnauthorized: true,
      checkServerIdentity: () => undefined,
    };
    const socket = tls.connect(options);
    let secured = false;
    socket.once('secureConnect', () => (secured = true));
    // Refused connections are the failure detector's business; a refused certificate is worth a line.
    socket.once('error', (e: NodeJS.ErrnoException) => {
      if (!secured && e.code !== 'ECONNREFUSED' && e.code !== 'ECONNRESET') this.handshakeFailed(`${host}:${port}`, e);
    });
    return { socket, ready: 'secureConnect' };
  }

  /**
   * A peer failed the TLS handshake (its certificate, or ours to it). Links
   * are retried every few hundred milliseconds, so one line per peer every
   * HANDSHAKE_LOG_MS.
   */
  private handshakeFailed(peer: string, e: Error): void {
    const now = Date.now();
    if (now - (this.lastFailureLog.get(peer) ?? 0) < HANDSHAKE_LOG_MS) return;
    this.lastFailureLog.set(peer, now);
    if (this.lastFailureLog.size > 1000) this.lastFailureLog.clear();
    this.log.warning(`Cluster bus TLS handshake with ${peer} failed: ${e.message}`);
  }

  /** A tls-* CONFIG SET: new links use the new certificates (the client listener already vetted them). */
  private readonly reload = (): void => {
    const t = loadTls(this.config);
    this.settings = t;
    for (const s of this.servers) s.setSecureContext(t.context);
  };
}
