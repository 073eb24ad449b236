import { AppError, type ErrorCode } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { SourceStats } from '../source.ts';
import { TokenBucket, type Clock } from './rate-limit.ts';
import { abortedError, backoffDelay, parseRetryAfter, sleep, throwIfAborted } from './retry.ts';
import { certificateErrorOf, createTransport, type Fetch, type FetchResponse } from './transport.ts';

/** How a request authenticates: the HTTP layer asks for headers and reports a 401, nothing more. */
export interface RequestAuth {
  /** Headers for the current session, plus an opaque generation to hand back on a 401. */
  headers(signal: AbortSignal | undefined): Promise<{ headers: Record<string, string>; generation: number }>;
  /** Re-authenticates unless another caller already replaced the session of `generation`. */
  renew(generation: number, signal: AbortSignal | undefined): Promise<void>;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'DELETE';
  baseUrl: string;
  path: string;
  query?: Record<string, string | number | boolean>;
  body?: unknown;
  /** Absent for the login calls themselves. */
  auth?: RequestAuth;
  responseType: 'json' | 'text';
  signal?: AbortSignal;
}

export interface HttpResponse<T> {
  status: number;
  /** Undefined for 204 No Content. */
  body: T | undefined;
  headers: FetchResponse['headers'];
}

export interface HttpOptions {
  /** Replaces the TLS transport (tests); by default undici over a connection pool that also trusts `ca`. */
  fetch?: Fetch | undefined;
  /** PEM certificates trusted in addition to Node's bundled roots (`caFile`). */
  ca?: readonly string[] | undefined;
  /** Base URLs of the pod, agent and key manager: no request goes to any other origin. */
  allowedOrigins: readonly string[];
  /** Client-side limit over every request, logins included; unset means none (429s are honoured either way). */
  requestsPerSecond?: number | undefined;
  /** Time source of the rate limit. */
  clock?: Clock | undefined;
  logger: Logger;
  requestTimeoutMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  stats: SourceStats;
  /** Aborted by `close()`: cancels pending backoff timers and in-flight requests. */
  closeSignal: AbortSignal;
}

/** Query keys whose values must never reach an error or a log line. */
const SECRET_QUERY_KEYS = /token|secret|password|key/i;
/** Anything shaped like a JWT, in case a server echoes one in its error message. */
const JWT_LIKE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;

/** `METHOD /path?query` for errors and logs: no host, no headers, secret-looking query values masked. */
export function describeRequest(req: Pick<HttpRequest, 'method' | 'path' | 'query'>): string {
  const params = Object.entries(req.query ?? {}).map(([k, v]) =>
    SECRET_QUERY_KEYS.test(k) ? `${k}=***` : `${k}=${encodeURIComponent(String(v))}`,
  );
  return `${req.method} ${req.path}${params.length ? '?' + params.join('&') : ''}`;
}

function buildUrl(req: HttpRequest): URL {
  const url = new URL(req.baseUrl + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, String(v));
  return url;
}

/** What the operator should change for each kind of certificate failure. */
function certificateProblem(code: string): string {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') return 'does not name this host';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'is outside its validity period';
  return 'is not issued by a trusted CA (a private CA goes in caFile)';
}

/**
 * Symphony's error bodies are `{code, message}` (pod) or `V2Error {code, message, details}` (agent), §4.4.
 * A server that echoes the request's tokens must not put them in our errors: the KM token is not JWT-shaped.
 */
function symphonyMessage(text: string, secrets: readonly string[]): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && 'message' in parsed && typeof parsed.message === 'string') {
      let message = parsed.message;
      for (const secret of secrets) if (secret !== '') message = message.split(secret).join('***');
      return message.replace(JWT_LIKE, '***').slice(0, 200);
    }
  } catch {
    // Not JSON: the body is not quoted, since proxies put arbitrary pages there.
  }
  return undefined;
}

type Outcome<T> = { kind: 'done'; response: HttpResponse<T> } | { kind: 'retry'; error: AppError; delayMs?: number };

/**
 * A JSON/text client for the Symphony REST API with the retry rules of symphony-api.md §7 and
 * reliability.md §2.1: 429 honours Retry-After, 5xx/network/timeouts/truncated bodies back off with jitter,
 * a 401 renews the session once, every request has a deadline and follows the caller's abort signal.
 * Requests go only to the configured origins, never follow a redirect and share one optional rate limit.
 */
export class SymphonyHttp {
  readonly #options: HttpOptions;
  readonly #fetch: Fetch;
  readonly #origins: ReadonlySet<string>;
  readonly #bucket: TokenBucket | undefined;

  constructor(options: HttpOptions) {
    this.#options = options;
    if (options.fetch) {
      this.#fetch = options.fetch;
    } else {
      const transport = createTransport(options.ca);
      this.#fetch = transport.fetch;
      options.closeSignal.addEventListener('abort', () => void transport.close().catch(() => undefined), {
        once: true,
      });
    }
    this.#origins = new Set(options.allowedOrigins.map((base) => new URL(base).origin));
    const { requestsPerSecond, clock } = options;
    this.#bucket = requestsPerSecond === undefined ? undefined : new TokenBucket(requestsPerSecond, clock);
  }

  async request<T>(req: HttpRequest): Promise<HttpResponse<T>> {
    const { maxRetries, stats } = this.#options;
    const url = this.#allowedUrl(req);
    let renewed = false;
    for (let attempt = 0; ;) {
      throwIfAborted(req.signal);
      const session = req.auth ? await req.auth.headers(req.signal) : undefined;
      const outcome = await this.#attempt<T>(req, url, session?.headers ?? {});
      if (outcome === 'unauthorized') {
        if (!req.auth || !session || renewed) throw this.#authError(req);
        renewed = true;
        stats.reauthentications += 1;
        this.#options.logger.info({ request: describeRequest(req) }, 'symphony session rejected; re-authenticating');
        await req.auth.renew(session.generation, req.signal);
        continue;
      }
      if (outcome.kind === 'done') return outcome.response;
      if (attempt >= maxRetries) throw outcome.error;
      const delayMs = outcome.delayMs ?? this.#backoff(attempt);
      attempt += 1;
      stats.retries += 1;
      this.#options.logger.warn(
        { request: describeRequest(req), code: outcome.error.code, status: outcome.error.status, attempt, delayMs },
        'symphony request failed; retrying',
      );
      await sleep(delayMs, [req.signal, this.#options.closeSignal]);
    }
  }

  /**
   * Tokens and content may only travel to the pod, agent and key manager the operator configured (reliability.md
   * point 10, ASVS 1.3.6): a URL that ends up elsewhere, e.g. from a server-supplied value, is never sent.
   */
  #allowedUrl(req: HttpRequest): URL {
    const url = buildUrl(req);
    if (!this.#origins.has(url.origin)) {
      throw new AppError('ERR_SOURCE_ORIGIN', `${req.method} to ${url.origin} refused: not a configured Symphony URL`);
    }
    return url;
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt, this.#options.backoffBaseMs, this.#options.backoffCapMs);
  }

  #authError(req: HttpRequest): AppError {
    const what = req.auth ? 'session rejected again after re-authentication' : 'login rejected';
    return new AppError('ERR_SOURCE_AUTH', `${describeRequest(req)} → 401 (${what})`, { status: 401 });
  }

  async #attempt<T>(
    req: HttpRequest,
    url: URL,
    authHeaders: Record<string, string>,
  ): Promise<Outcome<T> | 'unauthorized'> {
    const { stats, requestTimeoutMs, closeSignal } = this.#options;
    await this.#bucket?.take([req.signal, closeSignal]);
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    const signals = [timeout, closeSignal, ...(req.signal ? [req.signal] : [])];
    const signal = AbortSignal.any(signals);
    const headers: Record<string, string> = { accept: req.responseType === 'json' ? 'application/json' : '*/*' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    stats.requests += 1;
    let res: FetchResponse;
    let text: string;
    try {
      res = await this.#fetch(url.toString(), {
        method: req.method,
        headers: { ...headers, ...authHeaders },
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        // Redirects come back as responses, refused in #classify with the target named.
        redirect: 'manual',
        signal,
      });
      // The deadline covers the body too: a half-open socket mid-body must not hang the run (§2.1 Network).
      text = await res.text();
    } catch (err) {
      if (req.signal?.aborted || closeSignal.aborted) throw abortedError();
      const certificate = certificateErrorOf(err);
      if (certificate) {
        const detail = `the certificate of ${url.origin} ${certificateProblem(certificate)} (${certificate})`;
        throw this.#error('ERR_SOURCE_TLS', req, detail, {});
      }
      const why = timeout.aborted ? `timed out after ${requestTimeoutMs} ms` : 'network error';
      // The fetch error is not kept as `cause`: undici errors can carry the request options, headers included.
      return { kind: 'retry', error: this.#error('ERR_SOURCE_UNAVAILABLE', req, why, { retryable: true }) };
    }
    return this.#classify<T>(req, url, res, text, Object.values(authHeaders));
  }

  #classify<T>(
    req: HttpRequest,
    url: URL,
    res: FetchResponse,
    text: string,
    secrets: readonly string[],
  ): Outcome<T> | 'unauthorized' {
    const status = res.status;
    if (status === 401) {
      if (!req.auth) this.#warnOnClockSkew(res.headers.get('date'));
      return 'unauthorized';
    }
    if (status === 429 || status >= 500) return this.#retryable(req, res, text, secrets);
    if (status === 403) {
      throw this.#error('ERR_SOURCE_FORBIDDEN', req, this.#statusText(res, text, secrets), { status });
    }
    const location = status >= 300 && status < 400 ? res.headers.get('location') : null;
    if (location !== null) throw this.#redirectError(req, url, status, location);
    if (status < 200 || status >= 300) {
      throw this.#error('ERR_SOURCE_PROTOCOL', req, this.#statusText(res, text, secrets), { status });
    }
    if (status === 204 || (req.responseType === 'json' && text.trim() === '' && status !== 200)) {
      return { kind: 'done', response: { status, body: undefined, headers: res.headers } };
    }
    if (req.responseType === 'text') {
      return { kind: 'done', response: { status, body: text as T, headers: res.headers } };
    }
    try {
      return { kind: 'done', response: { status, body: JSON.parse(text) as T, headers: res.headers } };
    } catch {
      // A truncated read is a retryable parse error, never an empty page (reliability.md §2.1).
      const error = this.#error('ERR_SOURCE_PROTOCOL', req, `${status}: malformed JSON body (${text.length} bytes)`, {
        status,
        retryable: true,
      });
      return { kind: 'retry', error };
    }
  }

  #retryable<T>(req: HttpRequest, res: FetchResponse, text: string, secrets: readonly string[]): Outcome<T> {
    const status = res.status;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    if (status === 429) this.#options.stats.throttled += 1;
    const code: ErrorCode = status === 429 ? 'ERR_SOURCE_THROTTLED' : 'ERR_SOURCE_UNAVAILABLE';
    const detail = this.#statusText(res, text, secrets);
    const error = this.#error(code, req, detail, { status, retryable: true, retryAfterMs });
    return { kind: 'retry', error, delayMs: retryAfterMs };
  }

  /**
   * No redirect is followed, not even to a configured origin (reliability.md point 10): Symphony's API does not
   * redirect, and one that leaves the configured origins is how an SSRF reaches an internal host.
   */
  #redirectError(req: HttpRequest, url: URL, status: number, location: string): AppError {
    let target: URL | undefined;
    try {
      target = new URL(location, url);
    } catch {
      // An unreadable Location is refused like any other.
    }
    if (target && !this.#origins.has(target.origin)) {
      return this.#error('ERR_SOURCE_ORIGIN', req, `${status} redirect to ${target.origin} refused`, { status });
    }
    return this.#error('ERR_SOURCE_PROTOCOL', req, `${status} redirect refused`, { status });
  }

  #statusText(res: FetchResponse, text: string, secrets: readonly string[]): string {
    const message = symphonyMessage(text, secrets);
    return message ? `${res.status}: ${message}` : String(res.status);
  }

  #error(
    code: ErrorCode,
    req: HttpRequest,
    detail: string,
    options: { status?: number; retryable?: boolean; retryAfterMs?: number },
  ): AppError {
    return new AppError(code, `${describeRequest(req)} → ${detail}`, options);
  }

  /** A JWT `exp` outside the pod's 5-minute window shows up as a login 401 (reliability.md §2.1 Clock skew). */
  #warnOnClockSkew(dateHeader: string | null): void {
    const serverTime = dateHeader ? Date.parse(dateHeader) : NaN;
    if (Number.isNaN(serverTime)) return;
    const skewMs = serverTime - Date.now();
    if (Math.abs(skewMs) > 60_000) {
      this.#options.logger.warn({ skewMs }, 'clock skew with the Symphony server may explain the login rejection');
    }
  }

  /**
   * `request` for a body too large to hold (an attachment, symphony-api.md §2.6): `consume` reads a 2xx body as it
   * arrives, and gets the status too (204 has none). Origins, rate limit, session renewal and retries are those of
   * `request`. The deadline covers the response head and then each wait for more of the body, so a long download
   * goes on while bytes flow and a stalled one still ends (reliability.md §2.1 Network). When the body stream fails,
   * the attempt is retried and `consume` called again, so it must start over; an error of its own ends the request.
   */
  async requestStream<T>(
    req: Omit<HttpRequest, 'body' | 'responseType'>,
    consume: (body: AsyncIterable<Uint8Array>, status: number) => Promise<T>,
  ): Promise<T> {
    const full: HttpRequest = { ...req, responseType: 'text' };
    const { maxRetries, stats } = this.#options;
    const url = this.#allowedUrl(full);
    let renewed = false;
    for (let attempt = 0; ;) {
      throwIfAborted(req.signal);
      const session = req.auth ? await req.auth.headers(req.signal) : undefined;
      const outcome = await this.#streamAttempt(full, url, session?.headers ?? {}, consume);
      if (outcome === 'unauthorized') {
        if (!req.auth || !session || renewed) throw this.#authError(full);
        renewed = true;
        stats.reauthentications += 1;
        await req.auth.renew(session.generation, req.signal);
        continue;
      }
      if (outcome.kind === 'done') return outcome.value;
      if (attempt >= maxRetries) throw outcome.error;
      const delayMs = outcome.delayMs ?? this.#backoff(attempt);
      attempt += 1;
      stats.retries += 1;
      this.#options.logger.warn(
        { request: describeRequest(full), code: outcome.error.code, status: outcome.error.status, attempt, delayMs },
        'symphony request failed; retrying',
      );
      await sleep(delayMs, [req.signal, this.#options.closeSignal]);
    }
  }

  async #streamAttempt<T>(
    req: HttpRequest,
    url: URL,
    authHeaders: Record<string, string>,
    consume: (body: AsyncIterable<Uint8Array>, status: number) => Promise<T>,
  ): Promise<StreamOutcome<T> | 'unauthorized'> {
    const { stats, requestTimeoutMs, closeSignal } = this.#options;
    await this.#bucket?.take([req.signal, closeSignal]);
    const deadline = new AbortController();
    let timer = setTimeout(() => deadline.abort(), requestTimeoutMs);
    const signal = AbortSignal.any([deadline.signal, closeSignal, ...(req.signal ? [req.signal] : [])]);
    const aborted = () => req.signal?.aborted || closeSignal.aborted;
    const broken = (what: string) => {
      const why = deadline.signal.aborted
        ? `${what} stalled for ${requestTimeoutMs} ms`
        : `network error during ${what}`;
      return this.#error('ERR_SOURCE_UNAVAILABLE', req, why, { retryable: true });
    };
    stats.requests += 1;
    let res: StreamingResponse;
    try {
      res = await this.#fetch(url.toString(), {
        method: req.method,
        headers: { accept: '*/*', ...authHeaders },
        body: undefined,
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      clearTimeout(timer);
      if (aborted()) throw abortedError();
      const certificate = certificateErrorOf(err);
      if (certificate) {
        const detail = `the certificate of ${url.origin} ${certificateProblem(certificate)} (${certificate})`;
        throw this.#error('ERR_SOURCE_TLS', req, detail, {});
      }
      return { kind: 'retry', error: broken('the response head') };
    }
    if (res.status < 200 || res.status >= 300) {
      let text: string;
      try {
        text = await res.text();
      } catch {
        if (aborted()) throw abortedError();
        return { kind: 'retry', error: broken('the error body') };
      } finally {
        clearTimeout(timer);
      }
      const outcome = this.#classify<never>(req, url, res, text, Object.values(authHeaders));
      if (outcome === 'unauthorized' || outcome.kind === 'retry') return outcome;
      throw this.#error('ERR_SOURCE_PROTOCOL', req, `unexpected status ${res.status}`, { status: res.status });
    }
    clearTimeout(timer);
    const reader = res.body?.getReader();
    let failure: AppError | undefined;
    const chunks = async function* (): AsyncGenerator<Uint8Array> {
      for (;;) {
        timer = setTimeout(() => deadline.abort(), requestTimeoutMs);
        let next: { done: boolean; value?: Uint8Array | undefined };
        try {
          // A fetch without streams (a test double) has the body as text only.
          next = reader ? await reader.read() : { done: false, value: Buffer.from(await res.text()) };
        } catch {
          throw (failure = broken('the body'));
        } finally {
          clearTimeout(timer);
        }
        if (next.value) yield next.value;
        if (next.done || !reader) return;
      }
    };
    try {
      return { kind: 'done', value: await consume(chunks(), res.status) };
    } catch (err) {
      if (aborted()) throw abortedError();
      if (failure) return { kind: 'retry', error: failure };
      throw err;
    } finally {
      await reader?.cancel().catch(() => undefined);
    }
  }
}

type StreamOutcome<T> = { kind: 'done'; value: T } | { kind: 'retry'; error: AppError; delayMs?: number };
/** The fetch response with its body stream, which undici's and Node's fetch both have. */
type StreamingResponse = FetchResponse & { body?: ReadableStream<Uint8Array> | null };
