import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenInfo, TokenService } from './auth.ts';
import { parseFilter, parseSelect, project, type Filter } from './odata.ts';
import {
  isoSeconds,
  Mailbox,
  messageFromJson,
  messageFromMime,
  newAttachment,
  newUploadSession,
  type Attachment,
  type ExtendedProperty,
  type Folder,
  type Message,
  type UploadSession,
} from './store.ts';
import type { Recipient } from './mime.ts';

const MiB = 1024 * 1024;

/** Outlook service limits per app and mailbox (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits). */
export interface ServiceLimits {
  /** Requests in flight at once; the 5th gets 429 `ApplicationThrottled` "MailboxConcurrency". Default 4. */
  concurrency: number;
  /** Default 10,000 per 10 minutes. */
  requestsPer10Minutes: number;
  /** Bytes of POST/PUT/PATCH bodies per 5 minutes; default 150 MB. */
  uploadBytesPer5Minutes: number;
}

export interface FaultRates {
  /** Share of Graph requests answered 429 with Retry-After before any work is done. */
  rate429?: number;
  /** Share answered 503 with Retry-After before any work is done. */
  rate503?: number;
  /** Share fully processed whose connection is then dropped without a response (an unknown outcome). */
  dropAfterCommitRate?: number;
  /** Retry-After on injected 429/503; default 1. */
  retryAfterSeconds?: number;
  /** Seed of the fault dice, so a run is repeatable. */
  seed?: number;
}

export type FaultKind =
  /** 429 before processing. */
  | 'throttle'
  /** 503 before processing. */
  | 'unavailable'
  /** Connection closed before processing: nothing happened. */
  | 'drop-before'
  /** Processed, then the connection closes without a response: the change is made, the client cannot know. */
  | 'drop-after'
  /** Processed, then 504: a 5xx whose request nevertheless took effect. */
  | 'error-after';

export interface FaultRule {
  fault: FaultKind;
  method?: string;
  /** Substring of, or pattern over, the request path (e.g. `/importMime`). */
  path?: string | RegExp;
  /** Mailbox the rule applies to (UPN, case-insensitive). */
  user?: string;
  /** Matching requests to let through before the fault applies; default 0. */
  after?: number;
  /** How many matching requests get the fault; default 1. */
  times?: number;
  retryAfterSeconds?: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
  user: string | undefined;
  fault: FaultKind | 'concurrency' | 'rate' | undefined;
}

export interface MailboxStats {
  requests: number;
  maxInFlight: number;
  concurrencyRejections: number;
  throttled: number;
  uploadedBytes: number;
}

export interface ServerConfig {
  tenantId: string;
  auth: TokenService;
  /** Mailboxes that exist; `undefined` provisions any address on first use. */
  users: Set<string> | undefined;
  limits: ServiceLimits;
  maxRequestBytes: number;
  maxMessageSizeBytes: number;
  mailboxSizeLimitBytes: number;
  pageSize: number;
  latencyMs: number;
  faults: FaultRates;
  uploadSessionLifetimeMs: number;
}

interface Reply {
  status: number;
  body?: unknown;
  raw?: { contentType: string; data: Buffer };
  headers?: Record<string, string>;
}

class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Fixed 4 MB ceiling of a Graph request (destinations.md §1.3; microsoft-graph-docs#85). */
export const DEFAULT_MAX_REQUEST_BYTES = 4 * MiB;
/** Attachments from 3 MB go through an upload session (https://learn.microsoft.com/graph/outlook-large-attachments). */
export const UPLOAD_SESSION_MIN_BYTES = 3 * MiB;
export const UPLOAD_SESSION_MAX_BYTES = 150 * MiB;
/** Byte ranges PUT to an upload URL are at most 4 MB (attachment-createuploadsession). */
export const UPLOAD_CHUNK_MAX_BYTES = 4 * MiB;

const MESSAGE_PROPERTIES = new Set([
  'subject',
  'body',
  'from',
  'sender',
  'torecipients',
  'ccrecipients',
  'bccrecipients',
  'replyto',
  'isread',
  'importance',
  'internetmessageid',
  'internetmessageheaders',
  'singlevalueextendedproperties',
  'multivalueextendedproperties',
  'attachments',
  'categories',
  'flag',
  'isdeliveryreceiptrequested',
  'isreadreceiptrequested',
  'inferenceclassification',
  'receiveddatetime',
  'sentdatetime',
  '@odata.type',
]);

/** `Integer 0x0E07` PidTagMessageFlags; bit 0x08 MSGFLAG_UNSENT is what makes Outlook show "[Draft]" (destinations.md §1.2). */
const PID_TAG_MESSAGE_FLAGS = 'integer 0x0e07';
const PID_TAG_MESSAGE_DELIVERY_TIME = 'systemtime 0x0e06';
const PID_TAG_CLIENT_SUBMIT_TIME = 'systemtime 0x0039';
const MSGFLAG_READ = 0x01;
const MSGFLAG_UNSENT = 0x08;

const EXTENDED_ID =
  /^(String|Integer|Long|Double|Boolean|SystemTime|Binary|Short|Float|Currency|Guid|CLSID)\s+(0x[0-9A-Fa-f]{1,4}|\{[0-9A-Fa-f-]{36}\}\s+(Name\s+\S.*|Id\s+0x[0-9A-Fa-f]{1,4}))$/;

function errorBody(code: string, message: string, requestId: string): unknown {
  return {
    error: {
      code,
      message,
      innerError: {
        date: new Date().toISOString().replace(/\.\d+Z$/, ''),
        'request-id': requestId,
        'client-request-id': requestId,
      },
    },
  };
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads the whole body but keeps at most `cap` bytes, so an oversized request can still be answered with a 413. */
function readBody(req: IncomingMessage, cap: number): Promise<{ body: Buffer; size: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= cap) chunks.push(chunk);
    });
    req.on('end', () => resolve({ body: Buffer.concat(chunks), size }));
    req.on('error', reject);
  });
}

function decodeBase64Strict(text: string): Buffer | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined;
  return Buffer.from(compact, 'base64');
}

function wantsImmutableIds(req: IncomingMessage): boolean {
  const prefer = req.headers.prefer;
  const values = Array.isArray(prefer) ? prefer.join(',') : (prefer ?? '');
  return /idtype\s*=\s*"?immutableid"?/i.test(values);
}

function recipient(value: unknown, field: string): Recipient {
  const r = value as { emailAddress?: { address?: unknown; name?: unknown } } | null;
  const address = r?.emailAddress?.address;
  if (typeof address !== 'string')
    throw new GraphError(400, 'ErrorInvalidRecipients', `Invalid recipient in ${field}.`);
  const name = typeof r?.emailAddress?.name === 'string' ? r.emailAddress.name : address;
  return { emailAddress: { name, address } };
}

function recipients(value: unknown, field: string): Recipient[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new GraphError(400, 'RequestBodyRead', `Property '${field}' must be a collection.`);
  return value.map((v) => recipient(v, field));
}

interface WindowCounter {
  events: { at: number; amount: number }[];
  total: number;
}

function windowAdd(w: WindowCounter, now: number, windowMs: number, amount: number): void {
  while (w.events.length > 0 && (w.events[0] as { at: number }).at <= now - windowMs) {
    w.total -= (w.events.shift() as { amount: number }).amount;
  }
  w.events.push({ at: now, amount });
  w.total += amount;
}

function windowRetryAfter(w: WindowCounter, now: number, windowMs: number): number {
  const oldest = w.events[0]?.at ?? now;
  return Math.max(1, Math.ceil((oldest + windowMs - now) / 1000));
}

interface AppMailbox {
  inFlight: number;
  requests: WindowCounter;
  uploads: WindowCounter;
}

/** The HTTP face of the emulated tenant: token endpoint, OpenID discovery, Graph `/v1.0` and `/beta`, upload URLs. */
export class GraphServer {
  readonly #c: ServerConfig;
  readonly mailboxes = new Map<string, Mailbox>();
  readonly #sessions = new Map<string, UploadSession>();
  readonly #appMailboxes = new Map<string, AppMailbox>();
  readonly #rules: (FaultRule & { seen: number; applied: number })[] = [];
  readonly #dice: () => number;
  readonly stats = new Map<string, MailboxStats>();
  readonly log: RequestRecord[] = [];
  origin = '';

  constructor(config: ServerConfig) {
    this.#c = config;
    this.#dice = mulberry32(config.faults.seed ?? 1);
    for (const u of config.users ?? []) this.mailboxes.set(u.toLowerCase(), new Mailbox(u.toLowerCase()));
  }

  injectFault(rule: FaultRule): void {
    this.#rules.push({ ...rule, seen: 0, applied: 0 });
  }

  clearFaults(): void {
    this.#rules.length = 0;
  }

  mailbox(user: string): Mailbox | undefined {
    const key = user.toLowerCase();
    const existing = this.mailboxes.get(key);
    if (existing) return existing;
    if (this.#c.users !== undefined || !/^[^@\s/]+@[^@\s/]+$/.test(key)) return undefined;
    const created = new Mailbox(key);
    this.mailboxes.set(key, created);
    return created;
  }

  #stats(user: string): MailboxStats {
    let s = this.stats.get(user);
    if (!s) {
      s = { requests: 0, maxInFlight: 0, concurrencyRejections: 0, throttled: 0, uploadedBytes: 0 };
      this.stats.set(user, s);
    }
    return s;
  }

  #appMailbox(appId: string, user: string): AppMailbox {
    const key = `${appId.toLowerCase()}\0${user}`;
    let a = this.#appMailboxes.get(key);
    if (!a) {
      a = { inFlight: 0, requests: { events: [], total: 0 }, uploads: { events: [], total: 0 } };
      this.#appMailboxes.set(key, a);
    }
    return a;
  }

  #record(req: IncomingMessage, res: ServerResponse, user: string | undefined, fault: RequestRecord['fault']): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    // Upload URLs carry a bearer-equivalent `authtoken`; only the path is kept.
    res.once('close', () => {
      this.log.push({ method: req.method ?? '', path, status: res.headersSent ? res.statusCode : 0, user, fault });
      if (this.log.length > 200_000) this.log.splice(0, 100_000);
    });
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.#dispatch(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        const id = randomUUID();
        this.#send(res, id, { status: 500, body: errorBody('generalException', String(err), id) });
      } else res.destroy();
    });
  };

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const requestId = randomUUID();
    const path = url.pathname;
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
    if (token) {
      this.#record(req, res, undefined, undefined);
      const { body } = await readBody(req, 1 * MiB);
      return this.#token(req, res, token[1] as string, body);
    }
    const discovery = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path);
    if (discovery && req.method === 'GET') {
      this.#record(req, res, undefined, undefined);
      await readBody(req, 0);
      return this.#send(res, requestId, { status: 200, body: this.#openIdConfiguration(discovery[1] as string) });
    }
    const upload = /^\/upload\/([^/]+)$/.exec(path);
    if (upload) return this.#upload(req, res, url, decodeURIComponent(upload[1] as string), requestId);
    const graph = /^\/(v1\.0|beta)(\/.*)?$/i.exec(path);
    if (!graph) {
      this.#record(req, res, undefined, undefined);
      await readBody(req, 0);
      return this.#send(res, requestId, {
        status: 400,
        body: errorBody('BadRequest', `Invalid version: ${path.split('/')[1] ?? ''}`, requestId),
      });
    }
    return this.#graph(req, res, url, graph[1]?.toLowerCase() as 'v1.0' | 'beta', graph[2] ?? '/', requestId);
  }

  #openIdConfiguration(tenant: string): Record<string, unknown> {
    const base = `${this.origin}/${tenant}`;
    // The fields MSAL requires (`isOpenIdConfigResponse`), in the shape of login.microsoftonline.com's document.
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${this.origin}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${this.origin}/${this.#c.tenantId}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${this.origin}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid'],
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    };
  }

  async #token(req: IncomingMessage, res: ServerResponse, tenant: string, body: Buffer): Promise<void> {
    const requestId = randomUUID();
    if (req.method !== 'POST') {
      return this.#send(res, requestId, {
        status: 405,
        body: this.#c.auth.error(405, 'invalid_request', 900561, 'The endpoint only accepts POST requests.').body,
      });
    }
    const type = String(req.headers['content-type'] ?? '');
    const form = /application\/x-www-form-urlencoded/i.test(type)
      ? new URLSearchParams(body.toString('utf8'))
      : new URLSearchParams();
    let basic: { id: string; secret: string } | undefined;
    const authz = req.headers.authorization;
    if (authz && /^Basic\s+/i.test(authz)) {
      const decoded = Buffer.from(authz.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0)
        basic = {
          id: decodeURIComponent(decoded.slice(0, colon)),
          secret: decodeURIComponent(decoded.slice(colon + 1)),
        };
    }
    const result = await this.#c.auth.issue(tenant, form, basic, `${this.origin}/${tenant}/oauth2/v2.0/token`);
    this.#send(res, requestId, {
      status: result.status,
      body: result.body,
      headers: { 'cache-control': 'no-store, no-cache' },
    });
  }

  #send(res: ServerResponse, requestId: string, reply: Reply): void {
    const headers: Record<string, string> = {
      'request-id': requestId,
      'client-request-id': requestId,
      'x-ms-ags-diagnostic':
        '{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"EMU"}}',
      ...(reply.headers ?? {}),
    };
    if (reply.raw) {
      res.writeHead(reply.status, {
        ...headers,
        'content-type': reply.raw.contentType,
        'content-length': String(reply.raw.data.length),
      });
      res.end(reply.raw.data);
      return;
    }
    if (reply.body === undefined) {
      res.writeHead(reply.status, { ...headers, 'content-length': '0' });
      res.end();
      return;
    }
    const data = Buffer.from(JSON.stringify(reply.body));
    res.writeHead(reply.status, {
      ...headers,
      'content-type':
        'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
      'content-length': String(data.length),
    });
    res.end(data);
  }

  /** Injected faults: explicit rules first, then the random rates. */
  #pickFault(
    method: string,
    path: string,
    user: string | undefined,
  ): { kind: FaultKind; retryAfter: number } | undefined {
    for (const rule of this.#rules) {
      if (rule.method && rule.method.toUpperCase() !== method) continue;
      if (rule.user && rule.user.toLowerCase() !== user) continue;
      if (rule.path !== undefined && !(typeof rule.path === 'string' ? path.includes(rule.path) : rule.path.test(path)))
        continue;
      rule.seen += 1;
      if (rule.seen <= (rule.after ?? 0) || rule.applied >= (rule.times ?? 1)) continue;
      rule.applied += 1;
      return { kind: rule.fault, retryAfter: rule.retryAfterSeconds ?? this.#c.faults.retryAfterSeconds ?? 1 };
    }
    const f = this.#c.faults;
    const retryAfter = f.retryAfterSeconds ?? 1;
    if (f.rate429 && this.#dice() < f.rate429) return { kind: 'throttle', retryAfter };
    if (f.rate503 && this.#dice() < f.rate503) return { kind: 'unavailable', retryAfter };
    if (f.dropAfterCommitRate && this.#dice() < f.dropAfterCommitRate) return { kind: 'drop-after', retryAfter };
    return undefined;
  }

  /**
   * Admission shared by Graph calls and upload PUTs: the per app-and-mailbox concurrency gate, the request-rate and
   * upload-volume windows, and injected faults. Returns a release function, or undefined when the request was
   * answered already.
   */
  async #admit(
    req: IncomingMessage,
    res: ServerResponse,
    appId: string,
    user: string,
    requestId: string,
    path: string,
  ): Promise<{ body: Buffer; after: FaultKind | undefined } | undefined> {
    const stats = this.#stats(user);
    stats.requests += 1;
    const am = this.#appMailbox(appId, user);
    const limits = this.#c.limits;
    if (am.inFlight >= limits.concurrency) {
      stats.concurrencyRejections += 1;
      this.#record(req, res, user, 'concurrency');
      await readBody(req, 0);
      this.#send(res, requestId, {
        status: 429,
        body: errorBody('ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', requestId),
      });
      return undefined;
    }
    am.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, am.inFlight);
    let released = false;
    const release = (): void => {
      if (!released) am.inFlight -= 1;
      released = true;
    };
    // 'close' fires once the response is done or the connection is gone, so a dropped request stops counting too.
    res.once('close', release);

    const now = Date.now();
    const method = req.method ?? 'GET';
    const { body, size } = await readBody(req, this.#c.maxRequestBytes);
    if (am.requests.total >= limits.requestsPer10Minutes) {
      stats.throttled += 1;
      this.#record(req, res, user, 'rate');
      this.#send(res, requestId, {
        status: 429,
        body: errorBody('ApplicationThrottled', 'Application is over its MailboxRequestRate limit.', requestId),
        headers: { 'retry-after': String(windowRetryAfter(am.requests, now, 600_000)) },
      });
      return undefined;
    }
    windowAdd(am.requests, now, 600_000, 1);
    if (size > this.#c.maxRequestBytes) {
      this.#record(req, res, user, undefined);
      this.#send(res, requestId, {
        status: 413,
        body: errorBody('RequestEntityTooLarge', 'The maximum request length supported is 4MB.', requestId),
      });
      return undefined;
    }
    if (['POST', 'PUT', 'PATCH'].includes(method)) {
      windowAdd(am.uploads, now, 300_000, 0);
      if (am.uploads.total + size > limits.uploadBytesPer5Minutes) {
        stats.throttled += 1;
        this.#record(req, res, user, 'rate');
        this.#send(res, requestId, {
          status: 429,
          body: errorBody('ApplicationThrottled', 'Application is over its MailboxUploadVolume limit.', requestId),
          headers: { 'retry-after': String(windowRetryAfter(am.uploads, now, 300_000)) },
        });
        return undefined;
      }
      windowAdd(am.uploads, now, 300_000, size);
      stats.uploadedBytes += size;
    }
    if (this.#c.latencyMs > 0) await sleep(this.#c.latencyMs);
    const fault = this.#pickFault(method, path, user);
    this.#record(req, res, user, fault?.kind);
    if (fault?.kind === 'throttle' || fault?.kind === 'unavailable') {
      stats.throttled += 1;
      const throttle = fault.kind === 'throttle';
      // Error codes from https://learn.microsoft.com/graph/errors (activityLimitReached 429, serviceNotAvailable 503).
      this.#send(res, requestId, {
        status: throttle ? 429 : 503,
        body: throttle
          ? errorBody('activityLimitReached', 'The app or user has been throttled.', requestId)
          : errorBody(
              'serviceNotAvailable',
              'The service is temporarily unavailable. Retry after the delay in Retry-After.',
              requestId,
            ),
        headers: { 'retry-after': String(fault.retryAfter) },
      });
      return undefined;
    }
    if (fault?.kind === 'drop-before') {
      res.socket?.destroy();
      return undefined;
    }
    return { body, after: fault?.kind };
  }

  #finish(res: ServerResponse, requestId: string, reply: Reply, after: FaultKind | undefined): void {
    if (after === 'drop-after') {
      res.socket?.destroy();
      return;
    }
    if (after === 'error-after') {
      this.#send(res, requestId, { status: 504, body: errorBody('UnknownError', '', requestId) });
      return;
    }
    this.#send(res, requestId, reply);
  }

  async #graph(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    version: 'v1.0' | 'beta',
    rest: string,
    requestId: string,
  ): Promise<void> {
    const auth = this.#c.auth.check(req.headers.authorization);
    if ('error' in auth) {
      this.#record(req, res, undefined, undefined);
      await readBody(req, 0);
      return this.#send(res, requestId, {
        status: 401,
        body: errorBody('InvalidAuthenticationToken', auth.error, requestId),
        headers: {
          'www-authenticate':
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
        },
      });
    }
    const segments = rest.split('/').filter(Boolean).map(decodeURIComponent);
    if (segments[0]?.toLowerCase() !== 'users' || segments.length < 3) {
      this.#record(req, res, undefined, undefined);
      await readBody(req, 0);
      return this.#send(res, requestId, {
        status: 400,
        body: errorBody(
          'BadRequest',
          `Resource not found for the segment '${segments[segments.length - 1] ?? ''}'.`,
          requestId,
        ),
      });
    }
    const userId = segments[1] as string;
    const mailbox = this.mailbox(userId);
    if (!mailbox) {
      this.#record(req, res, userId.toLowerCase(), undefined);
      await readBody(req, 0);
      return this.#send(res, requestId, {
        status: 404,
        body: errorBody('ErrorInvalidUser', `The requested user '${userId}' is invalid.`, requestId),
      });
    }
    const admitted = await this.#admit(req, res, auth.appId, mailbox.upn, requestId, url.pathname);
    if (!admitted) return;
    let reply: Reply;
    try {
      reply = this.#route(req, url, version, segments.slice(2), mailbox, auth, admitted.body, requestId);
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      reply = { status: err.status, body: errorBody(err.code, err.message, requestId), headers: err.headers };
    }
    this.#finish(res, requestId, reply, admitted.after);
  }

  #requireRole(auth: TokenInfo, write: boolean): void {
    const roles = new Set(auth.roles);
    const ok = write
      ? roles.has('Mail.ReadWrite')
      : roles.has('Mail.ReadWrite') || roles.has('Mail.Read') || roles.has('Mail.ReadBasic.All');
    if (!ok) throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
  }

  #route(
    req: IncomingMessage,
    url: URL,
    version: 'v1.0' | 'beta',
    seg: string[],
    mailbox: Mailbox,
    auth: TokenInfo,
    body: Buffer,
    requestId: string,
  ): Reply {
    const method = req.method ?? 'GET';
    const immutable = wantsImmutableIds(req);
    const ctx: Ctx = { req, url, version, mailbox, auth, body, immutable, requestId, origin: this.origin };
    const s = seg.map((x) => x.toLowerCase());
    const reply = ((): Reply | undefined => {
      if (s[0] === 'mailfolders') {
        if (s.length === 1) {
          const root = mailbox.folder('msgfolderroot') as Folder;
          if (method === 'GET') return this.#listFolders(ctx, root);
          if (method === 'POST') return this.#createFolder(ctx, root);
        }
        const folder = this.#folderOr404(mailbox, seg[1] as string);
        if (s.length === 2 && method === 'GET') {
          this.#requireRole(auth, false);
          return { status: 200, body: this.#folderJson(ctx, folder) };
        }
        if (s[2] === 'childfolders' && s.length === 3) {
          if (method === 'GET') return this.#listFolders(ctx, folder);
          if (method === 'POST') return this.#createFolder(ctx, folder);
        }
        if (s[2] === 'messages' && s.length === 3) {
          if (method === 'GET') return this.#listMessages(ctx, folder);
          if (method === 'POST') return this.#createMessage(ctx, folder);
        }
        if (s[2] === 'messages' && s.length === 4 && method === 'GET') {
          const m = this.#messageOr404(mailbox, seg[3] as string);
          if (m.folderId !== folder.id) throw notFound();
          return {
            status: 200,
            body: project(this.#messageJson(ctx, m), parseSelect(url.searchParams.get('$select'))),
          };
        }
        if (s[2] === 'importmime' && s.length === 3 && method === 'POST') {
          if (version !== 'beta')
            throw new GraphError(400, 'BadRequest', "Resource not found for the segment 'importMime'.");
          return this.#importMime(ctx, folder);
        }
      }
      if (s[0] === 'messages') {
        if (s.length === 1 && method === 'POST') return this.#createMessage(ctx, mailbox.folder('drafts') as Folder);
        const m = this.#messageOr404(mailbox, seg[1] as string);
        if (s.length === 2 && method === 'GET') {
          this.#requireRole(auth, false);
          return {
            status: 200,
            body: project(this.#messageJson(ctx, m), parseSelect(url.searchParams.get('$select'))),
          };
        }
        if (s.length === 2 && method === 'DELETE') {
          // Exchange soft-deletes into Recoverable Items; the emulator drops the item (it leaves every folder either way).
          this.#requireRole(auth, true);
          mailbox.remove(m);
          return { status: 204 };
        }
        if (s.length === 3 && s[2] === 'permanentdelete' && method === 'POST') {
          this.#requireRole(auth, true);
          mailbox.remove(m);
          return { status: 204 };
        }
        if (s.length === 3 && s[2] === '$value' && method === 'GET') {
          this.#requireRole(auth, false);
          return { status: 200, raw: { contentType: 'text/plain', data: m.mime ?? synthesizeMime(m) } };
        }
        if (s.length === 3 && s[2] === 'move' && method === 'POST') return this.#move(ctx, m);
        if (s[2] === 'attachments') {
          if (s.length === 3 && method === 'POST') return this.#addAttachment(ctx, m);
          if (s.length === 3 && method === 'GET') {
            this.#requireRole(auth, false);
            return {
              status: 200,
              body: {
                value: m.attachments.map((a) =>
                  project(attachmentJson(a, false), parseSelect(url.searchParams.get('$select'))),
                ),
              },
            };
          }
          if (s.length === 4 && s[3] === 'createuploadsession' && method === 'POST')
            return this.#createUploadSession(ctx, m);
        }
      }
      return undefined;
    })();
    if (reply) {
      if (immutable) reply.headers = { ...(reply.headers ?? {}), 'preference-applied': 'IdType="ImmutableId"' };
      return reply;
    }
    if (['GET', 'POST', 'PATCH', 'DELETE', 'PUT'].includes(method) && seg.length > 0) {
      throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${seg[seg.length - 1] ?? ''}'.`);
    }
    throw new GraphError(405, 'Request_BadRequest', 'Specified HTTP method is not allowed for the request target.');
  }

  #folderOr404(mailbox: Mailbox, id: string): Folder {
    const f = mailbox.folder(id);
    if (!f) throw notFound();
    return f;
  }

  #messageOr404(mailbox: Mailbox, id: string): Message {
    const m = mailbox.message(id);
    if (!m) throw notFound();
    return m;
  }

  #folderJson(ctx: Ctx, f: Folder): Record<string, unknown> {
    const messages = ctx.mailbox.folderMessages(f.id);
    return {
      id: f.id,
      displayName: f.displayName,
      parentFolderId: f.parentFolderId,
      childFolderCount: ctx.mailbox.children(f.id, true).length,
      unreadItemCount: messages.filter((m) => !m.isRead).length,
      totalItemCount: messages.length,
      sizeInBytes: messages.reduce((n, m) => n + ctx.mailbox.sizeOf(m), 0),
      isHidden: f.isHidden,
    };
  }

  #page<T>(ctx: Ctx, items: T[], maxTop: number): { page: T[]; nextLink: string | undefined } {
    const q = ctx.url.searchParams;
    const top = intParam(q.get('$top'), this.#c.pageSize, 1, maxTop, '$top');
    const skip = intParam(q.get('$skip'), 0, 0, Number.MAX_SAFE_INTEGER, '$skip');
    const page = items.slice(skip, skip + top);
    if (skip + top >= items.length) return { page, nextLink: undefined };
    const next = new URL(ctx.url.toString());
    next.searchParams.set('$skip', String(skip + top));
    if (!q.has('$top')) next.searchParams.set('$top', String(top));
    return { page, nextLink: next.toString() };
  }

  #listFolders(ctx: Ctx, parent: Folder): Reply {
    this.#requireRole(ctx.auth, false);
    const q = ctx.url.searchParams;
    // Hidden folders are listed only on request (https://learn.microsoft.com/graph/api/mailfolder-list-childfolders).
    let folders = ctx.mailbox.children(parent.id, q.get('includeHiddenFolders')?.toLowerCase() === 'true');
    const filterText = q.get('$filter');
    if (filterText !== null) {
      const filter = parseFilter(filterText);
      if (!filter || filter.kind !== 'eq' || filter.property.toLowerCase() !== 'displayname') throw invalidFilter();
      folders = folders.filter((f) => f.displayName.toLowerCase() === filter.value.toLowerCase());
    }
    const { page, nextLink } = this.#page(ctx, folders, 1000);
    const select = parseSelect(q.get('$select'));
    return {
      status: 200,
      body: {
        '@odata.context': `${this.origin}/${ctx.version}/$metadata#users('${ctx.mailbox.upn}')/mailFolders('${parent.id}')/childFolders`,
        value: page.map((f) => project(this.#folderJson(ctx, f), select)),
        ...(nextLink ? { '@odata.nextLink': nextLink } : {}),
      },
    };
  }

  #createFolder(ctx: Ctx, parent: Folder): Reply {
    this.#requireRole(ctx.auth, true);
    const input = parseJson(ctx.body) as { displayName?: unknown; isHidden?: unknown };
    const known = new Set(['displayname', 'ishidden', '@odata.type']);
    for (const k of Object.keys(input)) {
      if (!known.has(k.toLowerCase()))
        throw new GraphError(
          400,
          'RequestBodyRead',
          `The property '${k}' does not exist on type 'microsoft.graph.mailFolder'.`,
        );
    }
    if (typeof input.displayName !== 'string' || input.displayName.trim() === '') {
      throw new GraphError(400, 'ErrorInvalidRequest', 'The request is invalid: displayName is required.');
    }
    const created = ctx.mailbox.createFolder(parent, input.displayName, input.isHidden === true);
    if (created === 'exists') {
      // destinations.md §1.4: ErrorFolderExists, 409 Conflict here (some tenants answer 400).
      throw new GraphError(409, 'ErrorFolderExists', 'A folder with the specified name already exists.');
    }
    return { status: 201, body: this.#folderJson(ctx, created) };
  }

  #listMessages(ctx: Ctx, folder: Folder): Reply {
    this.#requireRole(ctx.auth, false);
    const q = ctx.url.searchParams;
    let messages = ctx.mailbox.folderMessages(folder.id);
    const filterText = q.get('$filter');
    if (filterText !== null) {
      const filter = parseFilter(filterText);
      if (!filter) throw invalidFilter();
      messages = messages.filter(matcher(filter));
    }
    const { page, nextLink } = this.#page(ctx, messages, 1000);
    const select = parseSelect(q.get('$select'));
    return {
      status: 200,
      body: {
        '@odata.context': `${this.origin}/${ctx.version}/$metadata#users('${ctx.mailbox.upn}')/mailFolders('${folder.id}')/messages`,
        value: page.map((m) => project(this.#messageJson(ctx, m), select)),
        ...(nextLink ? { '@odata.nextLink': nextLink } : {}),
      },
    };
  }

  #messageJson(ctx: Ctx, m: Message): Record<string, unknown> {
    return {
      '@odata.etag': `W/"${m.changeKey}"`,
      id: ctx.immutable ? m.immutableId : m.restId,
      createdDateTime: m.createdDateTime,
      lastModifiedDateTime: m.lastModifiedDateTime,
      changeKey: m.changeKey,
      categories: [],
      receivedDateTime: m.receivedDateTime,
      sentDateTime: m.sentDateTime ?? null,
      hasAttachments:
        m.attachments.some((a) => !a.isInline) ||
        /multipart\/mixed/i.test(m.mime?.subarray(0, 8192).toString('latin1') ?? ''),
      internetMessageId: m.internetMessageId ?? null,
      subject: m.subject,
      bodyPreview: m.body.content
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, 255),
      importance: 'normal',
      parentFolderId: m.folderId,
      conversationId: m.conversationId,
      isDeliveryReceiptRequested: false,
      isReadReceiptRequested: false,
      isRead: m.isRead,
      isDraft: m.isDraft,
      webLink: `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(m.restId)}&exvsurl=1&viewmodel=ReadMessageItem`,
      inferenceClassification: 'focused',
      body: m.body,
      sender: m.from ?? null,
      from: m.from ?? null,
      toRecipients: m.toRecipients,
      ccRecipients: m.ccRecipients,
      bccRecipients: m.bccRecipients,
      replyTo: m.replyTo,
      flag: { flagStatus: 'notFlagged' },
      internetMessageHeaders: m.internetMessageHeaders,
    };
  }

  #checkSizes(ctx: Ctx, messageBytes: number, addedBytes: number): void {
    if (messageBytes > this.#c.maxMessageSizeBytes) {
      // The per-message limit (MaxReceiveSize, 35 MB by default); microsoft-graph-docs-contrib#2561.
      throw new GraphError(400, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.');
    }
    const quota = this.#c.mailboxSizeLimitBytes;
    if (Number.isFinite(quota) && ctx.mailbox.usedBytes() + addedBytes > quota) {
      // microsoft-graph-docs-contrib#6596: 403 with this code and message once the mailbox is full.
      throw new GraphError(403, 'ErrorQuotaExceeded', 'Mailbox has exceeded maximum mailbox size.');
    }
  }

  #mimeBody(ctx: Ctx): Buffer {
    const type = String(ctx.req.headers['content-type'] ?? '');
    if (!/^text\/plain\b/i.test(type)) {
      throw new GraphError(415, 'UnsupportedMediaType', 'Content-Type must be text/plain for MIME content.');
    }
    const mime = decodeBase64Strict(ctx.body.toString('latin1'));
    if (!mime)
      throw new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
    const head = mime.subarray(0, 4096).toString('latin1');
    if (!/^[!-9;-~]+:/m.test(head))
      throw new GraphError(400, 'ErrorMimeContentInvalid', 'The MIME content is not valid.');
    return mime;
  }

  #importMime(ctx: Ctx, folder: Folder): Reply {
    this.#requireRole(ctx.auth, true);
    // importMime needs Mail-Advanced.ReadWrite(.All) (mailfolder-importmime, permissions table).
    if (!ctx.auth.roles.includes('Mail-Advanced.ReadWrite.All')) {
      throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    }
    const mime = this.#mimeBody(ctx);
    this.#checkSizes(ctx, mime.length, mime.length);
    const m = messageFromMime(folder.id, mime, 'importMime');
    ctx.mailbox.add(m);
    return { status: 201, body: this.#messageJson(ctx, m) };
  }

  #createMessage(ctx: Ctx, folder: Folder): Reply {
    this.#requireRole(ctx.auth, true);
    const type = String(ctx.req.headers['content-type'] ?? '');
    if (/^text\/plain\b/i.test(type)) {
      const mime = this.#mimeBody(ctx);
      this.#checkSizes(ctx, mime.length, mime.length);
      const m = messageFromMime(folder.id, mime, 'mime-draft');
      ctx.mailbox.add(m);
      return { status: 201, body: this.#messageJson(ctx, m) };
    }
    if (!/^application\/json\b/i.test(type)) {
      throw new GraphError(
        415,
        'UnsupportedMediaType',
        'A supported MIME type could not be found that matches the content type of the response.',
      );
    }
    const input = parseJson(ctx.body) as Record<string, unknown>;
    for (const k of Object.keys(input)) {
      if (!MESSAGE_PROPERTIES.has(k.toLowerCase())) {
        throw new GraphError(
          400,
          'RequestBodyRead',
          `The property '${k}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
        );
      }
    }
    const m = messageFromJson(folder.id);
    if (input.subject !== undefined) m.subject = String(input.subject);
    const body = input.body as { contentType?: unknown; content?: unknown } | undefined;
    if (body) {
      m.body = {
        contentType: String(body.contentType ?? 'text').toLowerCase() === 'html' ? 'html' : 'text',
        content: String(body.content ?? ''),
      };
    }
    if (input.from !== undefined) m.from = recipient(input.from, 'from');
    m.toRecipients = recipients(input.toRecipients, 'toRecipients');
    m.ccRecipients = recipients(input.ccRecipients, 'ccRecipients');
    m.bccRecipients = recipients(input.bccRecipients, 'bccRecipients');
    m.replyTo = recipients(input.replyTo, 'replyTo');
    if (typeof input.internetMessageId === 'string') m.internetMessageId = input.internetMessageId;
    m.internetMessageHeaders = parseInternetHeaders(input.internetMessageHeaders);
    m.extendedProperties = parseExtendedProperties(input.singleValueExtendedProperties);
    const ext = new Map(m.extendedProperties.map((p) => [p.id.toLowerCase().replace(/\s+/g, ' '), p.value]));
    const flags = ext.get(PID_TAG_MESSAGE_FLAGS);
    // Without PidTagMessageFlags a created item is a draft; set at creation the flag decides (destinations.md §1.2).
    m.isDraft = flags === undefined ? true : (Number(flags) & MSGFLAG_UNSENT) !== 0;
    m.isRead =
      typeof input.isRead === 'boolean'
        ? input.isRead
        : flags === undefined
          ? true
          : (Number(flags) & MSGFLAG_READ) !== 0;
    // receivedDateTime/sentDateTime in the body are ignored; the MAPI times are honoured (davmail PR #517).
    const delivered = ext.get(PID_TAG_MESSAGE_DELIVERY_TIME);
    if (delivered) m.receivedDateTime = isoSeconds(Date.parse(delivered));
    const submitted = ext.get(PID_TAG_CLIENT_SUBMIT_TIME);
    if (submitted) m.sentDateTime = isoSeconds(Date.parse(submitted));
    if (input.attachments !== undefined) {
      if (!Array.isArray(input.attachments))
        throw new GraphError(400, 'RequestBodyRead', "Property 'attachments' must be a collection.");
      m.attachments = input.attachments.map(parseFileAttachment);
    }
    const size = ctx.mailbox.sizeOf(m);
    this.#checkSizes(ctx, size, size);
    ctx.mailbox.add(m);
    return { status: 201, body: this.#messageJson(ctx, m) };
  }

  #move(ctx: Ctx, m: Message): Reply {
    this.#requireRole(ctx.auth, true);
    const input = parseJson(ctx.body) as { destinationId?: unknown };
    if (typeof input.destinationId !== 'string')
      throw new GraphError(400, 'ErrorInvalidRequest', 'destinationId is required.');
    const dest = ctx.mailbox.folder(input.destinationId);
    if (!dest) throw notFound();
    ctx.mailbox.move(m, dest.id);
    return { status: 201, body: this.#messageJson(ctx, m) };
  }

  #addAttachment(ctx: Ctx, m: Message): Reply {
    this.#requireRole(ctx.auth, true);
    const a = parseFileAttachment(parseJson(ctx.body));
    this.#checkSizes(ctx, ctx.mailbox.sizeOf(m) + a.size, a.size);
    m.attachments.push(a);
    m.lastModifiedDateTime = isoSeconds(Date.now());
    return { status: 201, body: attachmentJson(a, true) };
  }

  #createUploadSession(ctx: Ctx, m: Message): Reply {
    this.#requireRole(ctx.auth, true);
    const input = parseJson(ctx.body) as { AttachmentItem?: Record<string, unknown> };
    const item = input.AttachmentItem;
    if (!item || typeof item !== 'object')
      throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem is required.');
    const size = item.size;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
      throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem.size must be a non-negative integer.');
    }
    if (item.attachmentType !== undefined && String(item.attachmentType).toLowerCase() !== 'file') {
      throw new GraphError(400, 'ErrorInvalidRequest', "Only attachmentType 'file' is supported for messages.");
    }
    if (typeof item.name !== 'string' || item.name === '')
      throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem.name is required.');
    if (size < UPLOAD_SESSION_MIN_BYTES) {
      // https://learn.microsoft.com/graph/outlook-large-attachments#errors
      throw new GraphError(
        400,
        'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize',
        'Attachment size must be greater than the minimum size.',
      );
    }
    if (size > UPLOAD_SESSION_MAX_BYTES) {
      throw new GraphError(
        400,
        'ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize',
        'Attachment size must be less than the maximum size of 150 MB.',
      );
    }
    const session = newUploadSession(
      {
        user: ctx.mailbox.upn,
        appId: ctx.auth.appId,
        messageId: m.immutableId,
        name: item.name,
        contentType: typeof item.contentType === 'string' ? item.contentType : 'application/octet-stream',
        isInline: item.isInline === true,
        contentId: typeof item.contentId === 'string' ? item.contentId : undefined,
        size,
      },
      this.#c.uploadSessionLifetimeMs,
    );
    this.#sessions.set(session.id, session);
    return {
      status: 201,
      body: {
        '@odata.context': `${this.origin}/${ctx.version}/$metadata#microsoft.graph.uploadSession`,
        uploadUrl: `${this.origin}/upload/${encodeURIComponent(session.id)}?authtoken=${session.token}`,
        expirationDateTime: new Date(session.expiresAt).toISOString(),
        nextExpectedRanges: ['0-'],
      },
    };
  }

  /**
   * PUTs of byte ranges to the pre-authenticated upload URL (https://learn.microsoft.com/graph/outlook-large-attachments
   * steps 2–3): in order, at most 4 MB each, 200 + nextExpectedRanges until the last, then 201 + Location.
   */
  async #upload(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    sessionId: string,
    requestId: string,
  ): Promise<void> {
    const session = this.#sessions.get(sessionId);
    const token = url.searchParams.get('authtoken');
    if (!session || token !== session.token || session.expiresAt <= Date.now()) {
      this.#record(req, res, session?.user, undefined);
      await readBody(req, 0);
      if (session && session.expiresAt <= Date.now()) this.#sessions.delete(sessionId);
      return this.#send(res, requestId, {
        status: 404,
        body: errorBody('ErrorItemNotFound', 'The upload session was not found or has expired.', requestId),
      });
    }
    const admitted = await this.#admit(req, res, session.appId, session.user, requestId, url.pathname);
    if (!admitted) return;
    let reply: Reply;
    try {
      reply = this.#uploadChunk(req, session, admitted.body);
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      reply = { status: err.status, body: errorBody(err.code, err.message, requestId) };
    }
    this.#finish(res, requestId, reply, admitted.after);
  }

  #uploadChunk(req: IncomingMessage, session: UploadSession, chunk: Buffer): Reply {
    if (req.method === 'DELETE') {
      this.#sessions.delete(session.id);
      return { status: 204 };
    }
    if (req.method !== 'PUT')
      throw new GraphError(405, 'ErrorInvalidRequest', 'Only PUT and DELETE are allowed on an upload URL.');
    if (req.headers.authorization) {
      // The URL is pre-authenticated; the docs say not to send Authorization (outlook-large-attachments, step 2).
      throw new GraphError(
        400,
        'ErrorInvalidRequest',
        'Do not send an Authorization header to a pre-authenticated upload URL.',
      );
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers['content-range'] ?? '').trim());
    if (!range) throw new GraphError(400, 'ErrorInvalidRequest', 'The Content-Range header is missing or malformed.');
    const start = Number(range[1]);
    const end = Number(range[2]);
    const total = Number(range[3]);
    if (total !== session.size)
      throw new GraphError(
        400,
        'ErrorInvalidRequest',
        `The total size ${total} does not match the session size ${session.size}.`,
      );
    if (end < start || end >= total)
      throw new GraphError(416, 'invalidRange', 'The specified byte range is invalid or unavailable.');
    if (start !== session.received) {
      throw new GraphError(
        416,
        'invalidRange',
        `The specified byte range is invalid or unavailable. The next expected byte is ${session.received}.`,
      );
    }
    if (chunk.length !== end - start + 1) {
      throw new GraphError(
        400,
        'ErrorInvalidRequest',
        `The body has ${chunk.length} bytes but Content-Range names ${end - start + 1}.`,
      );
    }
    if (chunk.length > UPLOAD_CHUNK_MAX_BYTES)
      throw new GraphError(413, 'RequestEntityTooLarge', 'Each byte range is limited to 4MB.');
    const mailbox = this.mailboxes.get(session.user) as Mailbox;
    const message = mailbox.message(session.messageId);
    if (!message) {
      this.#sessions.delete(session.id);
      throw notFound();
    }
    const messageBytes = mailbox.sizeOf(message) + session.received + chunk.length;
    if (messageBytes > this.#c.maxMessageSizeBytes) {
      this.#sessions.delete(session.id);
      throw new GraphError(400, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.');
    }
    session.chunks.push(chunk);
    session.received += chunk.length;
    if (session.received < session.size) {
      return {
        status: 200,
        body: {
          '@odata.context': `${this.origin}/api/v2.0/$metadata#Users('${mailbox.objectId}@${this.#c.tenantId}')/Messages('${message.immutableId}')/AttachmentSessions/$entity`,
          expirationDateTime: new Date(session.expiresAt).toISOString(),
          nextExpectedRanges: [String(session.received)],
        },
      };
    }
    if (
      Number.isFinite(this.#c.mailboxSizeLimitBytes) &&
      mailbox.usedBytes() + session.size > this.#c.mailboxSizeLimitBytes
    ) {
      this.#sessions.delete(session.id);
      throw new GraphError(403, 'ErrorQuotaExceeded', 'Mailbox has exceeded maximum mailbox size.');
    }
    const attachment = newAttachment(
      session.name,
      session.contentType,
      Buffer.concat(session.chunks),
      session.isInline,
      session.contentId,
    );
    message.attachments.push(attachment);
    message.lastModifiedDateTime = isoSeconds(Date.now());
    this.#sessions.delete(session.id);
    return {
      status: 201,
      headers: {
        location: `${this.origin}/api/v2.0/Users('${mailbox.objectId}@${this.#c.tenantId}')/Messages('${message.immutableId}')/Attachments('${attachment.id}')`,
      },
    };
  }
}

interface Ctx {
  req: IncomingMessage;
  url: URL;
  version: 'v1.0' | 'beta';
  mailbox: Mailbox;
  auth: TokenInfo;
  body: Buffer;
  immutable: boolean;
  requestId: string;
  origin: string;
}

function notFound(): GraphError {
  return new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
}

function invalidFilter(): GraphError {
  return new GraphError(400, 'ErrorInvalidUrlQueryFilter', 'The query filter contains one or more invalid nodes.');
}

function intParam(raw: string | null, fallback: number, min: number, max: number, name: string): number {
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min)
    throw new GraphError(400, 'BadRequest', `Invalid value '${raw}' for ${name}.`);
  return Math.min(Number(raw), max);
}

function parseJson(body: Buffer): unknown {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    return value;
  } catch {
    throw new GraphError(400, 'UnableToDeserializePostBody', 'were unable to deserialize ');
  }
}

function matcher(filter: Filter): (m: Message) => boolean {
  if (filter.kind === 'extendedProperty') {
    const id = filter.id.toLowerCase().replace(/\s+/g, ' ');
    return (m) =>
      m.extendedProperties.some((p) => p.id.toLowerCase().replace(/\s+/g, ' ') === id && p.value === filter.value);
  }
  const property = filter.property.toLowerCase();
  if (property === 'internetmessageid') {
    const wanted = filter.value.toLowerCase();
    return (m) => (m.internetMessageId ?? '').toLowerCase() === wanted;
  }
  if (property === 'subject') return (m) => m.subject.toLowerCase() === filter.value.toLowerCase();
  throw invalidFilter();
}

function parseInternetHeaders(value: unknown): { name: string; value: string }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new GraphError(400, 'RequestBodyRead', "Property 'internetMessageHeaders' must be a collection.");
  return value.map((h: { name?: unknown; value?: unknown }) => {
    const name = typeof h?.name === 'string' ? h.name : '';
    // Only x- headers may be set (destinations.md §1.2); any other name fails the whole request.
    if (!/^x-/i.test(name)) {
      throw new GraphError(
        400,
        'InvalidInternetMessageHeader',
        `The internet message header name '${name}' should start with 'x-' or 'X-'.`,
      );
    }
    return { name, value: String(h.value ?? '') };
  });
}

function parseExtendedProperties(value: unknown): ExtendedProperty[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new GraphError(400, 'RequestBodyRead', "Property 'singleValueExtendedProperties' must be a collection.");
  return value.map((p: { id?: unknown; value?: unknown }) => {
    const id = typeof p?.id === 'string' ? p.id.trim() : '';
    const type = EXTENDED_ID.exec(id)?.[1];
    if (!type) throw new GraphError(400, 'ErrorInvalidProperty', `The extended property id '${id}' is not valid.`);
    if (typeof p.value !== 'string')
      throw new GraphError(400, 'ErrorInvalidProperty', 'Extended property values are strings.');
    const v = p.value;
    if (type === 'Integer' && !/^-?\d+$/.test(v))
      throw new GraphError(400, 'ErrorInvalidExtendedPropertyValue', `'${v}' is not a valid Integer.`);
    if (type === 'SystemTime' && Number.isNaN(Date.parse(v))) {
      throw new GraphError(400, 'ErrorInvalidExtendedPropertyValue', `'${v}' is not a valid SystemTime.`);
    }
    return { id, value: v };
  });
}

function parseFileAttachment(value: unknown): Attachment {
  const a = value as Record<string, unknown> | null;
  if (!a || typeof a !== 'object') throw new GraphError(400, 'RequestBodyRead', 'An attachment must be an object.');
  if (String(a['@odata.type'] ?? '').toLowerCase() !== '#microsoft.graph.fileattachment') {
    throw new GraphError(
      400,
      'ErrorInvalidRequest',
      "The attachment '@odata.type' must be '#microsoft.graph.fileAttachment'.",
    );
  }
  if (typeof a.name !== 'string' || a.name === '')
    throw new GraphError(400, 'ErrorInvalidRequest', 'The attachment name is required.');
  const content =
    typeof a.contentBytes === 'string'
      ? decodeBase64Strict(a.contentBytes === '' ? 'AAAA' : a.contentBytes)
      : undefined;
  if (!content) throw new GraphError(400, 'ErrorInvalidRequest', 'The attachment contentBytes is not valid base64.');
  return newAttachment(
    a.name,
    typeof a.contentType === 'string' ? a.contentType : 'application/octet-stream',
    a.contentBytes === '' ? Buffer.alloc(0) : content,
    a.isInline === true,
    typeof a.contentId === 'string' ? a.contentId : undefined,
  );
}

function attachmentJson(a: Attachment, withContent: boolean): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.fileAttachment',
    '@odata.mediaContentType': a.contentType,
    id: a.id,
    lastModifiedDateTime: a.lastModifiedDateTime,
    name: a.name,
    contentType: a.contentType,
    size: a.size,
    isInline: a.isInline,
    contentId: a.contentId ?? null,
    ...(withContent ? { contentBytes: a.content.toString('base64') } : {}),
  };
}

/** `$value` of a JSON-created item: Exchange renders MIME from the item's properties; this is a plain rendering. */
function synthesizeMime(m: Message): Buffer {
  const addr = (r: Recipient): string => `"${r.emailAddress.name.replace(/["\\]/g, '')}" <${r.emailAddress.address}>`;
  const boundary = `emu_${m.immutableId.slice(8, 24)}`;
  const lines = [
    ...(m.from ? [`From: ${addr(m.from)}`] : []),
    ...(m.toRecipients.length ? [`To: ${m.toRecipients.map(addr).join(', ')}`] : []),
    ...(m.ccRecipients.length ? [`Cc: ${m.ccRecipients.map(addr).join(', ')}`] : []),
    `Subject: =?utf-8?B?${Buffer.from(m.subject).toString('base64')}?=`,
    `Date: ${new Date(m.sentDateTime ?? m.receivedDateTime).toUTCString()}`,
    ...(m.internetMessageId ? [`Message-ID: ${m.internetMessageId}`] : []),
    ...m.internetMessageHeaders.map((h) => `${h.name}: ${h.value}`),
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    `Content-Type: text/${m.body.contentType === 'html' ? 'html' : 'plain'}; charset=utf-8`,
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from(m.body.content).toString('base64').replace(/.{76}/g, '$&\r\n'),
  ];
  for (const a of m.attachments) {
    lines.push(
      `--${boundary}`,
      `Content-Type: ${a.contentType}; name="${a.name.replace(/["\\\r\n]/g, '')}"`,
      `Content-Disposition: ${a.isInline ? 'inline' : 'attachment'}; filename="${a.name.replace(/["\\\r\n]/g, '')}"`,
      ...(a.contentId ? [`Content-ID: <${a.contentId}>`] : []),
      'Content-Transfer-Encoding: base64',
      '',
      a.content.toString('base64').replace(/.{76}/g, '$&\r\n'),
    );
  }
  lines.push(`--${boundary}--`, '');
  return Buffer.from(lines.join('\r\n'));
}
