import { z } from 'zod';

/** Hosts a cleartext (`security: none`) connection may go to: the credentials never leave the machine. */
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

/** An environment variable name (POSIX portable set). */
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');
const filePath = z.string().min(1);

/**
 * A login name, optionally built from the mailbox: `{mailbox}` is the full address, `{local}` the part before `@`.
 * One fixed name for every mailbox (no placeholder) files everything into that one account.
 */
const userTemplate = z
  .string()
  .min(1)
  .max(320)
  .refine((s) => !/[\r\n\0]/.test(s), 'must not contain line breaks or NUL');

/** Secrets come from a file or the environment, never from the YAML itself (reliability.md §4.1). */
function exactlyOne(a: unknown, b: unknown): boolean {
  return (a === undefined) !== (b === undefined);
}

const passwordAuth = z
  .strictObject({
    method: z.literal('password'),
    /** Login name; default the mailbox address (each mailbox logs in as itself). */
    user: userTemplate.default('{mailbox}'),
    passwordFile: filePath.optional(),
    passwordEnv: envName.optional(),
    /** `auto` prefers SASL PLAIN, then LOGIN (imapflow's order); pin one for servers that misreport. */
    mechanism: z.enum(['auto', 'plain', 'login']).default('auto'),
  })
  .refine((a) => exactlyOne(a.passwordFile, a.passwordEnv), {
    message: 'set exactly one of passwordFile or passwordEnv',
    path: ['passwordFile'],
  });

const masterAuth = z
  .strictObject({
    method: z.literal('master'),
    /** Dovecot master user (passdb with `master = yes`, destinations.md §5.1) allowed to log in as any user. */
    masterUser: z.string().min(1).max(320),
    passwordFile: filePath.optional(),
    passwordEnv: envName.optional(),
    /**
     * Login name: `{mailbox}`/`{local}` plus `{master}`; the default matches Dovecot's
     * `auth_master_user_separator = *` (https://doc.dovecot.org/2.3/configuration_manual/authentication/master_users/).
     */
    format: userTemplate.refine((s) => s.includes('{master}'), 'must contain {master}').default('{mailbox}*{master}'),
  })
  .refine((a) => exactlyOne(a.passwordFile, a.passwordEnv), {
    message: 'set exactly one of passwordFile or passwordEnv',
    path: ['passwordFile'],
  });

const authzidAuth = z
  .strictObject({
    method: z.literal('authzid'),
    /**
     * An administrator identity that may act for other users through the SASL PLAIN authorization identity
     * (RFC 4616 §2): a Dovecot master user, a Cyrus `admins`/`proxyservers` entry.
     */
    adminUser: z.string().min(1).max(320),
    passwordFile: filePath.optional(),
    passwordEnv: envName.optional(),
    /** Identity to act as; default the mailbox address. */
    authzid: userTemplate.default('{mailbox}'),
  })
  .refine((a) => exactlyOne(a.passwordFile, a.passwordEnv), {
    message: 'set exactly one of passwordFile or passwordEnv',
    path: ['passwordFile'],
  });

const xoauth2Auth = z
  .strictObject({
    method: z.literal('xoauth2'),
    /** User named in the SASL XOAUTH2 payload; for Exchange Online app-only access, the mailbox UPN. */
    user: userTemplate.default('{mailbox}'),
    /**
     * An OAuth2 access token (Exchange Online: scope `https://outlook.office365.com/.default`, destinations.md
     * §2.5). Read again for every new connection, so an external refresher can rotate it.
     */
    tokenFile: filePath.optional(),
    tokenEnv: envName.optional(),
  })
  .refine((a) => exactlyOne(a.tokenFile, a.tokenEnv), {
    message: 'set exactly one of tokenFile or tokenEnv',
    path: ['tokenFile'],
  });

/** IMAP system flags (RFC 9051 §2.3.2) and keywords (atoms, `$Symphony` style); `\Recent` cannot be set by a client. */
const flag = z
  .string()
  .regex(/^(\\(Seen|Answered|Flagged|Draft|Deleted)|\$?[A-Za-z0-9_.-]{1,64})$/i, 'must be a system flag or a keyword');

export const imapDestinationSchema = z
  .strictObject({
    kind: z.literal('imap'),
    host: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or IP address'),
    /** Default 993 for `tls`, 143 otherwise (filled in by the schema). */
    port: z.number().int().min(1).max(65535).optional(),
    /**
     * `tls`: implicit TLS (RFC 8314); `starttls`: RFC 3501 §6.2.1 upgrade, refused when the server does not offer
     * it; `none`: cleartext, loopback hosts only. Certificates are always verified.
     */
    security: z.enum(['tls', 'starttls', 'none']).default('tls'),
    /** PEM bundle of extra trusted CAs (added to Node's defaults), for a private CA. */
    caFile: filePath.optional(),
    /** TLS server name to verify when `host` is an address. */
    servername: z.string().min(1).max(253).optional(),
    auth: z.discriminatedUnion('method', [passwordAuth, masterAuth, authzidAuth, xoauth2Auth]),
    /** Child of INBOX the items are filed into; the hierarchy separator comes from the server (LIST). */
    folder: z
      .string()
      .regex(/^[A-Za-z0-9 _-]{1,64}$/, 'must be a plain folder name')
      .default('Symphony'),
    flags: z.array(flag).max(16).default(['\\Seen']),
    /** Connections open at once to this server, across all mailboxes (Exchange allows about 20 per mailbox). */
    maxConnections: z.number().int().min(1).max(64).default(4),
    /** Connections (so APPENDs in flight) per mailbox; 1 keeps a single writer per mailbox (destinations.md §6.3). */
    perMailboxConcurrency: z.number().int().min(1).max(16).default(1),
    /**
     * How a folder is checked for an item before it is appended. `index`: every Message-ID of the folder is read
     * once per writer life (one FETCH), then kept up to date. `search`: a `SEARCH HEADER Message-ID` per item,
     * confirmed by an exact FETCH (RFC 9051 §6.4.4 makes HEADER a substring match).
     */
    duplicateCheck: z.enum(['index', 'search']).default('index'),
    /**
     * Batch concurrent appends to one folder into one MULTIAPPEND (RFC 3502) when the server offers it; a batch is
     * atomic, and a refused batch is retried item by item.
     */
    multiappend: z.boolean().default(true),
    /** Upper bound of one MULTIAPPEND batch. */
    maxBatchItems: z.number().int().min(1).max(1000).default(50),
    maxBatchBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(8 * 1024 * 1024),
    /** Socket inactivity limit; an APPEND that outlives it has an unknown outcome and is probed before a retry. */
    timeoutMs: z.number().int().min(1000).max(3_600_000).default(120_000),
    /** TCP + TLS handshake and greeting. */
    connectTimeoutMs: z.number().int().min(500).max(600_000).default(30_000),
    /** Reconnect-and-retry rounds for a lost connection within one append (each probes first when needed). */
    retries: z.number().int().min(0).max(10).default(2),
    /** Idle connections are logged out after this long. */
    idleTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
    /** Mailbox whose login and folder `verify()` checks; without it, verify checks the server and TLS only. */
    verifyMailbox: z.email().optional(),
  })
  .refine((c) => c.security !== 'none' || LOOPBACK_HOST.test(c.host), {
    message: 'security "none" sends credentials in the clear and is allowed only to a loopback host',
    path: ['security'],
  })
  // 993 for implicit TLS (RFC 8314 §7.3), 143 for STARTTLS and cleartext.
  .transform((c) => ({ ...c, port: c.port ?? (c.security === 'tls' ? 993 : 143) }));

export type ImapDestinationConfig = z.output<typeof imapDestinationSchema>;
export type ImapAuthConfig = ImapDestinationConfig['auth'];
