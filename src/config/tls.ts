// The tls-* directives turned into Node TLS options, for the client
// listener and, with tls-cluster, the bus. Files are read here, at start-up
// and at each CONFIG SET of a tls-* directive, so a certificate renewed on
// disk is picked up by setting the directive again (same path is fine).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Config } from './config.js';

/** Every directive whose change rebuilds the TLS context. */
export const TLS_DIRECTIVES = [
  'tls-cert-file',
  'tls-key-file',
  'tls-key-file-pass',
  'tls-ca-cert-file',
  'tls-ca-cert-dir',
  'tls-auth-clients',
  'tls-protocols',
  'tls-ciphers',
  'tls-ciphersuites',
  'tls-prefer-server-ciphers',
] as const;

export type TlsAuthClients = 'yes' | 'no' | 'optional';

export interface TlsSettings {
  /** Certificate, key, CAs, versions and ciphers (tls.createSecureContext / tls.connect). */
  context: tls.SecureContextOptions;
  authClients: TlsAuthClients;
}

const VERSIONS: readonly tls.SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

function readPem(directive: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${directive} '${file}' cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** CA certificates of tls-ca-cert-file and of every PEM file in tls-ca-cert-dir. */
function caCerts(cfg: Config): Buffer[] | undefined {
  const out: Buffer[] = [];
  const file = cfg.str('tls-ca-cert-file');
  if (file !== '') out.push(readPem('tls-ca-cert-file', file));
  const dir = cfg.str('tls-ca-cert-dir');
  if (dir !== '') {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (e) {
      throw new Error(`tls-ca-cert-dir '${dir}' cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    // OpenSSL's CA folders hold hash-named links next to the files: read
    // every regular file that holds a certificate, each once.
    const seen = new Set<string>();
    for (const n of names) {
      const f = path.join(dir, n);
      let st;
      try {
        st = statSync(f);
      } catch {
        continue;
      }
      if (!st.isFile() || seen.has(`${st.dev}:${st.ino}`)) continue;
      seen.add(`${st.dev}:${st.ino}`);
      const pem = readPem('tls-ca-cert-dir', f);
      if (pem.includes('-----BEGIN CERTIFICATE-----')) out.push(pem);
    }
  }
  return out.length > 0 ? out : undefined;
}

/** tls-protocols as Node's version range (Node takes a range, not a set). */
function versions(cfg: Config): { minVersion: tls.SecureVersion; maxVersion: tls.SecureVersion } {
  const given = cfg
    .str('tls-protocols')
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => VERSIONS.findIndex((v) => v.toLowerCase() === w.toLowerCase()));
  if (given.length === 0) return { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' };
  return { minVersion: VERSIONS[Math.min(...given)]!, maxVersion: VERSIONS[Math.max(...given)]! };
}

/**
 * Reads the certificate files and checks that they make a context (the
 * key matches the certificate, the passphrase opens the key). Throws an
 * Error naming the directive at fault.
 */
export function loadTls(cfg: Config): TlsSettings {
  const certFile = cfg.str('tls-cert-file');
  const keyFile = cfg.str('tls-key-file');
  if (certFile === '') throw new Error('TLS needs tls-cert-file');
  if (keyFile === '') throw new Error('TLS needs tls-key-file');
  const pass = cfg.str('tls-key-file-pass');
  const ciphers = [cfg.str('tls-ciphers'), cfg.str('tls-ciphersuites')].filter((c) => c !== '').join(':');
  const context: tls.SecureContextOptions = {
    cert: readPem('tls-cert-file', certFile),
    key: readPem('tls-key-file', keyFile),
    ...(pass !== '' ? { passphrase: pass } : {}),
    ca: caCerts(cfg),
    ...versions(cfg),
    ...(ciphers !== '' ? { ciphers } : {}),
    honorCipherOrder: cfg.bool('tls-prefer-server-ciphers'),
  };
  try {
    tls.createSecureContext(context);
  } catch (e) {
    // OpenSSL's words, without anything read from the files.
    throw new Error(`TLS configuration is invalid: ${(e as Error).message}`);
  }
  return { context, authClients: cfg.str('tls-auth-clients') as TlsAuthClients };
}

/** The node serves TLS clients, or links the bus over TLS. */
export function tlsWanted(cfg: Config): boolean {
  return cfg.int('tls-port') !== 0 || cfg.bool('tls-cluster');
}
