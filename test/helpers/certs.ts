// Certificates for the TLS tests, made with the openssl CLI (scripts/certs.ts)
// into a fresh temporary folder: a test CA, a server certificate for localhost and
// 127.0.0.1 (also usable as a client certificate, as Redis's test suite does
// for cluster links), a client certificate, one from an unrelated CA, an
// expired one, and a server key under a passphrase.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { authority, certDir, SERVER_EXT, signed, ssl } from '../../scripts/certs.js';

export interface TestCerts {
  dir: string;
  caCert: string;
  caKey: string;
  /** Signed by the CA; SAN localhost, 127.0.0.1..127.0.0.9; serverAuth and clientAuth. */
  serverCert: string;
  serverKey: string;
  /** A second server certificate from the same CA (CN renewed.localhost), for reloads. */
  server2Cert: string;
  server2Key: string;
  /** A server certificate from the unrelated CA (a node the cluster must not admit). */
  otherServerCert: string;
  otherServerKey: string;
  /** Same certificate as serverCert, its key encrypted with keyPass. */
  encryptedKey: string;
  keyPass: string;
  /** Signed by the CA, clientAuth. */
  clientCert: string;
  clientKey: string;
  /** A second CA and a client certificate it signed: unknown to the servers. */
  otherCaCert: string;
  otherClientCert: string;
  otherClientKey: string;
  /** Signed by the CA, validity ended yesterday. */
  expiredCert: string;
  expiredKey: string;
  remove(): void;
}

export function makeCerts(): TestCerts {
  const dir = certDir();
  authority(dir, 'ca', 'disque-ts test CA');
  authority(dir, 'other-ca', 'unrelated CA');
  signed(dir, 'server', 'ca', 'localhost', SERVER_EXT, '365');
  signed(dir, 'server2', 'ca', 'renewed.localhost', SERVER_EXT, '365');
  signed(dir, 'other-server', 'other-ca', 'stranger.localhost', SERVER_EXT, '365');
  signed(dir, 'client', 'ca', 'client', 'extendedKeyUsage=clientAuth\n', '365');
  signed(dir, 'other-client', 'other-ca', 'stranger', 'extendedKeyUsage=clientAuth\n', '365');
  signed(dir, 'expired', 'ca', 'expired', 'extendedKeyUsage=clientAuth\n', '-1');
  const keyPass = 'test-key-pass';
  ssl(dir, ['pkcs8', '-topk8', '-in', 'server.key', '-out', 'server-encrypted.key', '-v2', 'aes-256-cbc', '-passout', `pass:${keyPass}`]);
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    server2Cert: p('server2.crt'),
    server2Key: p('server2.key'),
    otherServerCert: p('other-server.crt'),
    otherServerKey: p('other-server.key'),
    encryptedKey: p('server-encrypted.key'),
    keyPass,
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCaCert: p('other-ca.crt'),
    otherClientCert: p('other-client.crt'),
    otherClientKey: p('other-client.key'),
    expiredCert: p('expired.crt'),
    expiredKey: p('expired.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
