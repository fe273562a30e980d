// The client listeners: plain TCP on `port`, TLS on `tls-port`, on each
// `bind` address. TLS settings are reloaded in place on CONFIG SET of a
// tls-* directive: new connections get the new certificate, connected
// clients keep their session.
import net from 'node:net';
import tls from 'node:tls';
import type { Config } from '../config/config.js';
import type { Logger } from '../config/log.js';
import { loadTls, TLS_DIRECTIVES, type TlsSettings } from '../config/tls.js';

export class ClientListeners {
  private plain: net.Server[] = [];
  private secure: tls.Server[] = [];
  private tlsSettings: TlsSettings | null = null;
  /** The ports actually bound (a configured 0 becomes the kernel's pick). */
  plainPort = 0;
  tlsPort = 0;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly accept: (socket: net.Socket) => void,
  ) {}

  /**
   * Listens as configured. `port 0` with a tls-port serves TLS only; `port 0`
   * alone picks a free port (tests, embedding).
   */
  async listen(): Promise<void> {
    const cfg = this.config;
    const binds = cfg.list('bind');
    const addrs = binds.length > 0 ? binds : [undefined];
    const tlsPort = cfg.int('tls-port');
    const port = cfg.int('port');
    if (tlsPort !== 0) {
      this.tlsSettings = loadTls(cfg);
      let p = tlsPort;
      for (const host of addrs) {
        const srv = tls.createServer(this.serverOptions(this.tlsSettings), (s) => this.secureConnection(s));
        // A client that fails the handshake (plain text, unknown CA, expired
        // certificate) is dropped by Node; only the cause is worth a line.
        srv.on('tlsClientError', (e, s) => {
          this.log.verbose(`TLS handshake with ${(s.remoteAddress ?? '').replace(/^::ffff:/, '')}:${s.remotePort} failed: ${e.message}`);
        });
        this.tlsPort = p = await bindTo(srv, p, host, cfg.int('tcp-backlog'), this.log);
        this.secure.push(srv);
      }
    }
    if (port !== 0 || tlsPort === 0) {
      let p = port;
      for (const host of addrs) {
        // Sockets start paused: the connection's transport takes over reading.
        const srv = net.createServer({ noDelay: true, pauseOnConnect: true }, this.accept);
        this.plainPort = p = await bindTo(srv, p, host, cfg.int('tcp-backlog'), this.log);
        this.plain.push(srv);
      }
    }
    if (tlsPort !== 0) {
      for (const d of TLS_DIRECTIVES) cfg.onChange(d, this.reloadTls);
    }
  }

  /** The port the node is known by: the plain one, or the TLS one when that is all it serves. */
  get clientPort(): number {
    return this.plain.length > 0 ? this.plainPort : this.tlsPort;
  }

  close(): void {
    for (const l of [...this.plain, ...this.secure]) l.close();
    this.plain = [];
    this.secure = [];
  }

  private serverOptions(t: TlsSettings): tls.TlsOptions {
    return {
      ...t.context,
      requestCert: t.authClients !== 'no',
      rejectUnauthorized: t.authClients === 'yes',
    };
  }

  private secureConnection(socket: tls.TLSSocket): void {
    socket.setNoDelay(true);
    // tls-auth-clients optional: no certificate is fine, a bad one is not.
    if (!socket.authorized && this.tlsSettings?.authClients === 'optional') {
      const peer = socket.getPeerCertificate();
      if (peer && Object.keys(peer).length > 0) {
        this.log.verbose(`TLS client ${socket.remoteAddress}:${socket.remotePort} refused: ${String(socket.authorizationError)}`);
        socket.destroy();
        return;
      }
    }
    this.accept(socket);
  }

  /** CONFIG SET of a tls-* directive: a context that does not load is refused, the old one stays. */
  private readonly reloadTls = (): void => {
    let t: TlsSettings;
    try {
      t = loadTls(this.config);
    } catch (e) {
      this.log.warning(`Failed to update TLS configuration: ${(e as Error).message}`);
      throw new Error('ERR Unable to update TLS configuration. Check server logs.');
    }
    this.tlsSettings = t;
    for (const srv of this.secure) {
      srv.setSecureContext(t.context);
      // Read per connection by Node's TLS server.
      const s = srv as tls.Server & { requestCert: boolean; rejectUnauthorized: boolean };
      s.requestCert = t.authClients !== 'no';
      s.rejectUnauthorized = t.authClients === 'yes';
    }
    this.log.notice('TLS configuration reloaded');
  };
}

async function bindTo(srv: net.Server, port: number, host: string | undefined, backlog: number, log: Logger): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ port, host, backlog }, () => {
      srv.removeListener('error', reject);
      resolve();
    });
  });
  srv.on('error', (e) => log.warning(`Listener error: ${e.message}`));
  const a = srv.address();
  return a && typeof a === 'object' ? a.port : port;
}
