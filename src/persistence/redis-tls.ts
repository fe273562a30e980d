// TLS to the Redis that keeps the snapshots and journal: a rediss://
// redis-url, with the redis-tls-* files read once at start-up (so a missing
// file stops the node then, not at the first connection), and a plain
// account of why a TLS connection to Redis failed, for the log and -MISCONF.
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Config } from '../config/config.js';

/** What ioredis passes to tls.connect; the host check is Node's own, against the URL's host. */
export interface RedisTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export function isTlsUrl(url: string): boolean {
  return /^rediss:\/\//i.test(url);
}

const FILE_DIRECTIVES = ['redis-tls-ca-cert-file', 'redis-tls-cert-file', 'redis-tls-key-file'] as const;

function readPem(config: Config, directive: (typeof FILE_DIRECTIVES)[number]): Buffer | undefined {
  const file = config.str(directive);
  if (file === '') return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${directive}: can't read '${file}': ${(e as Error).message}`);
  }
}

/**
 * The TLS options for a rediss:// redis-url, or null for a plain one.
 * Throws a start-up error naming the directive and file when a file can't
 * be read or used, or when only one of the client certificate and its key
 * is given.
 */
export function readRedisTls(config: Config): RedisTls | null {
  if (!isTlsUrl(config.str('redis-url'))) return null;
  const certFile = config.str('redis-tls-cert-file');
  const keyFile = config.str('redis-tls-key-file');
  if ((certFile === '') !== (keyFile === '')) {
    const [set, unset] = certFile !== '' ? ['redis-tls-cert-file', 'redis-tls-key-file'] : ['redis-tls-key-file', 'redis-tls-cert-file'];
    throw new Error(`${set} is set ('${certFile || keyFile}') but ${unset} is not: a client certificate for Redis needs both`);
  }
  const tls: RedisTls = {};
  const ca = readPem(config, 'redis-tls-ca-cert-file');
  if (ca !== undefined) {
    tls.ca = ca;
    checkCaFile(config.str('redis-tls-ca-cert-file'), ca);
  }
  const cert = readPem(config, 'redis-tls-cert-file');
  const key = readPem(config, 'redis-tls-key-file');
  if (cert !== undefined && key !== undefined) {
    tls.cert = cert;
    tls.key = key;
    try {
      createSecureContext({ cert, key });
    } catch (e) {
      throw new Error(
        `redis-tls-cert-file '${certFile}' and redis-tls-key-file '${keyFile}' are not a usable certificate and key: ${tlsText(e as Error)}`,
      );
    }
  }
  return tls;
}

/**
 * Node takes a CA file without a single certificate in it silently (every
 * connection would then fail verification): check there is one, and each parses.
 */
function checkCaFile(file: string, pem: Buffer): void {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`redis-tls-ca-cert-file: '${file}' holds no usable CA certificate: no PEM certificate in it`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (e) {
      throw new Error(`redis-tls-ca-cert-file: '${file}' holds no usable CA certificate: ${tlsText(e as Error)}`);
    }
  }
}

/** Directives that are set but have no effect with this redis-url (for a start-up warning). */
export function unusedTlsDirectives(config: Config): string[] {
  if (isTlsUrl(config.str('redis-url'))) return [];
  return FILE_DIRECTIVES.filter((d) => config.str(d) !== '');
}

/** OpenSSL's reason ("tlsv13 alert certificate required") rather than its whole error line. */
function tlsText(e: Error): string {
  const reason = (e as { reason?: unknown }).reason;
  return typeof reason === 'string' && reason !== '' ? reason : e.message.replace(/[\r\n]+/g, ' ').trim();
}

/** Node's codes for a peer certificate it could not verify. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
]);
const OTHER_VERIFY = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_REJECTED', 'INVALID_PURPOSE', 'HOSTNAME_MISMATCH']);

/** Why Redis would refuse us during the handshake, with what we sent. */
function refusalOf(clientCert: boolean): string {
  return clientCert
    ? 'Redis refused our client certificate (redis-tls-cert-file): is it signed by a CA that Redis trusts, and still valid?'
    : 'Redis requires a client certificate: set redis-tls-cert-file and redis-tls-key-file';
}

/**
 * Why a TLS connection to Redis failed, in words that point at the setting
 * to look at; null when `e` is no TLS failure (Redis down, say).
 * `handshaken`: our side of the handshake had completed and Redis had not
 * answered yet. With TLS 1.3 the server checks our certificate after that,
 * so its refusal may show up as a reset instead of an alert.
 */
export function describeTlsFailure(e: Error, handshaken: boolean, clientCert: boolean): string | null {
  const code = String((e as NodeJS.ErrnoException).code ?? '');
  const text = tlsText(e);
  if (UNTRUSTED.has(code)) {
    return `TLS handshake with Redis failed: Redis's certificate is not signed by a CA we trust (redis-tls-ca-cert-file, or the system's CAs when unset) (${text})`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `TLS handshake with Redis failed: Redis's certificate does not name the host of redis-url (${text})`;
  }
  if (OTHER_VERIFY.has(code)) return `TLS handshake with Redis failed: Redis's certificate was refused (${text})`;
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') return `TLS handshake with Redis failed: ${refusalOf(clientCert)} (${text})`;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return `TLS handshake with Redis failed: the port of redis-url does not speak TLS (is it Redis's plain port rather than its tls-port?) (${text})`;
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    if (/alert/.test(text) && /certificate|unknown ca/.test(text)) return `TLS handshake with Redis failed: ${refusalOf(clientCert)} (${text})`;
    return `TLS handshake with Redis failed: ${text}`;
  }
  if (handshaken && (code === 'ECONNRESET' || code === 'EPIPE')) return refusedAfterHandshake(text, clientCert);
  return null;
}

/** The connection ended after our side of the handshake, before Redis answered, with `detail` for a reason. */
export function refusedAfterHandshake(detail: string, clientCert: boolean): string {
  return `TLS handshake with Redis failed: Redis closed the connection right after the handshake, before answering: most likely ${refusalOf(clientCert)} (${detail})`;
}
