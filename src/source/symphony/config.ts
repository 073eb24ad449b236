import { createPrivateKey, type KeyObject } from 'node:crypto';
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
  /** Messages per request, default 500 (API max 500, symphony-api.md §7). */
  pageSize?: number;
  /** Streams per admin list request, default 100 (API max 100). */
  streamPageSize?: number;
  requestTimeoutMs?: number;
  /** Retries for 429, 5xx, network errors and malformed bodies; default 6. */
  maxRetries?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

/** The validated, defaulted configuration; the key is parsed once so a bad PEM fails at start-up. */
export interface ResolvedConfig {
  podUrl: string;
  agentUrl: string;
  keyManagerUrl: string;
  username: string;
  privateKey: KeyObject;
  pageSize: number;
  streamPageSize: number;
  membersPageSize: number;
  usersBatchSize: number;
  requestTimeoutMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  backoffCapMs: number;
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
  };
}
