import { z } from 'zod';

const MiB = 1024 * 1024;

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

function urlOf(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

export function isLoopbackUrl(value: string): boolean {
  const url = urlOf(value);
  return url !== undefined && LOOPBACK.test(url.hostname);
}

/**
 * https everywhere; plain http only to a loopback emulator (reliability.md §4.3–4.4): the token and the client
 * secret travel to these hosts.
 */
const serviceUrl = z
  .string()
  .url()
  .refine((u) => {
    const url = urlOf(u);
    return !url || url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
  }, 'must be an https URL (plain http is allowed only to a loopback address)')
  .refine((u) => !urlOf(u)?.username && !urlOf(u)?.password, 'must not carry credentials')
  .refine((u) => !urlOf(u)?.search && !urlOf(u)?.hash, 'must not contain a query or fragment')
  .transform((u) => u.replace(/\/+$/, ''));

/** Entra tenants are named by GUID or by a verified domain. */
const tenantId = z
  .string()
  .regex(
    /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+)$/i,
    'must be a tenant GUID or domain',
  );

/** Exchange folder names: no path separators or control characters; `/` separates levels below Inbox. */
const folderName = z.string().regex(/^[^/\\\p{Cc}]{1,255}$/u, 'must be a plain folder name');
const folderPath = z
  .string()
  .regex(/^[^/\\\p{Cc}]{1,255}(\/[^/\\\p{Cc}]{1,255}){0,9}$/u, 'must be a folder name, or names separated by /');

const secretAuth = z
  .strictObject({
    method: z.literal('secret'),
    /** File holding the client secret (mode 0600); read when the first token is needed. */
    secretFile: z.string().min(1).optional(),
    /** Environment variable holding the client secret. */
    secretEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .optional(),
  })
  .refine((a) => (a.secretFile === undefined) !== (a.secretEnv === undefined), {
    message: 'give exactly one of secretFile and secretEnv',
  });

const certificateAuth = z.strictObject({
  method: z.literal('certificate'),
  /** PEM file with the private key and the certificate (what ClientCertificateCredential reads). */
  certificateFile: z.string().min(1),
  /** Sends the x5c chain, for subject-name/issuer authentication. */
  sendCertificateChain: z.boolean().default(false),
});

export const graphDestinationSchema = z.strictObject({
  kind: z.literal('graph'),
  tenantId,
  /** Application (client) id of the app registration. */
  clientId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be an application id'),
  /** Certificates are what Microsoft recommends for production (reliability.md §4.1). */
  auth: z.discriminatedUnion('method', [secretAuth, certificateAuth]),
  authorityHost: serviceUrl.default('https://login.microsoftonline.com'),
  graphUrl: serviceUrl.default('https://graph.microsoft.com'),
  /** Token scope; default `https://graph.microsoft.com/.default`, or `{graphUrl}/.default` for national clouds. */
  scope: z
    .string()
    .regex(/^\S+\/\.default$/, 'must end with /.default')
    .optional(),
  /** PEM bundle of CAs trusted for the authority and Graph (private CAs, the emulator); verification stays on. */
  caFile: z.string().min(1).optional(),
  /** Archive folder below Inbox; `a/b` nests. */
  folder: folderPath.default('Symphony'),
  /** Hidden folder below the mailbox root where large items are assembled before they are moved in. */
  stagingFolder: folderName.default('Symphony Staging'),
  /**
   * Deliver with the beta `importMime` action (full MIME, non-draft). Needs `Mail-Advanced.ReadWrite.All`; when
   * false or refused, every item goes through the v1.0 JSON route, which keeps only `x-` headers.
   */
  importMime: z.boolean().default(true),
  /** Largest raw item sent to importMime: base64 must stay under the 4 MB request cap. */
  importMimeMaxBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .max(3_100_000)
    .default(3_000_000),
  /** Items above this get their large attachments replaced by stubs (the mailbox's MaxReceiveSize; Graph max 150 MB). */
  maxItemBytes: z
    .number()
    .int()
    .min(1 * MiB)
    .max(150 * MiB)
    .default(150 * MiB),
  /** Attachments at least this large are the ones stubbed first when an item is too big for the mailbox. */
  stubMinBytes: z
    .number()
    .int()
    .min(1024)
    .default(1 * MiB),
  /** Where the full copy of a stubbed item is kept (`<sha256>.eml`); named in the stub. Optional. */
  oversizeCopyDir: z.string().min(1).optional(),
  /** Requests in flight per mailbox; Exchange allows 4 per app and mailbox. */
  maxInFlightPerMailbox: z.number().int().min(1).max(4).default(4),
  /** Request budget per mailbox per 10 minutes (Outlook service limit 10,000). */
  requestsPer10Minutes: z.number().int().min(1).max(10_000).default(10_000),
  /** Upload budget per mailbox per 5 minutes (Outlook service limit 150 MB). */
  uploadBytesPer5Minutes: z
    .number()
    .int()
    .min(4 * MiB)
    .max(150 * MiB)
    .default(150 * MiB),
  requestTimeoutMs: z.number().int().min(1000).max(600_000).default(120_000),
  /** Retries of one request (throttling, 5xx, network) before the append fails as retryable. */
  maxRetries: z.number().int().min(0).max(50).default(8),
  /** Longest server-advised wait honoured inside an append; longer waits fail it with `retryAfterMs`. */
  maxRetryWaitMs: z.number().int().min(0).max(3_600_000).default(60_000),
  /** Folders with more items than this are checked per item by `$filter` instead of an in-memory index. */
  indexMaxItems: z.number().int().min(0).max(1_000_000).default(50_000),
  /** Mailbox whose Inbox `verify()` reads; without it verify only obtains a token. */
  verifyMailbox: z.email().optional(),
});

export type GraphDestinationConfig = z.output<typeof graphDestinationSchema>;
export type GraphDestinationInput = z.input<typeof graphDestinationSchema>;
