import { createHash, createPrivateKey, randomUUID, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TokenCredential } from '@azure/identity';
import { SignJWT } from 'jose';
import { AppError } from '../../core/errors.ts';
import { TLS_FAILURE, type HttpTransport } from './http.ts';

/** An app-only access token source; `invalidate` makes the next call fetch a fresh token (after a Graph 401). */
export interface TokenProvider {
  token(signal?: AbortSignal): Promise<string>;
  invalidate(): void;
}

export type CredentialSpec =
  | { method: 'secret'; secretFile?: string; secretEnv?: string }
  | { method: 'certificate'; certificateFile: string; sendCertificateChain: boolean };

export interface TokenProviderOptions {
  tenantId: string;
  clientId: string;
  auth: CredentialSpec;
  authorityHost: string;
  scope: string;
  ca: string | undefined;
  transport: HttpTransport;
  timeoutMs: number;
}

/** Refresh this long before expiry, so a token never runs out between fetch and use. */
const REFRESH_MARGIN_MS = 5 * 60_000;
const JWT_LIKE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;

async function readSecret(spec: { secretFile?: string; secretEnv?: string }): Promise<string> {
  if (spec.secretEnv !== undefined) {
    const value = process.env[spec.secretEnv];
    if (!value)
      throw new AppError(
        'ERR_CONFIG_INVALID',
        `environment variable ${spec.secretEnv} (Graph client secret) is not set`,
      );
    return value;
  }
  try {
    const value = (await readFile(spec.secretFile as string, 'utf8')).trim();
    if (!value) throw new Error('empty');
    return value;
  } catch {
    // The read error could quote the path only, but the message stays generic: nothing about the content.
    throw new AppError(
      'ERR_CONFIG_INVALID',
      `Graph client secret file ${spec.secretFile} is missing, unreadable or empty`,
    );
  }
}

/**
 * Turns a sign-in failure into an AppError without a secret in it: Entra's `AADSTSnnnn: …` first sentence when there
 * is one (those never quote the secret), otherwise a generic line. `secrets` are scrubbed from whatever is kept.
 */
export function signInError(err: unknown, secrets: readonly string[]): AppError {
  if (err instanceof AppError) return err;
  let text = err instanceof Error ? err.message : String(err);
  for (const s of secrets) if (s) text = text.split(s).join('***');
  text = text.replace(JWT_LIKE, '***');
  const aadsts = /AADSTS(\d+):\s*([^\r\n]*?\.)(?=\s|$)/.exec(text);
  const oauth =
    /\b(invalid_client|unauthorized_client|invalid_request|invalid_scope|invalid_resource|unsupported_grant_type|invalid_grant)\b/.exec(
      text,
    );
  const status = (err as { statusCode?: unknown }).statusCode;
  if (aadsts) {
    const code = Number(aadsts[1]);
    // Entra's 5xx-family codes (AADSTS90033, 90055, 50196…) are transient; the rest are configuration problems.
    const transient = (typeof status === 'number' && status >= 500) || [90033, 90055, 50196, 90006].includes(code);
    return new AppError(
      'ERR_SINK_REJECTED',
      `Graph sign-in refused${oauth ? ` (${oauth[1]})` : ''}: AADSTS${code}: ${aadsts[2]}`,
      {
        retryable: transient,
        status: typeof status === 'number' ? status : 401,
      },
    );
  }
  const firstLine = text.split(/\r?\n/)[0]?.slice(0, 200) ?? '';
  const code = (err as { code?: unknown }).code;
  if (
    TLS_FAILURE.test(typeof code === 'string' ? code : '') ||
    /self[- ]signed certificate|unable to verify|certificate has expired/i.test(text)
  ) {
    return new AppError(
      'ERR_SINK_REJECTED',
      `Graph sign-in failed: TLS certificate verification failed (${firstLine}); a private CA goes in caFile`,
    );
  }
  if (/endpoints_resolution_error/.test(text)) {
    // MSAL hides the cause of a failed OpenID discovery: DNS, network and TLS verification all look like this.
    return new AppError(
      'ERR_SINK_IO',
      'Graph sign-in failed: the authority did not answer its OpenID configuration (network, DNS, or TLS: a private CA goes in caFile)',
      {
        retryable: true,
      },
    );
  }
  return new AppError('ERR_SINK_IO', `Graph sign-in failed: ${firstLine}`, { retryable: true });
}

/**
 * Tokens through @azure/identity (MSAL): ClientSecretCredential or ClientCertificateCredential. A loopback authority
 * skips instance discovery, which would otherwise ask login.microsoftonline.com to vouch for it; the optional CA
 * goes to the identity pipeline's https agent (`tlsOptions.ca`), verification untouched.
 */
export class IdentityTokenProvider implements TokenProvider {
  readonly #o: TokenProviderOptions;
  #credential: Promise<{ credential: TokenCredential; secrets: string[] }> | undefined;
  #cached: { token: string; refreshAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(
    options: TokenProviderOptions,
    readonly disableInstanceDiscovery: boolean,
  ) {
    this.#o = options;
  }

  async #build(): Promise<{ credential: TokenCredential; secrets: string[] }> {
    const o = this.#o;
    // Loaded on first sign-in: MSAL is a large module graph that plain-http emulator runs never need.
    const { ClientCertificateCredential, ClientSecretCredential } = await import('@azure/identity');
    const common = {
      authorityHost: o.authorityHost,
      disableInstanceDiscovery: this.disableInstanceDiscovery,
      ...(o.ca ? { tlsOptions: { ca: o.ca } } : {}),
      retryOptions: { maxRetries: 2 },
    };
    if (o.auth.method === 'secret') {
      const secret = await readSecret(o.auth);
      return { credential: new ClientSecretCredential(o.tenantId, o.clientId, secret, common), secrets: [secret] };
    }
    return {
      credential: new ClientCertificateCredential(
        o.tenantId,
        o.clientId,
        { certificatePath: o.auth.certificateFile },
        { ...common, sendCertificateChain: o.auth.sendCertificateChain },
      ),
      secrets: [],
    };
  }

  token(signal?: AbortSignal): Promise<string> {
    if (this.#cached && Date.now() < this.#cached.refreshAt) return Promise.resolve(this.#cached.token);
    // One sign-in at a time; callers share it.
    this.#pending ??= this.#fetch(signal).finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  async #fetch(signal?: AbortSignal): Promise<string> {
    this.#credential ??= this.#build();
    let secrets: string[] = [];
    try {
      const built = await this.#credential;
      secrets = built.secrets;
      const result = await built.credential.getToken(this.#o.scope, { abortSignal: signal });
      if (!result) throw new Error('no token returned');
      const lifetime = result.expiresOnTimestamp - Date.now();
      this.#cached = {
        token: result.token,
        refreshAt: Date.now() + Math.max(0, Math.min(lifetime - REFRESH_MARGIN_MS, lifetime / 2)),
      };
      return result.token;
    } catch (err) {
      this.#credential = undefined;
      throw signInError(err, secrets);
    }
  }

  invalidate(): void {
    this.#cached = undefined;
    // MSAL would hand back its cached token; a new credential starts with an empty cache.
    this.#credential = undefined;
  }
}

/**
 * The client-credentials grant posted by hand (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow),
 * used only for a plain-http loopback authority: @azure/identity refuses any authority that is not https.
 * Certificates sign a PS256 client assertion with `x5t#S256` (RFC 7523; Entra certificate credentials).
 */
export class LoopbackTokenProvider implements TokenProvider {
  readonly #o: TokenProviderOptions;
  #cached: { token: string; refreshAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(options: TokenProviderOptions) {
    this.#o = options;
  }

  token(signal?: AbortSignal): Promise<string> {
    if (this.#cached && Date.now() < this.#cached.refreshAt) return Promise.resolve(this.#cached.token);
    this.#pending ??= this.#fetch(signal).finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  invalidate(): void {
    this.#cached = undefined;
  }

  async #credentials(tokenUrl: string): Promise<{ form: Record<string, string>; secrets: string[] }> {
    const o = this.#o;
    if (o.auth.method === 'secret') {
      const secret = await readSecret(o.auth);
      return { form: { client_secret: secret }, secrets: [secret] };
    }
    let pem: string;
    try {
      pem = await readFile(o.auth.certificateFile, 'utf8');
    } catch {
      throw new AppError(
        'ERR_CONFIG_INVALID',
        `Graph certificate file ${o.auth.certificateFile} is missing or unreadable`,
      );
    }
    const certBlock = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
    let key: ReturnType<typeof createPrivateKey>;
    let cert: X509Certificate;
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
      cert = new X509Certificate(certBlock ?? '');
    } catch {
      throw new AppError(
        'ERR_CONFIG_INVALID',
        `Graph certificate file ${o.auth.certificateFile} must hold a PEM private key and certificate`,
      );
    }
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({
        alg: 'PS256',
        typ: 'JWT',
        'x5t#S256': createHash('sha256').update(cert.raw).digest('base64url'),
      })
      .setIssuer(o.clientId)
      .setSubject(o.clientId)
      .setAudience(tokenUrl)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 600)
      .sign(key);
    return {
      form: {
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      },
      secrets: [assertion],
    };
  }

  async #fetch(signal?: AbortSignal): Promise<string> {
    const o = this.#o;
    const tokenUrl = `${o.authorityHost}/${encodeURIComponent(o.tenantId)}/oauth2/v2.0/token`;
    const { form, secrets } = await this.#credentials(tokenUrl);
    const body = new URLSearchParams({
      client_id: o.clientId,
      scope: o.scope,
      grant_type: 'client_credentials',
      ...form,
    });
    let res;
    try {
      res = await o.transport.request(new URL(tokenUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: Buffer.from(body.toString()),
        timeoutMs: o.timeoutMs,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw signInError(err, secrets);
    }
    let parsed: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } = {};
    try {
      parsed = JSON.parse(res.body.toString('utf8')) as typeof parsed;
    } catch {
      // Not JSON: described by status below.
    }
    if (res.status !== 200 || typeof parsed.access_token !== 'string') {
      const description = typeof parsed.error_description === 'string' ? parsed.error_description : '';
      const error = Object.assign(
        new Error(`${String(parsed.error ?? res.status)}: ${description || `HTTP ${res.status}`}`),
        {
          statusCode: res.status,
        },
      );
      throw signInError(error, secrets);
    }
    const lifetimeMs =
      (typeof parsed.expires_in === 'number' ? parsed.expires_in : Number(parsed.expires_in ?? 3599)) * 1000;
    this.#cached = {
      token: parsed.access_token,
      refreshAt: Date.now() + Math.max(0, Math.min(lifetimeMs - REFRESH_MARGIN_MS, lifetimeMs / 2)),
    };
    return parsed.access_token;
  }
}
