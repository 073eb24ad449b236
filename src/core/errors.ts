/**
 * Every error the archiver raises carries one code from this table (the nodemailer `lib/errors.js` /
 * fastify `FST_ERR_*` pattern): one vocabulary for logs, the run ledger, the CLI exit status and the API.
 */
export const ERROR_CODES = {
  ERR_CONFIG_INVALID: 'Configuration is invalid',
  ERR_INPUT_INVALID: 'Input file is invalid',
  ERR_SOURCE_AUTH: 'Symphony authentication failed',
  ERR_SOURCE_FORBIDDEN: 'Symphony refused access to the resource',
  ERR_SOURCE_THROTTLED: 'Symphony throttled the request',
  ERR_SOURCE_UNAVAILABLE: 'Symphony is unavailable',
  ERR_SOURCE_PROTOCOL: 'Symphony answered with an unexpected response',
  ERR_SOURCE_ATTACHMENT: 'An attachment could not be downloaded',
  ERR_SOURCE_TLS: 'The Symphony server certificate could not be verified',
  ERR_SOURCE_ORIGIN: 'A request outside the configured pod, agent and key manager was refused',
  ERR_CONVERT_FAILED: 'A message could not be converted to email',
  ERR_STAGE_IO: 'The staging area could not be read or written',
  ERR_SINK_IO: 'The mailbox could not be written',
  ERR_SINK_THROTTLED: 'The mailbox server throttled the request',
  ERR_SINK_REJECTED: 'The mailbox server rejected the item',
  ERR_STORE_IO: 'The state store failed',
  ERR_STORE_LOCKED: 'Another archiver process holds this connector',
  ERR_ABORTED: 'The operation was cancelled',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AppErrorOptions {
  /** True when the same operation may succeed if tried again later. */
  retryable?: boolean;
  /** Server-advised wait before a retry (HTTP Retry-After, IMAP "Suggested Backoff Time"). */
  retryAfterMs?: number;
  /** HTTP status or protocol status that caused the error, when there is one. */
  status?: number;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;

  constructor(code: ErrorCode, detail?: string, options: AppErrorOptions = {}) {
    super(detail ? `${ERROR_CODES[code]}: ${detail}` : ERROR_CODES[code], { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

export function isAppError(err: unknown, code?: ErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}

/** Wraps a foreign error (graphile `coerceError`), keeping it as `cause`. */
export function toAppError(err: unknown, code: ErrorCode, detail?: string, options: AppErrorOptions = {}): AppError {
  if (err instanceof AppError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AppError(code, detail ? `${detail}: ${message}` : message, { ...options, cause: err });
}

/** A one-line reason for ledgers and logs; never includes stack traces or request headers. */
export function reasonOf(err: unknown): string {
  if (err instanceof AppError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
