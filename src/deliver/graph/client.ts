import { AppError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { TokenProvider } from './auth.ts';
import { TransportError, type HttpResult, type HttpTransport } from './http.ts';
import { MailboxLimiter, sleep, type MailboxLimits } from './limiter.ts';

export interface GraphRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** The mailbox whose budget the request spends. */
  mailbox: string;
  /** Path below graphUrl (`/v1.0/users/…`), or an absolute URL Graph handed out (nextLink, uploadUrl). */
  path: string | URL;
  query?: Record<string, string>;
  json?: unknown;
  /** A text/plain body (base64 MIME for importMime). */
  text?: string;
  /** Raw bytes PUT to an upload URL, with their Content-Range. */
  bytes?: { data: Buffer; contentRange: string };
  /** Upload URLs are pre-authenticated and must not get an Authorization header. */
  anonymous?: boolean;
  /** May be sent again after an unknown outcome (reads, deletes, PUTs of a byte range). */
  idempotent: boolean;
  signal?: AbortSignal;
}

export interface GraphResponse {
  status: number;
  headers: HttpResult['headers'];
  json: unknown;
}

/** A Graph error response (`{error:{code,message}}`), before it becomes an AppError at the writer's edge. */
export class GraphHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly graphMessage: string,
    readonly request: string,
    readonly retryAfterMs?: number,
  ) {
    super(`${request} → ${status} ${code}: ${graphMessage}`);
    this.name = 'GraphHttpError';
  }
}

/**
 * A non-idempotent call whose effect is unknown: the connection dropped after the request left, it timed out, or
 * Graph answered 5xx. destinations.md §6.4: probe before sending it again.
 */
export class UncertainOutcome extends Error {
  constructor(
    readonly request: string,
    readonly why: string,
    readonly retryAfterMs?: number,
  ) {
    super(`${request}: outcome unknown (${why})`);
    this.name = 'UncertainOutcome';
  }
}

export interface GraphClientOptions {
  graphUrl: string;
  tokens: TokenProvider;
  transport: HttpTransport;
  logger: Logger;
  limits: MailboxLimits;
  timeoutMs: number;
  maxRetries: number;
  maxRetryWaitMs: number;
}

const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** `Retry-After` as delta-seconds or HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - now), MAX_RETRY_AFTER_MS);
}

function backoff(attempt: number): number {
  // Full jitter (AWS Architecture Blog): 500 ms doubling, capped at 30 s.
  return Math.floor(Math.random() * Math.min(30_000, 500 * 2 ** Math.min(attempt, 16)));
}

function parseBody(res: HttpResult): unknown {
  if (res.body.length === 0) return undefined;
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

function graphError(json: unknown): { code: string; message: string } {
  const e = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return {
    code: typeof e?.code === 'string' ? e.code : 'Unknown',
    message: typeof e?.message === 'string' ? e.message.slice(0, 300) : '',
  };
}

/**
 * Graph over HTTP for the writer: every request goes through its mailbox's limiter (4 in flight, request and upload
 * buckets, shared pause after throttling), carries a bearer token (renewed once on 401) and the immutable-id
 * preference, honours Retry-After on 429/503, retries idempotent calls on 5xx and network errors, and reports a
 * non-idempotent call with an unknown outcome as `UncertainOutcome` for the caller to probe.
 */
export class GraphClient {
  readonly #o: GraphClientOptions;
  readonly #limiters = new Map<string, MailboxLimiter>();
  readonly #origin: string;

  constructor(options: GraphClientOptions) {
    this.#o = options;
    this.#origin = new URL(options.graphUrl).origin;
  }

  limiter(mailbox: string): MailboxLimiter {
    let l = this.#limiters.get(mailbox);
    if (!l) {
      l = new MailboxLimiter(this.#o.limits);
      this.#limiters.set(mailbox, l);
    }
    return l;
  }

  #url(req: GraphRequest): URL {
    const url = req.path instanceof URL ? new URL(req.path) : new URL(this.#o.graphUrl + req.path);
    if (!req.anonymous && url.origin !== this.#origin) {
      // A nextLink pointing elsewhere would carry our bearer token off-site.
      throw new AppError(
        'ERR_SINK_IO',
        `Graph returned a link to another origin (${url.origin}); refusing to follow it`,
      );
    }
    if (url.protocol !== 'https:' && url.origin !== this.#origin) {
      throw new AppError('ERR_SINK_IO', `Graph returned a plain-http upload URL on ${url.origin}; refusing it`);
    }
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
    return url;
  }

  async send(req: GraphRequest): Promise<GraphResponse> {
    const url = this.#url(req);
    const what = `${req.method} ${url.pathname}`;
    const limiter = this.limiter(req.mailbox);
    const body =
      req.json !== undefined
        ? Buffer.from(JSON.stringify(req.json))
        : req.text !== undefined
          ? Buffer.from(req.text, 'latin1')
          : req.bytes?.data;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (!req.anonymous) headers.prefer = 'IdType="ImmutableId"';
    if (req.json !== undefined) headers['content-type'] = 'application/json';
    if (req.text !== undefined) headers['content-type'] = 'text/plain';
    if (req.bytes) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-range'] = req.bytes.contentRange;
    }
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      const release = await limiter.acquire(
        req.method === 'GET' || req.method === 'DELETE' ? 0 : (body?.length ?? 0),
        req.signal,
      );
      let res: HttpResult;
      try {
        if (!req.anonymous) headers.authorization = `Bearer ${await this.#o.tokens.token(req.signal)}`;
        res = await this.#o.transport.request(url, {
          method: req.method,
          headers,
          ...(body ? { body } : {}),
          timeoutMs: this.#o.timeoutMs,
          ...(req.signal ? { signal: req.signal } : {}),
        });
      } catch (err) {
        release();
        if (!(err instanceof TransportError)) throw err;
        if (err.kind === 'aborted') throw new AppError('ERR_ABORTED', what);
        if (err.kind === 'tls') throw new AppError('ERR_SINK_REJECTED', `${err.message}; a private CA goes in caFile`);
        if (err.sent && !req.idempotent) throw new UncertainOutcome(what, err.message);
        if (attempt >= this.#o.maxRetries) throw new AppError('ERR_SINK_IO', err.message, { retryable: true });
        const delayMs = backoff(attempt);
        this.#o.logger.warn(
          { mailbox: req.mailbox, request: what, attempt: attempt + 1, delayMs },
          'graph request failed; retrying',
        );
        await sleep(delayMs, req.signal);
        continue;
      }
      release();
      const json = parseBody(res);
      if (res.status >= 200 && res.status < 300) return { status: res.status, headers: res.headers, json };
      const { code, message } = graphError(json);
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      if (res.status === 401 && !req.anonymous && !renewed) {
        renewed = true;
        this.#o.tokens.invalidate();
        this.#o.logger.info(
          { mailbox: req.mailbox, request: what, code },
          'graph rejected the access token; signing in again',
        );
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        throw new GraphHttpError(res.status, code, message, what);
      }
      const throttled = res.status === 429;
      const transient = throttled || res.status >= 500;
      if (!transient) throw new GraphHttpError(res.status, code, message, what, retryAfterMs);
      if (retryAfterMs !== undefined) limiter.pause(retryAfterMs);
      // 429 means the request was refused outright; a 5xx may have been applied, so non-idempotent calls get probed.
      if (!throttled && !req.idempotent) throw new UncertainOutcome(what, `${res.status} ${code}`, retryAfterMs);
      const delayMs = retryAfterMs ?? backoff(attempt);
      if (attempt >= this.#o.maxRetries || delayMs > this.#o.maxRetryWaitMs) {
        throw new AppError(throttled ? 'ERR_SINK_THROTTLED' : 'ERR_SINK_IO', `${what} → ${res.status} ${code}`, {
          retryable: true,
          status: res.status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        });
      }
      this.#o.logger.warn(
        { mailbox: req.mailbox, request: what, status: res.status, code, attempt: attempt + 1, delayMs },
        throttled ? 'graph throttled the request; waiting' : 'graph request failed; retrying',
      );
      await sleep(delayMs, req.signal);
    }
  }
}
