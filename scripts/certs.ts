// Throw-away certificates made with the openssl CLI (P-256 keys), for the
// TLS tests (test/helpers/certs.ts builds its set from these pieces) and the
// bench's TLS rows (makeServerCerts). Everything goes into a fresh temporary
// folder the caller removes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Runs openssl in `dir`; throws (with its stderr) when it fails or is missing. */
export function ssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `<name>.key`: a new P-256 key. */
export function keyPair(dir: string, name: string): void {
  ssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`]);
}

/** `<name>.key` and `<name>.crt` signed by the CA `<ca>.crt` / `<ca>.key`, with the given extensions and validity. */
export function signed(dir: string, name: string, ca: string, cn: string, ext: string, days: string): void {
  keyPair(dir, name);
  ssl(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  ssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', days, '-extfile', `${name}.ext`,
  ]);
}

/** `<name>.key` and a self-signed `<name>.crt`: a CA. */
export function authority(dir: string, name: string, cn: string): void {
  keyPair(dir, name);
  ssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.crt`, '-days', '3650', '-subj', `/CN=${cn}`]);
}

/** Extensions of a server certificate for localhost and 127.0.0.1..127.0.0.9, usable as a client certificate too. */
export const SERVER_EXT = `subjectAltName=${['DNS:localhost', ...Array.from({ length: 9 }, (_, i) => `IP:127.0.0.${i + 1}`)].join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`;

/** A fresh temporary folder for certificates. */
export function certDir(prefix = 'disque-certs-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface ServerCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** Removes the folder (idempotent). */
  remove(): void;
}

/** A throw-away CA and a server certificate it signed (SERVER_EXT), valid for a day. */
export function makeServerCerts(prefix = 'disque-certs-'): ServerCerts {
  const dir = certDir(prefix);
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    authority(dir, 'ca', 'disque-ts throw-away CA');
    signed(dir, 'server', 'ca', 'localhost', SERVER_EXT, '1');
  } catch (e) {
    remove();
    throw e;
  }
  const p = (f: string): string => path.join(dir, f);
  return { dir, caCert: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), remove };
}
