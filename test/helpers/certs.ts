// Certificates for the TLS tests, made with the openssl CLI into a fresh
// temporary folder: a test CA, a server certificate for localhost and
// 127.0.0.1 (also usable as a client certificate, as Redis's test suite does
// for cluster links), a client certificate, one from an unrelated CA, an
// expired one, and a server key under a passphrase.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

function ssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function keyPair(dir: string, name: string): void {
  ssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`]);
}

function signed(dir: string, name: string, ca: string, cn: string, ext: string, days: string): void {
  keyPair(dir, name);
  ssl(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  ssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', days, '-extfile', `${name}.ext`,
  ]);
}

function authority(dir: string, name: string, cn: string): void {
  keyPair(dir, name);
  ssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.crt`, '-days', '3650', '-subj', `/CN=${cn}`]);
}

export function makeCerts(): TestCerts {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-certs-'));
  authority(dir, 'ca', 'disque-ts test CA');
  authority(dir, 'other-ca', 'unrelated CA');
  const sans = ['DNS:localhost', ...Array.from({ length: 9 }, (_, i) => `IP:127.0.0.${i + 1}`)].join(',');
  signed(dir, 'server', 'ca', 'localhost', `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`, '365');
  signed(dir, 'server2', 'ca', 'renewed.localhost', `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`, '365');
  signed(dir, 'other-server', 'other-ca', 'stranger.localhost', `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`, '365');
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
