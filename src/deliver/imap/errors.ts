import { AppError } from '../../core/errors.ts';

/** The fields imapflow puts on its errors (imapflow `errors.d.ts` ImapFlowError) that we read. */
export interface ImapErrorLike {
  message?: string;
  code?: string;
  responseStatus?: string;
  responseText?: string;
  serverResponseCode?: string;
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  throttleReset?: number;
  throttleWaited?: number;
}

function fieldsOf(err: unknown): ImapErrorLike {
  return typeof err === 'object' && err !== null ? (err as ImapErrorLike) : { message: String(err) };
}

/** A tagged NO or BAD: the server received the command and answered it, so its outcome is known. */
export function isServerRefusal(err: unknown): boolean {
  const { responseStatus, code } = fieldsOf(err);
  return (responseStatus === 'NO' || responseStatus === 'BAD') && code !== 'ETHROTTLE';
}

/** The mailbox is full (RFC 5530 OVERQUOTA, or a server that only says so in words). */
export function isOverQuota(err: unknown): boolean {
  const f = fieldsOf(err);
  return (
    isServerRefusal(err) &&
    (f.serverResponseCode?.toUpperCase() === 'OVERQUOTA' || /\bquota\b/i.test(f.responseText ?? ''))
  );
}

/** Node's TLS verification failures (`tls.TLSSocket` `authorizationError` codes) and imapflow's STARTTLS failures. */
const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|STARTTLS_)/;

export function isTlsFailure(err: unknown): boolean {
  const { code, tlsFailed } = fieldsOf(err);
  return tlsFailed === true || (code !== undefined && TLS_CODES.test(code));
}

/**
 * Connection-level failures: the command may or may not have reached the server, and the connection is gone.
 * Everything that is neither a tagged answer nor a refusal raised before sending counts, so an unknown error
 * errs on the side of probing.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (err instanceof AppError) return false;
  const { code, serverResponseCode } = fieldsOf(err);
  if (isServerRefusal(err) || code === 'ETHROTTLE') return false;
  // Refused locally before anything was sent (imapflow append.ts: APPENDLIMIT check, content type check).
  if (serverResponseCode === 'APPENDLIMIT' || code === 'InvalidMessageContent') return false;
  return true;
}

/** Errors made from a refused login, so callers can tell them from connection failures without parsing text. */
const loginRefusals = new WeakSet<AppError>();

/** Whether the server refused the credentials (as opposed to the connection failing). */
export function isLoginRefusal(err: unknown): boolean {
  return err instanceof AppError && loginRefusals.has(err);
}

/** "BAD Request is throttled. Suggested Backoff Time: 299961 milliseconds" (Exchange Online, destinations.md §2.5). */
const EXCHANGE_THROTTLE = /Request is throttled.*?Backoff Time[:=\s]+(\d+)/i;

export interface ImapErrorContext {
  /** What was being done, for the message: "APPEND to INBOX.Symphony of alice@example.com". */
  what: string;
  /** A login refusal may heal by itself (XOAUTH2 token rotated by a refresher). */
  loginRetryable?: boolean;
  /** Whether a tagged NO/BAD refers to the item itself (APPEND) rather than to setup commands. */
  itemCommand?: boolean;
}

/**
 * Translates an imapflow (or socket) error into our vocabulary at the edge (style.md §4.4). The cause kept is a
 * copy of the protocol fields only: imapflow errors carry the executed command and the raw response, and a cause
 * must never bring a credential into a log or ledger.
 */
export function toImapAppError(err: unknown, context: ImapErrorContext): AppError {
  if (err instanceof AppError) return err;
  const f = fieldsOf(err);
  const cause = safeCause(f);
  const code = f.serverResponseCode?.toUpperCase();
  const text = oneLine(f.responseText ?? '');
  const said = `${f.responseStatus ?? ''}${code ? ` [${code}]` : ''}${text ? ` ${text}` : ''}`.trim();

  if (f.code === 'ETHROTTLE' || EXCHANGE_THROTTLE.test(text)) {
    const suggested = f.throttleReset ?? Number(EXCHANGE_THROTTLE.exec(text)?.[1] ?? 0);
    const retryAfterMs = Math.max(0, suggested - (f.throttleWaited ?? 0));
    return new AppError(
      'ERR_SINK_THROTTLED',
      `${context.what}: server throttled the session (${said || 'ETHROTTLE'})`,
      {
        retryable: true,
        retryAfterMs,
        cause,
      },
    );
  }
  if (f.serverResponseCode === 'APPENDLIMIT' || code === 'TOOBIG') {
    return new AppError('ERR_SINK_REJECTED', `${context.what}: message is larger than the server accepts (${said})`, {
      cause,
    });
  }
  if (f.code === 'InvalidMessageContent') {
    return new AppError('ERR_SINK_REJECTED', `${context.what}: ${f.message ?? 'invalid content'}`, { cause });
  }
  if (
    f.authenticationFailed ||
    code === 'AUTHENTICATIONFAILED' ||
    code === 'AUTHORIZATIONFAILED' ||
    code === 'EXPIRED'
  ) {
    const error = new AppError('ERR_SINK_IO', `${context.what}: login refused (${said || 'authentication failed'})`, {
      retryable: context.loginRetryable === true || code === 'UNAVAILABLE',
      cause,
    });
    loginRefusals.add(error);
    return error;
  }
  if (isServerRefusal(err)) {
    // RFC 5530 response codes. LIMIT: an administrative limit such as a rate or connection cap was hit.
    if (code === 'LIMIT') {
      return new AppError('ERR_SINK_THROTTLED', `${context.what}: server limit reached (${said})`, {
        retryable: true,
        cause,
      });
    }
    // OVERQUOTA (RFC 5530 §3, RFC 9208 §4.4): the mailbox is full; the item is not at fault and space can be freed.
    if (isOverQuota(err)) {
      return new AppError('ERR_SINK_IO', `${context.what}: mailbox is over quota (${said})`, {
        retryable: true,
        cause,
      });
    }
    if (code === 'UNAVAILABLE' || code === 'INUSE' || code === 'SERVERBUG' || code === 'CORRUPTION') {
      return new AppError('ERR_SINK_IO', `${context.what}: server temporarily failed (${said})`, {
        retryable: true,
        cause,
      });
    }
    if (context.itemCommand) {
      // The server looked at this message and refused it (size, NUL bytes, syntax): retrying sends the same bytes.
      return new AppError('ERR_SINK_REJECTED', `${context.what}: server refused the message (${said})`, { cause });
    }
    return new AppError('ERR_SINK_IO', `${context.what}: server refused (${said})`, { cause });
  }
  if (isTlsFailure(err)) {
    return new AppError(
      'ERR_SINK_IO',
      `${context.what}: TLS failed (${f.code ?? 'handshake'}: ${oneLine(f.message ?? '')}); certificates are always verified, set caFile for a private CA`,
      { cause },
    );
  }
  return new AppError('ERR_SINK_IO', `${context.what}: connection failed (${f.code ?? oneLine(f.message ?? '')})`, {
    retryable: true,
    cause,
  });
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 300);
}

function safeCause(f: ImapErrorLike): Error {
  const err = new Error(oneLine(f.message ?? 'IMAP error'));
  Object.assign(err, {
    code: f.code,
    responseStatus: f.responseStatus,
    responseText: f.responseText === undefined ? undefined : oneLine(f.responseText),
    serverResponseCode: f.serverResponseCode,
  });
  return err;
}
