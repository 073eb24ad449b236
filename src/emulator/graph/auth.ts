import { createHash, createPublicKey, randomBytes, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';

/** An app registration the emulated tenant knows. */
export interface EmulatedClient {
  clientId: string;
  /** Client-secret credential (client_secret_post or client_secret_basic). */
  clientSecret?: string;
  /** PEM certificate whose key signs client assertions (RFC 7523 / certificate credentials). */
  certificatePem?: string;
  /**
   * Application permissions granted by admin consent, as the `roles` claim carries them. Default
   * `Mail.ReadWrite` and `Mail-Advanced.ReadWrite.All` (importMime needs the latter, destinations.md §1.7).
   */
  roles?: string[];
}

export const DEFAULT_ROLES = ['Mail.ReadWrite', 'Mail-Advanced.ReadWrite.All'];

/** Graph's application id: the `aud` of app-only tokens and the resource of `https://graph.microsoft.com/.default`. */
const GRAPH_RESOURCES = new Set(['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000']);

export interface TokenInfo {
  appId: string;
  tenantId: string;
  roles: string[];
  expiresAt: number;
}

export interface TokenError {
  status: number;
  body: Record<string, unknown>;
}

export interface TokenOk {
  status: 200;
  body: { token_type: 'Bearer'; expires_in: number; ext_expires_in: number; access_token: string };
}

interface RegisteredClient {
  clientId: string;
  secret: Buffer | undefined;
  /** x5t#S256 and x5t thumbprints (base64url) → public key of the registered certificate. */
  thumbprints: Map<string, ReturnType<typeof createPublicKey>>;
  roles: string[];
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function sameSecret(expected: Buffer, given: string): boolean {
  const g = Buffer.from(given, 'utf8');
  return g.length === expected.length && timingSafeEqual(g, expected);
}

/**
 * Entra ID's v2.0 token endpoint for the client-credentials grant
 * (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow): form body, `scope` must be
 * `{resource}/.default`, errors as `{error, error_description: "AADSTSnnnn: …", error_codes, timestamp, trace_id,
 * correlation_id, error_uri}`. Access tokens are JWT-shaped but opaque to clients; Graph checks them by lookup.
 */
export class TokenService {
  readonly #tenantId: string;
  readonly #clients = new Map<string, RegisteredClient>();
  readonly #tokens = new Map<string, TokenInfo>();
  readonly #lifetimeSeconds: number;
  issued = 0;

  constructor(tenantId: string, clients: EmulatedClient[], lifetimeSeconds: number) {
    this.#tenantId = tenantId;
    this.#lifetimeSeconds = lifetimeSeconds;
    for (const c of clients) {
      const thumbprints = new Map<string, ReturnType<typeof createPublicKey>>();
      if (c.certificatePem) {
        const cert = new X509Certificate(c.certificatePem);
        const publicKey = createPublicKey(c.certificatePem);
        thumbprints.set(createHash('sha256').update(cert.raw).digest('base64url'), publicKey);
        thumbprints.set(createHash('sha1').update(cert.raw).digest('base64url'), publicKey);
      }
      this.#clients.set(c.clientId.toLowerCase(), {
        clientId: c.clientId,
        secret: c.clientSecret === undefined ? undefined : Buffer.from(c.clientSecret, 'utf8'),
        thumbprints,
        roles: c.roles ?? DEFAULT_ROLES,
      });
    }
  }

  get tenantId(): string {
    return this.#tenantId;
  }

  knowsTenant(tenant: string): boolean {
    return tenant.toLowerCase() === this.#tenantId.toLowerCase();
  }

  error(status: number, error: string, code: number, message: string): TokenError {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date()
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, 'Z');
    return {
      status,
      body: {
        error,
        error_description: `AADSTS${code}: ${message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
        error_codes: [code],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `https://login.microsoftonline.com/error?code=${code}`,
      },
    };
  }

  /** Handles `POST /{tenant}/oauth2/v2.0/token`; `tokenEndpoint` is the URL the assertion's `aud` must name. */
  async issue(
    tenant: string,
    form: URLSearchParams,
    basicAuth: { id: string; secret: string } | undefined,
    tokenEndpoint: string,
  ): Promise<TokenOk | TokenError> {
    if (!this.knowsTenant(tenant)) {
      return this.error(
        400,
        'invalid_request',
        90002,
        `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
      );
    }
    const grantType = form.get('grant_type');
    if (!grantType) return this.missing('grant_type');
    if (grantType !== 'client_credentials') {
      return this.error(
        400,
        'unsupported_grant_type',
        70003,
        `The app requested an unsupported grant type '${grantType}'.`,
      );
    }
    const clientId = form.get('client_id') ?? basicAuth?.id;
    if (!clientId) return this.missing('client_id');
    const client = this.#clients.get(clientId.toLowerCase());
    if (!client) {
      return this.error(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${this.#tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      );
    }
    const scope = form.get('scope');
    if (!scope) return this.missing('scope');
    const scopes = scope.split(' ').filter(Boolean);
    const bad = scopes.find((s) => !s.endsWith('/.default'));
    if (bad !== undefined || scopes.length !== 1) {
      return this.error(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${bad ?? scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const resource = (scopes[0] as string).slice(0, -'/.default'.length).toLowerCase();
    if (!GRAPH_RESOURCES.has(resource)) {
      return this.error(
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${resource} was not found in the tenant named ${this.#tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      );
    }
    const secret = form.get('client_secret') ?? basicAuth?.secret;
    const assertion = form.get('client_assertion');
    if (secret === undefined && assertion === null) {
      return this.error(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    if (assertion !== null) {
      const failure = await this.#checkAssertion(client, assertion, form.get('client_assertion_type'), tokenEndpoint);
      if (failure) return failure;
    } else if (!client.secret || !sameSecret(client.secret, secret ?? '')) {
      return this.error(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${client.clientId}'.`,
      );
    }
    return { status: 200, body: this.#mint(client) };
  }

  missing(parameter: string): TokenError {
    return this.error(
      400,
      'invalid_request',
      900144,
      `The request body must contain the following parameter: '${parameter}'.`,
    );
  }

  async #checkAssertion(
    client: RegisteredClient,
    assertion: string,
    assertionType: string | null,
    tokenEndpoint: string,
  ): Promise<TokenError | undefined> {
    if (assertionType !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return this.error(
        400,
        'invalid_request',
        90014,
        "The required field 'client_assertion_type' is missing from the credential. Ensure that you have all the necessary parameters for the login request.",
      );
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      return this.error(401, 'invalid_client', 50027, 'JWT token is invalid or malformed.');
    }
    const thumbprint = (header['x5t#S256'] as string | undefined) ?? header.x5t;
    const key = thumbprint === undefined ? undefined : client.thumbprints.get(thumbprint);
    if (!key) {
      return this.error(
        401,
        'invalid_client',
        700027,
        `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprint ?? ''}']`,
      );
    }
    try {
      await jwtVerify(assertion, key, {
        algorithms: ['RS256', 'PS256'],
        audience: tokenEndpoint,
        issuer: client.clientId,
        subject: client.clientId,
        requiredClaims: ['exp', 'jti'],
        // Entra ID tolerates a few minutes of skew between the client's clock and its own.
        clockTolerance: 300,
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED' || code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
        const aud = code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (err as { claim?: string }).claim === 'aud';
        return aud
          ? this.error(401, 'invalid_client', 700021, `Client assertion audience claim does not match Realm issuer.`)
          : this.error(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
      }
      return this.error(401, 'invalid_client', 700027, 'Client assertion failed signature validation.');
    }
    return undefined;
  }

  #mint(client: RegisteredClient): TokenOk['body'] {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + this.#lifetimeSeconds;
    const payload = {
      aud: 'https://graph.microsoft.com',
      iss: `https://sts.windows.net/${this.#tenantId}/`,
      iat: now,
      nbf: now,
      exp,
      app_displayname: 'symphony-archiver',
      appid: client.clientId,
      idtyp: 'app',
      oid: randomUUID(),
      roles: client.roles,
      sub: randomUUID(),
      tid: this.#tenantId,
      ver: '1.0',
    };
    const token = `${b64url({ typ: 'JWT', alg: 'RS256', kid: 'emulator' })}.${b64url(payload)}.${randomBytes(32).toString('base64url')}`;
    this.#tokens.set(token, {
      appId: client.clientId,
      tenantId: this.#tenantId,
      roles: client.roles,
      expiresAt: exp * 1000,
    });
    this.issued += 1;
    return {
      token_type: 'Bearer',
      expires_in: this.#lifetimeSeconds,
      ext_expires_in: this.#lifetimeSeconds,
      access_token: token,
    };
  }

  /** Graph's bearer check: the token or the reason for a 401 `InvalidAuthenticationToken`. */
  check(authorization: string | undefined): TokenInfo | { error: string } {
    if (!authorization) return { error: 'Access token is empty.' };
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!match) return { error: 'Access token is empty.' };
    const token = match[1] as string;
    if (!token.includes('.')) return { error: 'IDX14100: JWT is not well formed, there are no dots (.).' };
    const info = this.#tokens.get(token);
    if (!info) return { error: 'Access token validation failure. Invalid audience.' };
    if (info.expiresAt <= Date.now()) return { error: 'Lifetime validation failed, the token is expired.' };
    return info;
  }

  /** Invalidates every issued token (as a revoked consent or a key rollover would). */
  revokeAll(): void {
    this.#tokens.clear();
  }
}
