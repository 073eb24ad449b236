import net from 'node:net';
import tls from 'node:tls';
import { AppError } from '../../core/errors.ts';
import type { ImapDestinationConfig } from './config.ts';
import { tlsOptions } from './connection.ts';
import { toImapAppError } from './errors.ts';

/**
 * Reads lines from a socket until one matches; rejects on close, error or timeout. The IMAP greeting and the
 * STARTTLS answer are single lines (RFC 9051 §7.1), so no literal handling is needed here.
 */
function waitForLine(socket: net.Socket, match: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const done = (err: Error | undefined, line?: string) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(line ?? '');
    };
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (match.test(line)) return done(undefined, line);
        if (/^(\* BYE|[A-Za-z0-9]+ (NO|BAD))\b/i.test(line)) {
          return done(Object.assign(new Error(`server answered: ${line.slice(0, 200)}`), { code: 'EPROTO' }));
        }
      }
    };
    const onError = (err: Error) => done(err);
    const onClose = () => done(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }));
    const timer = setTimeout(
      () => done(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

function connected(socket: net.Socket, event: 'connect' | 'secureConnect', timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: 'CONNECT_TIMEOUT' }));
    }, timeoutMs);
    socket.once(event, () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Checks that the server answers with an IMAP greeting over the configured transport, with the certificate verified
 * (implicit TLS, or after STARTTLS, RFC 9051 §6.2.1). Logs nobody in: without a mailbox to check, a login would need
 * a user, and failed logins count against the server's error budget (Exchange drops a session after 10 errors).
 */
export async function probeServer(config: ImapDestinationConfig): Promise<void> {
  const what = `IMAP server ${config.host}:${config.port}`;
  const timeout = config.connectTimeoutMs;
  const secure = await tlsOptions(config);
  const servername = config.servername ?? (net.isIP(config.host) ? undefined : config.host);
  let socket: net.Socket | undefined;
  try {
    if (config.security === 'tls') {
      socket = tls.connect({ host: config.host, port: config.port, ...secure, servername });
      await connected(socket, 'secureConnect', timeout);
      await waitForLine(socket, /^\* (OK|PREAUTH)\b/i, timeout);
    } else {
      const plain = net.connect({ host: config.host, port: config.port });
      socket = plain;
      await connected(plain, 'connect', timeout);
      await waitForLine(plain, /^\* (OK|PREAUTH)\b/i, timeout);
      if (config.security === 'starttls') {
        plain.write('A1 STARTTLS\r\n');
        await waitForLine(plain, /^A1 OK\b/i, timeout);
        socket = tls.connect({ socket: plain, ...secure, servername });
        await connected(socket, 'secureConnect', timeout);
      }
    }
    socket.write('A2 LOGOUT\r\n');
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw toImapAppError(err, { what });
  } finally {
    socket?.destroy();
  }
}
