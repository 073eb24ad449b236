import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { AppError } from '../../core/errors.ts';

export interface SymphonySourceConfig {
  /** Pod base URL, e.g. `https://acme.symphony.com`; the pod API lives under `/pod`, RSA login under `/login`. */
  podUrl: string;
  /** Agent base URL; the agent API lives under `/agent`. */
  agentUrl: string;
  /** Key Manager base URL; RSA login lives under `/relay`. */
  keyManagerUrl: string;
  /** Service-account username (the JWT `sub`). */
  username: string;
  /** PKCS#1 or PKCS#8 PEM. */
  privateKeyPem: string;
  /** Names the real-time feed (Datafeed v5 tag, Datahose tag); default `symphony-archiver`. */
  feedTag?: string;
  /** Messages per request, default 500 (API max 500, symphony-api.md §7). */
  pageSize?: number;
  /** Streams per admin list request, default 100 (API max 100). */
  streamPageSize?: number;
  requestTimeoutMs?: number;
  /** Retries for 429, 5xx, network errors and malformed bodies; default 6. */
  maxRetries?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Requests per second over every call of this source, logins included (burst: one second's worth); default none. */
  requestsPerSecond?: number;
  /** PEM bundle of CA certificates trusted in addition to Node's bundled roots, for pod, agent and key manager. */
  caFile?: string;
}

/** The validated, defaulted configuration; the key is parsed once so a bad PEM fails at start-up. */
export interface ResolvedConfig {
  podUrl: string;
  agentUrl: string;
  keyManagerUrl: string;
  username: string;
  privateKey: KeyObject;
  feedTag: string;
  pageSize: number;
  streamPageSize: number;
  membersPageSize: number;
  usersBatchSize: number;
  requestTimeoutMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  requestsPerSecond: number | undefined;
  /** The certificates of `caFile`, one PEM each. */
  ca: string[] | undefined;
}

function invalid(detail: string): AppError {
  return new AppError('ERR_CONFIG_INVALID', detail);
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * The pod URL is operator-supplied, so it is an SSRF and token-leak vector (reliability.md, point 10):
 * tokens only ever travel over https, except to a loopback test double.
 */
export function checkBaseUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${name} is not a URL`);
  }
  if (url.username || url.password) throw invalid(`${name} must not contain credentials`);
  if (url.search || url.hash) throw invalid(`${name} must not contain a query or fragment`);
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    throw invalid(`${name} must use https (plain http is allowed only for loopback hosts)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(`${name} must use https`);
  return url.toString().replace(/\/+$/, '');
}

function intOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer between ${min} and ${max}`);
  }
  return value;
}

/** Above Symphony's own 400 requests/s per source IP and pod node (symphony-api.md §7), a limit means nothing. */
const MAX_REQUESTS_PER_SECOND = 10_000;

function rateOption(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_REQUESTS_PER_SECOND) {
    throw invalid(`requestsPerSecond must be a number above 0 and at most ${MAX_REQUESTS_PER_SECOND}`);
  }
  return value;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Read once at start-up, so an unreadable bundle fails there rather than as a TLS error on the first call. */
function readCaFile(path: string | undefined): string[] | undefined {
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalid(`caFile ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) throw invalid(`caFile ${path} holds no PEM certificate`);
  pems.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch {
      throw invalid(`caFile ${path}: certificate ${i + 1} is not a readable X.509 certificate`);
    }
  });
  return pems;
}

function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // The parser's message may quote parts of the input; never pass it on.
    throw invalid('privateKeyPem is not a readable PEM private key');
  }
  if (key.asymmetricKeyType !== 'rsa') throw invalid('privateKeyPem must be an RSA key (RS512, symphony-api.md §1.1)');
  return key;
}

export function resolveConfig(config: SymphonySourceConfig): ResolvedConfig {
  if (typeof config.username !== 'string' || config.username.trim() === '') throw invalid('username is required');
  if (typeof config.privateKeyPem !== 'string' || config.privateKeyPem.trim() === '') {
    throw invalid('privateKeyPem is required');
  }
  const backoffBaseMs = intOption('backoffBaseMs', config.backoffBaseMs, 500, 0, 600_000);
  return {
    podUrl: checkBaseUrl('podUrl', config.podUrl),
    agentUrl: checkBaseUrl('agentUrl', config.agentUrl),
    keyManagerUrl: checkBaseUrl('keyManagerUrl', config.keyManagerUrl),
    username: config.username.trim(),
    privateKey: parsePrivateKey(config.privateKeyPem),
    feedTag: config.feedTag ?? 'symphony-archiver',
    pageSize: intOption('pageSize', config.pageSize, 500, 1, 500),
    streamPageSize: intOption('streamPageSize', config.streamPageSize, 100, 1, 100),
    membersPageSize: 1000,
    usersBatchSize: 100,
    requestTimeoutMs: intOption('requestTimeoutMs', config.requestTimeoutMs, 60_000, 1, 3_600_000),
    maxRetries: intOption('maxRetries', config.maxRetries, 6, 0, 100),
    backoffBaseMs,
    backoffCapMs: intOption(
      'backoffCapMs',
      config.backoffCapMs,
      Math.max(30_000, backoffBaseMs),
      backoffBaseMs,
      3_600_000,
    ),
    requestsPerSecond: rateOption(config.requestsPerSecond),
    ca: readCaFile(config.caFile),
  };
}
