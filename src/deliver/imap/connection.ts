import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { ImapFlow, type AuthOptions, type ImapFlowOptions } from 'imapflow';
import { AppError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { ImapAuthConfig, ImapDestinationConfig } from './config.ts';
import { toImapAppError } from './errors.ts';

/** Who a connection is logged in as; connections are pooled and reused per identity. */
export interface LoginIdentity {
  /** Pool key: method, login name and authorization identity. */
  key: string;
  /** For messages and logs; never carries a secret. */
  label: string;
  /** Whether a refused login may heal without a config change (a rotated OAuth2 token). */
  loginRetryable: boolean;
  /**
   * Set once a login with this identity succeeded. A later refusal is then taken as transient (an auth process
   * restarting with the server answers AUTHENTICATIONFAILED too), not as a wrong credential.
   */
  proven?: boolean;
  /** Builds the imapflow `auth` option, reading the secret now (files can be rotated between connections). */
  auth(): Promise<AuthOptions>;
}

function render(template: string, mailbox: string, master = ''): string {
  const at = mailbox.lastIndexOf('@');
  const local = at > 0 ? mailbox.slice(0, at) : mailbox;
  return template.replaceAll('{mailbox}', mailbox).replaceAll('{local}', local).replaceAll('{master}', master);
}

/** Reads a secret from its file or variable. The message names the source, never the value. */
export async function readSecret(auth: ImapAuthConfig): Promise<string> {
  const file = auth.method === 'xoauth2' ? auth.tokenFile : auth.passwordFile;
  const env = auth.method === 'xoauth2' ? auth.tokenEnv : auth.passwordEnv;
  const what = auth.method === 'xoauth2' ? 'access token' : 'password';
  let value: string | undefined;
  if (file !== undefined) {
    try {
      value = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'read error';
      throw new AppError('ERR_CONFIG_INVALID', `IMAP ${what} file ${file} could not be read (${code})`);
    }
  } else if (env !== undefined) {
    value = process.env[env];
    if (value === undefined) throw new AppError('ERR_CONFIG_INVALID', `IMAP ${what} variable ${env} is not set`);
  }
  // A trailing newline is an artefact of `echo secret > file`, not part of the secret.
  const secret = value?.replace(/[\r\n]+$/, '');
  if (!secret) throw new AppError('ERR_CONFIG_INVALID', `IMAP ${what} (${file ?? env ?? 'unset'}) is empty`);
  if (/[\0\r\n]/.test(secret)) {
    throw new AppError('ERR_CONFIG_INVALID', `IMAP ${what} (${file ?? env}) contains a line break or NUL`);
  }
  return secret;
}

/** The login used to write into `mailbox`, per the configured method (config.ts). */
export function identityFor(auth: ImapAuthConfig, mailbox: string): LoginIdentity {
  switch (auth.method) {
    case 'password': {
      const user = render(auth.user, mailbox);
      const loginMethod = auth.mechanism === 'plain' ? 'AUTH=PLAIN' : auth.mechanism === 'login' ? 'LOGIN' : undefined;
      return {
        key: `password\0${user}`,
        label: user,
        loginRetryable: false,
        auth: async () => ({ user, pass: await readSecret(auth), loginMethod }),
      };
    }
    case 'master': {
      const user = render(auth.format, mailbox, auth.masterUser);
      return {
        key: `master\0${user}`,
        label: user,
        loginRetryable: false,
        auth: async () => ({ user, pass: await readSecret(auth) }),
      };
    }
    case 'authzid': {
      const authzid = render(auth.authzid, mailbox);
      return {
        key: `authzid\0${auth.adminUser}\0${authzid}`,
        label: `${authzid} (as ${auth.adminUser})`,
        loginRetryable: false,
        // Only SASL PLAIN carries an authorization identity (RFC 4616 §2); LOGIN has no field for it.
        auth: async () => ({ user: auth.adminUser, pass: await readSecret(auth), authzid, loginMethod: 'AUTH=PLAIN' }),
      };
    }
    case 'xoauth2': {
      const user = render(auth.user, mailbox);
      return {
        key: `xoauth2\0${user}`,
        label: user,
        loginRetryable: true,
        auth: async () => ({ user, accessToken: await readSecret(auth) }),
      };
    }
  }
}

/** TLS options with verification on: Node's CA store plus the optional `caFile`, never `rejectUnauthorized: false`. */
export async function tlsOptions(config: ImapDestinationConfig): Promise<tls.ConnectionOptions> {
  const options: tls.ConnectionOptions = { rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  if (config.servername !== undefined) options.servername = config.servername;
  if (config.caFile !== undefined) {
    let pem: string;
    try {
      pem = await readFile(config.caFile, 'utf8');
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'read error';
      throw new AppError('ERR_CONFIG_INVALID', `IMAP caFile ${config.caFile} could not be read (${code})`);
    }
    // `ca` replaces Node's bundled roots; keep them so a public certificate still verifies.
    options.ca = [...tls.rootCertificates, pem];
  }
  return options;
}

/** imapflow logs protocol chatter at info; keep it a level below ours and never at error (we report failures). */
function imapflowLogger(log: Logger): ImapFlowOptions['logger'] {
  return {
    trace: (obj: unknown) => log.trace(obj),
    debug: (obj: unknown) => log.trace(obj),
    info: (obj: unknown) => log.debug(obj),
    warn: (obj: unknown) => log.debug(obj),
    error: (obj: unknown) => log.debug(obj),
  };
}

/** One logged-in IMAP session. */
export interface ImapConnection {
  readonly client: ImapFlow;
  readonly identity: LoginIdentity;
  /** Set when the socket closed or a command failed at the connection level; such a connection is never reused. */
  broken: boolean;
  /** Hierarchy separator, learned once per connection (LIST "" "", RFC 9051 §6.3.9). */
  separator?: string;
  idleTimer?: NodeJS.Timeout;
}

export function isUsable(conn: ImapConnection): boolean {
  return !conn.broken && conn.client.usable;
}

/** Opens and logs in one connection. Failures come back as AppErrors. */
export async function openConnection(
  config: ImapDestinationConfig,
  identity: LoginIdentity,
  log: Logger,
): Promise<ImapConnection> {
  const what = `IMAP login to ${config.host}:${config.port} as ${identity.label}`;
  const [auth, tlsOpts] = await Promise.all([identity.auth(), tlsOptions(config)]);
  const client = new ImapFlow({
    host: config.host,
    port: config.port,
    secure: config.security === 'tls',
    // imapflow: true makes STARTTLS mandatory (connect fails without it), false never upgrades.
    doSTARTTLS: config.security === 'starttls',
    servername: config.servername,
    tls: tlsOpts,
    auth,
    logger: imapflowLogger(log),
    clientInfo: { name: 'symphony-archiver' },
    // We only APPEND and FETCH headers; IDLE between commands would cost a DONE round trip per command.
    disableAutoIdle: true,
    // Keeps the wire plaintext inside TLS (cheap on CPU; Exchange offers no COMPRESS anyway).
    disableCompression: true,
    connectionTimeout: config.connectTimeoutMs,
    greetingTimeout: config.connectTimeoutMs,
    socketTimeout: config.timeoutMs,
  });
  const conn: ImapConnection = { client, identity, broken: false };
  // imapflow emits 'error' for socket failures; without a listener the process would crash.
  client.on('error', (err: unknown) => {
    conn.broken = true;
    log.debug({ mailbox: identity.label, reason: (err as Error)?.message }, 'imap connection error');
  });
  client.on('close', () => {
    conn.broken = true;
  });
  try {
    await client.connect();
  } catch (err) {
    conn.broken = true;
    client.close();
    throw toImapAppError(err, { what, loginRetryable: identity.loginRetryable || identity.proven === true });
  }
  identity.proven = true;
  return conn;
}

export async function closeConnection(conn: ImapConnection): Promise<void> {
  if (conn.idleTimer) clearTimeout(conn.idleTimer);
  if (!conn.broken && conn.client.usable) {
    conn.broken = true;
    try {
      await conn.client.logout();
      return;
    } catch {
      // A LOGOUT that failed still leaves a socket to close.
    }
  }
  conn.broken = true;
  conn.client.close();
}

/** A parsed IMAP response token as imapflow's parser produces it. */
export interface ImapToken {
  type?: string;
  value?: unknown;
  section?: ImapToken[];
}
export interface ImapResponse {
  tag?: string;
  command?: string;
  attributes?: Array<ImapToken | ImapToken[] | null>;
}
/** imapflow's per-command hooks: `onSend` once the command line is written, `onPlusTag` for each `+` continuation. */
export interface CommandHooks {
  onSend?: () => void;
  onPlusTag?: () => void;
}

type RawExec = (
  command: string,
  attributes: unknown,
  options?: {
    untagged?: Record<string, (response: ImapResponse) => void | Promise<void>>;
    comment?: string;
  } & CommandHooks,
) => Promise<{ response: ImapResponse; next: () => void }>;

/**
 * Sends one command through imapflow's command queue (`exec`, internal in imapflow 2.10: not in its .d.ts). Used for
 * what the public API does not offer: `LIST "" ""`/`LIST "" <name>` without the LSUB/STATUS extras, MULTIAPPEND
 * (RFC 3502) and APPEND with streamed literals (append.ts `appendStreamed`, through `hooks`). imapflow is pinned to
 * 2.10.2 in package.json, and the tests run every path against real servers.
 */
export async function rawCommand(
  conn: ImapConnection,
  command: string,
  attributes: unknown,
  untagged?: Record<string, (response: ImapResponse) => void>,
  hooks?: CommandHooks,
): Promise<ImapResponse> {
  const exec = (conn.client as unknown as { exec: RawExec }).exec.bind(conn.client);
  const result = await exec(
    command,
    attributes,
    untagged || hooks ? { ...hooks, ...(untagged && { untagged }) } : undefined,
  );
  result.next();
  return result.response;
}

export function tokenString(token: ImapToken | ImapToken[] | null | undefined): string | undefined {
  if (!token || Array.isArray(token)) return undefined;
  const value = token.value;
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}
