import { AppError, type ErrorCode } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { SourceStats } from '../source.ts';
import { abortedError, backoffDelay, parseRetryAfter, sleep, throwIfAborted } from './retry.ts';

/** How a request authenticates: the HTTP layer asks for headers and reports a 401, nothing more. */
export interface RequestAuth {
  /** Headers for the current session, plus an opaque generation to hand back on a 401. */
  headers(signal: AbortSignal | undefined): Promise<{ headers: Record<string, string>; generation: number }>;
  /** Re-authenticates unless another caller already replaced the session of `generation`. */
  renew(generation: number, signal: AbortSignal | undefined): Promise<void>;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
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
  headers: Headers;
}

export interface HttpOptions {
  fetch: typeof fetch;
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

function buildUrl(req: HttpRequest): string {
  const url = new URL(req.baseUrl + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, String(v));
  return url.toString();
}

/** Symphony's error bodies are `{code, message}` (pod) or `V2Error {code, message, details}` (agent), §4.4. */
function symphonyMessage(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && 'message' in parsed && typeof parsed.message === 'string') {
      return parsed.message.replace(JWT_LIKE, '***').slice(0, 200);
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
 */
export class SymphonyHttp {
  readonly #options: HttpOptions;

  constructor(options: HttpOptions) {
    this.#options = options;
  }

  async request<T>(req: HttpRequest): Promise<HttpResponse<T>> {
    const { maxRetries, stats } = this.#options;
    let renewed = false;
    for (let attempt = 0; ;) {
      throwIfAborted(req.signal);
      const session = req.auth ? await req.auth.headers(req.signal) : undefined;
      const outcome = await this.#attempt<T>(req, session?.headers ?? {});
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

  #backoff(attempt: number): number {
    return backoffDelay(attempt, this.#options.backoffBaseMs, this.#options.backoffCapMs);
  }

  #authError(req: HttpRequest): AppError {
    const what = req.auth ? 'session rejected again after re-authentication' : 'login rejected';
    return new AppError('ERR_SOURCE_AUTH', `${describeRequest(req)} → 401 (${what})`, { status: 401 });
  }

  async #attempt<T>(req: HttpRequest, authHeaders: Record<string, string>): Promise<Outcome<T> | 'unauthorized'> {
    const { stats, requestTimeoutMs, closeSignal } = this.#options;
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    const signals = [timeout, closeSignal, ...(req.signal ? [req.signal] : [])];
    const signal = AbortSignal.any(signals);
    const headers: Record<string, string> = { accept: req.responseType === 'json' ? 'application/json' : '*/*' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    stats.requests += 1;
    let res: Response;
    let text: string;
    try {
      res = await this.#options.fetch(buildUrl(req), {
        method: req.method,
        headers: { ...headers, ...authHeaders },
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        redirect: 'error',
        signal,
      });
      // The deadline covers the body too: a half-open socket mid-body must not hang the run (§2.1 Network).
      text = await res.text();
    } catch {
      if (req.signal?.aborted || closeSignal.aborted) throw abortedError();
      const why = timeout.aborted ? `timed out after ${requestTimeoutMs} ms` : 'network error';
      // The fetch error is not kept as `cause`: undici errors can carry the request options, headers included.
      return { kind: 'retry', error: this.#error('ERR_SOURCE_UNAVAILABLE', req, why, { retryable: true }) };
    }
    return this.#classify<T>(req, res, text);
  }

  #classify<T>(req: HttpRequest, res: Response, text: string): Outcome<T> | 'unauthorized' {
    const status = res.status;
    if (status === 401) {
      if (!req.auth) this.#warnOnClockSkew(res.headers.get('date'));
      return 'unauthorized';
    }
    if (status === 429 || status >= 500) return this.#retryable(req, res, text);
    if (status === 403) {
      throw this.#error('ERR_SOURCE_FORBIDDEN', req, this.#statusText(res, text), { status });
    }
    if (status < 200 || status >= 300) {
      throw this.#error('ERR_SOURCE_PROTOCOL', req, this.#statusText(res, text), { status });
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

  #retryable<T>(req: HttpRequest, res: Response, text: string): Outcome<T> {
    const status = res.status;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    if (status === 429) this.#options.stats.throttled += 1;
    const code: ErrorCode = status === 429 ? 'ERR_SOURCE_THROTTLED' : 'ERR_SOURCE_UNAVAILABLE';
    const error = this.#error(code, req, this.#statusText(res, text), { status, retryable: true, retryAfterMs });
    return { kind: 'retry', error, delayMs: retryAfterMs };
  }

  #statusText(res: Response, text: string): string {
    const message = symphonyMessage(text);
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
}
