import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { AppError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { RequestAuth, SymphonyHttp } from './http.ts';
import { raceAbort } from './retry.ts';

/** BDK-J `JwtHelper.JWT_EXPIRATION_MILLIS`; the pod accepts `exp` up to now + 5 min (symphony-api.md §1.1). */
export const JWT_LIFETIME_SECONDS = 240;

/** RS512 JWT `{sub, exp}` for RSA bot login (symphony-api.md §1.1 step 3). Built fresh for every login. */
export async function createLoginJwt(username: string, key: KeyObject, now: number = Date.now()): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS512' })
    .setSubject(username)
    .setExpirationTime(Math.floor(now / 1000) + JWT_LIFETIME_SECONDS)
    .sign(key);
}

interface Tokens {
  sessionToken: string;
  keyManagerToken: string;
  generation: number;
}

export interface SessionOptions {
  http: SymphonyHttp;
  logger: Logger;
  podUrl: string;
  keyManagerUrl: string;
  username: string;
  privateKey: KeyObject;
}

/** `Token {name, token, authorizationToken?}` from `/login/pubkey/authenticate` and `/relay/pubkey/authenticate`. */
function tokenOf(body: unknown, path: string): string {
  if (body && typeof body === 'object' && 'token' in body && typeof body.token === 'string' && body.token !== '') {
    return body.token;
  }
  throw new AppError('ERR_SOURCE_PROTOCOL', `POST ${path} → 200 without a token`, { retryable: true });
}

/**
 * The RSA session (pod `sessionToken` + Key Manager `keyManagerToken`). Logs in lazily, and on a 401
 * re-authenticates both tokens through one shared login (single flight), as BDK's `authSession.refresh()`
 * does (symphony-api.md §1.2, reliability.md §2.1 Session expiry).
 */
export class SymphonySession {
  readonly #options: SessionOptions;
  #generation = 0;
  #current: Promise<Tokens> | undefined;

  constructor(options: SessionOptions) {
    this.#options = options;
  }

  /** Pod calls carry only `sessionToken`; agent calls decrypt content and also need `keyManagerToken` (§0). */
  auth(target: 'pod' | 'agent'): RequestAuth {
    return {
      headers: async (signal) => {
        const tokens = await this.#tokens(signal);
        const headers: Record<string, string> = { sessionToken: tokens.sessionToken };
        if (target === 'agent') headers.keyManagerToken = tokens.keyManagerToken;
        return { headers, generation: tokens.generation };
      },
      renew: (generation, signal) => this.#renew(generation, signal),
    };
  }

  async #tokens(signal: AbortSignal | undefined): Promise<Tokens> {
    this.#current ??= this.#login();
    return raceAbort(this.#current, signal);
  }

  async #renew(generation: number, signal: AbortSignal | undefined): Promise<void> {
    const pending = this.#current;
    const current = pending ? await pending.catch(() => undefined) : undefined;
    // Only the first caller to see the rejected session replaces it; the others share that login.
    if (this.#current === pending && (!current || current.generation === generation)) this.#current = this.#login();
    this.#current ??= this.#login();
    await raceAbort(this.#current, signal);
  }

  /**
   * The shared login runs without any one caller's signal: an aborted caller stops waiting (raceAbort)
   * while others still get the tokens. A failed login is forgotten so the next call tries again.
   */
  #login(): Promise<Tokens> {
    const generation = ++this.#generation;
    const promise = this.#authenticate(generation);
    promise.catch(() => {
      if (this.#current === promise) this.#current = undefined;
    });
    return promise;
  }

  async #authenticate(generation: number): Promise<Tokens> {
    const { podUrl, keyManagerUrl } = this.#options;
    const [sessionToken, keyManagerToken] = await Promise.all([
      this.#authenticateAt(podUrl, '/login/pubkey/authenticate'),
      this.#authenticateAt(keyManagerUrl, '/relay/pubkey/authenticate'),
    ]);
    this.#options.logger.debug({ generation }, 'symphony session established');
    return { sessionToken, keyManagerToken, generation };
  }

  async #authenticateAt(baseUrl: string, path: string): Promise<string> {
    const { http, username, privateKey } = this.#options;
    // One JWT per component: a retried login may outlive a shared JWT's short lifetime.
    const token = await createLoginJwt(username, privateKey);
    const res = await http.request<unknown>({
      method: 'POST',
      baseUrl,
      path,
      body: { token },
      responseType: 'json',
    });
    return tokenOf(res.body, path);
  }
}
