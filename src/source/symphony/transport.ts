import { rootCertificates } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';

/** The slice of WHATWG fetch the client uses, so that Node's global fetch and undici's both fit. */
export type Fetch = (url: string, init: FetchInit) => Promise<FetchResponse>;

export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  redirect: 'manual';
  signal: AbortSignal;
}

export interface FetchResponse {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export interface Transport {
  fetch: Fetch;
  /** Closes the pooled connections. */
  close(): Promise<void>;
}

/**
 * undici's fetch over a connection pool of our own. Certificates are always verified: `rejectUnauthorized`
 * is set explicitly so that `NODE_TLS_REJECT_UNAUTHORIZED=0` in the environment cannot turn verification off
 * (reliability.md point 10, CodeQL js/disabling-certificate-validation). `ca` is added to Node's bundled
 * Mozilla roots, since an explicit `ca` otherwise replaces them (Node docs, `tls.createSecureContext`).
 */
export function createTransport(ca: readonly string[] | undefined): Transport {
  const agent = new Agent({
    connect: { rejectUnauthorized: true, ...(ca ? { ca: [...rootCertificates, ...ca] } : {}) },
  });
  return {
    fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: agent }),
    close: () => agent.close(),
  };
}

/**
 * OpenSSL's certificate verification results as Node reports them (Node docs, tls "X509 certificate error
 * codes"), plus Node's own host-name check: configuration problems, never worth a retry.
 */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The verification failure behind a fetch error (undici wraps it as `cause`), if that is what it is. */
export function certificateErrorOf(err: unknown): string | undefined {
  let current = err;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && CERTIFICATE_ERRORS.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
