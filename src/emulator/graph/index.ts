/**
 * A fake Microsoft 365 tenant for tests and demos: the Entra ID client-credentials token endpoint and the Outlook
 * mail slice of Microsoft Graph (`/v1.0` and `/beta`) on one loopback origin, following the documented behaviour
 * of destinations.md §1 (drafts vs importMime, 4 MB requests, upload sessions, MailboxConcurrency, immutable ids,
 * ErrorFolderExists, `$filter` by internetMessageId), with injectable faults and a read API over the mailboxes.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { TokenService, type EmulatedClient } from './auth.ts';
import type { Recipient } from './mime.ts';
import {
  DEFAULT_MAX_REQUEST_BYTES,
  GraphServer,
  type FaultRates,
  type FaultRule,
  type MailboxStats,
  type RequestRecord,
  type ServiceLimits,
} from './server.ts';
import { sha256, type CreatedVia, type Mailbox, type Message } from './store.ts';
import { generateSelfSignedCertificate } from './tls.ts';

export type { EmulatedClient } from './auth.ts';
export { DEFAULT_ROLES } from './auth.ts';
export type { FaultKind, FaultRates, FaultRule, MailboxStats, RequestRecord, ServiceLimits } from './server.ts';
export { generateSelfSignedCertificate, type SelfSignedCertificate } from './tls.ts';

const MiB = 1024 * 1024;

/** The tenant and app the emulator knows when none are given (CLI defaults; never valid anywhere else). */
export const DEFAULT_TENANT_ID = '9a3c6f52-7d7e-4b1d-9c3e-0e8f2f6f0a11';
export const DEFAULT_CLIENT_ID = '5d2a8a4e-1f0b-4c39-8b2a-3e6c9b7d4f21';
export const DEFAULT_CLIENT_SECRET = 'emulator-secret-not-for-production';

export interface GraphEmulatorOptions {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /**
   * Serve https. `true` generates a self-signed certificate for localhost/127.0.0.1/::1 (its PEM is `caPem`); MSAL
   * accepts only https authorities, so @azure/identity needs this. Default false (plain http).
   */
  tls?: boolean | { certPem: string; keyPem: string };
  tenantId?: string;
  /** App registrations; default one client with `DEFAULT_CLIENT_ID` / `DEFAULT_CLIENT_SECRET`. */
  clients?: EmulatedClient[];
  /** Mailboxes that exist (UPNs); others get 404 `ErrorInvalidUser`. Absent: any address is provisioned on first use. */
  users?: string[];
  tokenLifetimeSeconds?: number;
  /** Request body ceiling; default 4 MB. */
  maxRequestBytes?: number;
  /** Per-message size limit (Exchange MaxReceiveSize): default 35 MB; over it `ErrorMessageSizeExceeded`. */
  maxMessageSizeBytes?: number;
  /** Mailbox storage quota; over it 403 `ErrorQuotaExceeded`. Default unlimited. */
  mailboxSizeLimitBytes?: number;
  limits?: Partial<ServiceLimits>;
  /** Added to every Graph call after the body is read, so concurrent calls overlap as they do against Exchange. */
  latencyMs?: number;
  /** Default page size of collections (Graph's is 10). */
  pageSize?: number;
  faults?: FaultRates;
  uploadSessionLifetimeMs?: number;
}

export interface EmulatedAttachment {
  id: string;
  name: string;
  contentType: string;
  size: number;
  isInline: boolean;
  contentId: string | undefined;
  sha256: string;
  content: Buffer;
}

export interface EmulatedMessage {
  /** Immutable id. */
  id: string;
  restId: string;
  parentFolderId: string;
  /** Folder path below the mailbox root, e.g. `Inbox/Symphony`. */
  folderPath: string;
  createdVia: CreatedVia;
  internetMessageId: string | undefined;
  isDraft: boolean;
  isRead: boolean;
  subject: string;
  receivedDateTime: string;
  sentDateTime: string | undefined;
  from: Recipient | undefined;
  toRecipients: Recipient[];
  ccRecipients: Recipient[];
  body: { contentType: 'text' | 'html'; content: string };
  internetMessageHeaders: { name: string; value: string }[];
  singleValueExtendedProperties: { id: string; value: string }[];
  /** The stored MIME of MIME-created items (draft or importMime), byte for byte. */
  mime: Buffer | undefined;
  attachments: EmulatedAttachment[];
  size: number;
}

export interface EmulatedFolder {
  id: string;
  displayName: string;
  path: string;
  parentFolderId: string;
  isHidden: boolean;
  totalItemCount: number;
}

export interface EmulatedMailbox {
  readonly exists: boolean;
  folders(): EmulatedFolder[];
  /** A folder by path (`Inbox/Symphony`), case-insensitive. */
  folder(path: string): EmulatedFolder | undefined;
  /** Messages of one folder (by path), or of the whole mailbox. */
  messages(folderPath?: string): EmulatedMessage[];
  usedBytes(): number;
}

export interface GraphEmulatorStats {
  tokensIssued: number;
  mailboxes: Record<string, MailboxStats>;
}

export interface GraphEmulator {
  /** Origin of everything: Graph at `${url}/v1.0` and `${url}/beta`, the authority host, upload URLs. */
  readonly url: string;
  /** Same as `url`: what a client uses as `graphUrl`. */
  readonly graphUrl: string;
  /** Same as `url`: what a client uses as `authorityHost`. */
  readonly authorityHost: string;
  /** `${url}/${tenantId}/oauth2/v2.0/token`. */
  readonly tokenUrl: string;
  readonly tenantId: string;
  readonly clients: readonly EmulatedClient[];
  /** PEM of the self-signed certificate when serving https (what the writer's `caFile` should hold). */
  readonly caPem: string | undefined;
  mailbox(user: string): EmulatedMailbox;
  injectFault(rule: FaultRule): void;
  clearFaults(): void;
  /** Invalidates every access token issued so far (the next Graph call gets 401). */
  revokeTokens(): void;
  stats(): GraphEmulatorStats;
  /** Every request seen, oldest first (paths only, never query strings). */
  requests(): readonly RequestRecord[];
  close(): Promise<void>;
}

function messageView(box: Mailbox, m: Message): EmulatedMessage {
  return {
    id: m.immutableId,
    restId: m.restId,
    parentFolderId: m.folderId,
    folderPath: box.path(m.folderId),
    createdVia: m.createdVia,
    internetMessageId: m.internetMessageId,
    isDraft: m.isDraft,
    isRead: m.isRead,
    subject: m.subject,
    receivedDateTime: m.receivedDateTime,
    sentDateTime: m.sentDateTime,
    from: m.from,
    toRecipients: m.toRecipients,
    ccRecipients: m.ccRecipients,
    body: m.body,
    internetMessageHeaders: m.internetMessageHeaders,
    singleValueExtendedProperties: m.extendedProperties,
    mime: m.mime,
    attachments: m.attachments.map((a) => ({
      id: a.id,
      name: a.name,
      contentType: a.contentType,
      size: a.size,
      isInline: a.isInline,
      contentId: a.contentId,
      sha256: sha256(a.content),
      content: a.content,
    })),
    size: box.sizeOf(m),
  };
}

function mailboxView(server: GraphServer, user: string): EmulatedMailbox {
  const box = (): Mailbox | undefined => server.mailboxes.get(user.toLowerCase());
  const folders = (): EmulatedFolder[] => {
    const b = box();
    if (!b) return [];
    return [...b.folders.values()].map((f) => ({
      id: f.id,
      displayName: f.displayName,
      path: b.path(f.id),
      parentFolderId: f.parentFolderId,
      isHidden: f.isHidden,
      totalItemCount: b.folderMessages(f.id).length,
    }));
  };
  return {
    get exists() {
      return box() !== undefined;
    },
    folders,
    folder: (path) => folders().find((f) => f.path.toLowerCase() === path.toLowerCase()),
    messages: (folderPath) => {
      const b = box();
      if (!b) return [];
      const all = [...b.messages.values()].map((m) => messageView(b, m));
      return folderPath === undefined
        ? all
        : all.filter((m) => m.folderPath.toLowerCase() === folderPath.toLowerCase());
    },
    usedBytes: () => box()?.usedBytes() ?? 0,
  };
}

export async function startGraphEmulator(options: GraphEmulatorOptions = {}): Promise<GraphEmulator> {
  const tenantId = options.tenantId ?? DEFAULT_TENANT_ID;
  const clients = options.clients ?? [{ clientId: DEFAULT_CLIENT_ID, clientSecret: DEFAULT_CLIENT_SECRET }];
  const auth = new TokenService(tenantId, clients, options.tokenLifetimeSeconds ?? 3599);
  const graph = new GraphServer({
    tenantId,
    auth,
    users: options.users ? new Set(options.users.map((u) => u.toLowerCase())) : undefined,
    limits: {
      concurrency: options.limits?.concurrency ?? 4,
      requestsPer10Minutes: options.limits?.requestsPer10Minutes ?? 10_000,
      uploadBytesPer5Minutes: options.limits?.uploadBytesPer5Minutes ?? 150 * MiB,
    },
    maxRequestBytes: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    maxMessageSizeBytes: options.maxMessageSizeBytes ?? 35 * MiB,
    mailboxSizeLimitBytes: options.mailboxSizeLimitBytes ?? Number.POSITIVE_INFINITY,
    pageSize: options.pageSize ?? 10,
    latencyMs: options.latencyMs ?? 0,
    faults: options.faults ?? {},
    uploadSessionLifetimeMs: options.uploadSessionLifetimeMs ?? 15 * 60_000,
  });
  let caPem: string | undefined;
  let server: Server;
  if (options.tls) {
    const cert = options.tls === true ? generateSelfSignedCertificate() : options.tls;
    caPem = cert.certPem;
    server = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, graph.handle);
  } else {
    server = createHttpServer(graph.handle);
  }
  // Upload chunks and MIME bodies are up to 4 MB; do not let Node's default timeouts cut slow test clients off.
  server.requestTimeout = 0;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${options.tls ? 'https' : 'http'}://${urlHost}:${address.port}`;
  graph.origin = url;
  return {
    url,
    graphUrl: url,
    authorityHost: url,
    tokenUrl: `${url}/${tenantId}/oauth2/v2.0/token`,
    tenantId,
    clients,
    caPem,
    mailbox: (user) => mailboxView(graph, user),
    injectFault: (rule) => graph.injectFault(rule),
    clearFaults: () => graph.clearFaults(),
    revokeTokens: () => auth.revokeAll(),
    stats: () => ({
      tokensIssued: auth.issued,
      mailboxes: Object.fromEntries([...graph.stats.entries()].map(([k, v]) => [k, { ...v }])),
    }),
    requests: () => graph.log,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
