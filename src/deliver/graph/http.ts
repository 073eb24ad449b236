import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequestInit {
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Why a request failed without an HTTP answer. `sent` tells whether the server may have acted on it: a refused
 * connection never reached it, while a reset or a timeout after the request left may hide a stored item
 * (destinations.md §1.5: no idempotency key, so unknown outcomes are probed).
 */
export class TransportError extends Error {
  constructor(
    readonly kind: 'network' | 'tls' | 'timeout' | 'aborted' | 'too-large',
    readonly sent: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/** Errors raised before a byte of the request can have reached the server. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Certificate verification failures (OpenSSL verify codes and Node's TLS errors): configuration, not transient. */
export const TLS_FAILURE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS|ALTNAME|HOSTNAME_MISMATCH/;

const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/**
 * A small keep-alive HTTP(S) client over node:http: TLS with an optional private CA (never with verification
 * off, reliability.md §4.4), no redirects, a deadline covering the whole exchange, and errors that say whether the
 * request may have been delivered. Error messages name the method and path only, never headers or bodies.
 */
export class HttpTransport {
  readonly #https: https.Agent;
  readonly #http: http.Agent;

  constructor(options: { ca?: string | Buffer; maxSockets?: number }) {
    const common = { keepAlive: true, maxSockets: options.maxSockets ?? 64, maxFreeSockets: 16 };
    this.#https = new https.Agent({ ...common, ...(options.ca ? { ca: options.ca } : {}) });
    this.#http = new http.Agent(common);
  }

  request(url: URL, init: HttpRequestInit): Promise<HttpResult> {
    const where = `${init.method} ${url.pathname}`;
    return new Promise<HttpResult>((resolve, reject) => {
      if (init.signal?.aborted) {
        reject(new TransportError('aborted', false, `${where}: aborted`));
        return;
      }
      const isHttps = url.protocol === 'https:';
      const headers: Record<string, string> = { ...init.headers };
      if (init.body) headers['content-length'] = String(init.body.length);
      let connected = false;
      let settled = false;
      const finish = (err: TransportError | undefined, result?: HttpResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        init.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(result as HttpResult);
      };
      const req = (isHttps ? https : http).request(
        url,
        { method: init.method, headers, agent: isHttps ? this.#https : this.#http },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy();
              finish(
                new TransportError('too-large', true, `${where}: response larger than ${MAX_RESPONSE_BYTES} bytes`),
              );
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () =>
            finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', () =>
            finish(new TransportError('network', true, `${where}: connection lost while reading the response`)),
          );
          res.on('aborted', () =>
            finish(new TransportError('network', true, `${where}: connection lost while reading the response`)),
          );
        },
      );
      req.on('socket', (socket) => {
        // A reused keep-alive socket is already connected: whatever fails now may have reached the server.
        if (!socket.connecting) connected = true;
        else socket.once(isHttps ? 'secureConnect' : 'connect', () => (connected = true));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        if (TLS_FAILURE.test(code)) {
          finish(new TransportError('tls', false, `${where}: TLS certificate verification failed (${code})`));
          return;
        }
        const sent = connected && !NOT_SENT.has(code);
        finish(new TransportError('network', sent, `${where}: ${code || 'network error'}`));
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish(new TransportError('timeout', connected, `${where}: timed out after ${init.timeoutMs} ms`));
      }, init.timeoutMs);
      const onAbort = (): void => {
        req.destroy();
        finish(new TransportError('aborted', connected, `${where}: aborted`));
      };
      init.signal?.addEventListener('abort', onAbort, { once: true });
      req.end(init.body);
    });
  }

  close(): void {
    this.#https.destroy();
    this.#http.destroy();
  }
}
