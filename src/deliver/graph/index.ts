import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError, type ErrorCode } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { itemBytes, itemSize } from '../content.ts';
import type { DeliveryItem, DeliveryReceipt, MailboxWriter } from '../mailbox-writer.ts';
import { IdentityTokenProvider, LoopbackTokenProvider, type TokenProvider } from './auth.ts';
import { GraphClient, GraphHttpError, UncertainOutcome, type GraphRequest } from './client.ts';
import {
  graphDestinationSchema,
  isLoopbackUrl,
  type GraphDestinationConfig,
  type GraphDestinationInput,
} from './config.ts';
import { HttpTransport } from './http.ts';
import { sleep } from './limiter.ts';
import { extractMessage, stubAttachments, type ExtractedAttachment, type StubbedAttachment } from './mime.ts';
import { stubAttachmentsInFile } from './mime-file.ts';

export { graphDestinationSchema, type GraphDestinationConfig, type GraphDestinationInput } from './config.ts';
export type { TokenProvider } from './auth.ts';

const MiB = 1024 * 1024;
/** Attachments from 3 MB need an upload session; below it a plain POST (https://learn.microsoft.com/graph/outlook-large-attachments). */
const UPLOAD_SESSION_MIN_BYTES = 3 * MiB;
/** Byte ranges PUT to an upload URL: at most 4 MB each (attachment-createuploadsession). */
const CHUNK_BYTES = 4 * MiB;
/** Room left under the 4 MB request cap for a JSON create (body, headers, small attachments as base64). */
const JSON_CREATE_MAX_BYTES = 4 * MiB - 64 * 1024;
/** Attachments sent inside the JSON create, by total raw size; larger ones go separately. */
const INLINE_CREATE_ATTACHMENT_BYTES = 1 * MiB;
/** Named property carrying the item key on JSON-created items (destinations.md §1.5), so staging debris is findable. */
const KEY_PROPERTY = 'String {6c2a1f0e-3b9d-4e57-a8c4-5f1d2e3b4a70} Name SymphonyMessageKey';
const KEY_SYNTAX = /^[A-Za-z0-9_-]{1,200}$/;
const MESSAGE_ID_SYNTAX = /^[^\s<>]+@[^\s<>]+$/;
/** Our Message-IDs are `sym.<key>@<domain>` (core/ids.ts `messageIdFor`). */
const OUR_MESSAGE_ID = /^<?sym\.([A-Za-z0-9_-]+)@[^>\s]+>?$/;

/** A receipt with the reason an item went in only partly (large attachments replaced by stubs). */
export interface GraphDeliveryReceipt extends DeliveryReceipt {
  partial?: string;
}

export interface GraphMailboxWriter extends MailboxWriter {
  readonly kind: 'graph';
  append(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<GraphDeliveryReceipt>;
  inventory(mailbox: string, signal?: AbortSignal): Promise<Map<string, number>>;
}

export interface GraphWriterDeps {
  logger: Logger;
  /** Replaces the credential-based token source (tests). */
  tokenProvider?: TokenProvider;
}

interface FolderState {
  folderId: string;
  /** key → immutable id of everything in the folder, or undefined when the folder is too big to index (probe instead). */
  index: Map<string, string> | undefined;
  staging: Promise<string> | undefined;
  /**
   * False once this mailbox refused importMime: the app lacks Mail-Advanced.ReadWrite.All, its RBAC scope leaves
   * this mailbox out, or the beta was withdrawn. Per mailbox, so one scoped-out mailbox does not downgrade the rest.
   */
  importMime: boolean;
}

interface Runtime {
  client: GraphClient;
  transport: HttpTransport;
  tokens: TokenProvider;
}

type Route = 'importMime' | 'json';

function odataLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function normaliseMailbox(mailbox: string): string {
  const name = mailbox.trim().toLowerCase();
  if (!/^[^@\s/\\?#%]+@[^@\s/\\?#%]+$/.test(name) || name.length > 254) {
    throw new AppError('ERR_SINK_REJECTED', `mailbox ${JSON.stringify(mailbox)} is not a plain email address`);
  }
  return name;
}

function asArray(value: unknown): Record<string, unknown>[] {
  const list = (value as { value?: unknown } | undefined)?.value;
  return Array.isArray(list) ? (list as Record<string, unknown>[]) : [];
}

function idOf(json: unknown, what: string): string {
  const id = (json as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string' || id === '')
    throw new AppError('ERR_SINK_IO', `${what}: Graph answered without an id`, { retryable: true });
  return id;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The Microsoft Graph MailboxWriter (destinations.md §1.8): ensures `Inbox/<folder>` through childFolders, files each
 * item with the beta `importMime` action (full MIME, non-draft) up to `importMimeMaxBytes`, and above it builds a
 * non-draft JSON item (PidTagMessageFlags = 1, delivery and submit times) in a hidden staging folder, attaches files
 * inline or through upload sessions and moves it into place. Idempotent by Message-ID: the folder is indexed (or
 * probed per item when large), and every unknown outcome is probed before anything is sent again.
 */
export function createGraphWriter(input: GraphDestinationInput, deps: GraphWriterDeps): GraphMailboxWriter {
  const parsed = graphDestinationSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new AppError('ERR_CONFIG_INVALID', `graph destination: ${issues}`);
  }
  const config: GraphDestinationConfig = parsed.data;
  const log = deps.logger.child({ sink: 'graph' });
  const folderSegments = config.folder.split('/');
  const scope =
    config.scope ??
    (isLoopbackUrl(config.graphUrl)
      ? 'https://graph.microsoft.com/.default'
      : `${new URL(config.graphUrl).origin}/.default`);

  let runtime: Promise<Runtime> | undefined;
  let closed = false;
  const folders = new Map<string, Promise<FolderState>>();
  const inFlight = new Map<string, Promise<GraphDeliveryReceipt>>();

  async function buildRuntime(): Promise<Runtime> {
    let ca: string | undefined;
    if (config.caFile) {
      try {
        ca = await readFile(config.caFile, 'utf8');
      } catch {
        throw new AppError('ERR_CONFIG_INVALID', `caFile ${config.caFile} is missing or unreadable`);
      }
    }
    const transport = new HttpTransport({ ...(ca ? { ca } : {}), maxSockets: 256 });
    const tokenOptions = {
      tenantId: config.tenantId,
      clientId: config.clientId,
      auth: config.auth,
      authorityHost: config.authorityHost,
      scope,
      ca,
      transport,
      timeoutMs: config.requestTimeoutMs,
    };
    const tokens =
      deps.tokenProvider ??
      (config.authorityHost.startsWith('http:')
        ? new LoopbackTokenProvider(tokenOptions)
        : new IdentityTokenProvider(tokenOptions, isLoopbackUrl(config.authorityHost)));
    const client = new GraphClient({
      graphUrl: config.graphUrl,
      tokens,
      transport,
      logger: log,
      limits: {
        maxInFlight: config.maxInFlightPerMailbox,
        requestsPer10Minutes: config.requestsPer10Minutes,
        uploadBytesPer5Minutes: config.uploadBytesPer5Minutes,
      },
      timeoutMs: config.requestTimeoutMs,
      maxRetries: config.maxRetries,
      maxRetryWaitMs: config.maxRetryWaitMs,
    });
    return { client, transport, tokens };
  }

  function rt(): Promise<Runtime> {
    if (closed) return Promise.reject(new AppError('ERR_SINK_IO', 'graph writer is closed'));
    runtime ??= buildRuntime();
    runtime.catch(() => (runtime = undefined));
    return runtime;
  }

  async function send(req: GraphRequest): Promise<unknown> {
    const { client } = await rt();
    return (await client.send(req)).json;
  }

  const user = (mailbox: string): string => `/users/${encodeURIComponent(mailbox)}`;

  async function findChild(
    mailbox: string,
    parentId: string,
    name: string,
    hidden: boolean,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const json = await send({
      method: 'GET',
      mailbox,
      path: `/v1.0${user(mailbox)}/mailFolders/${encodeURIComponent(parentId)}/childFolders`,
      query: {
        $filter: `displayName eq ${odataLiteral(name)}`,
        $select: 'id,displayName',
        ...(hidden ? { includeHiddenFolders: 'true' } : {}),
      },
      idempotent: true,
      ...(signal ? { signal } : {}),
    });
    // Exchange folder names compare case-insensitively (destinations.md §1.4).
    const hit = asArray(json).find(
      (f) => typeof f.displayName === 'string' && f.displayName.toLowerCase() === name.toLowerCase(),
    );
    return typeof hit?.id === 'string' ? hit.id : undefined;
  }

  /** Find, else create; `ErrorFolderExists` (a racing creator) means list again (destinations.md §1.4). */
  async function ensureChild(
    mailbox: string,
    parentId: string,
    name: string,
    hidden: boolean,
    signal?: AbortSignal,
  ): Promise<{ id: string; created: boolean }> {
    const found = await findChild(mailbox, parentId, name, hidden, signal);
    if (found) return { id: found, created: false };
    try {
      const json = await send({
        method: 'POST',
        mailbox,
        path: `/v1.0${user(mailbox)}/mailFolders/${encodeURIComponent(parentId)}/childFolders`,
        json: hidden ? { displayName: name, isHidden: true } : { displayName: name },
        idempotent: false,
        ...(signal ? { signal } : {}),
      });
      log.info({ mailbox, folder: name, hidden }, 'graph folder created');
      return { id: idOf(json, `creating folder ${name}`), created: true };
    } catch (err) {
      const exists = err instanceof GraphHttpError && err.code === 'ErrorFolderExists';
      if (!exists && !(err instanceof UncertainOutcome)) throw err;
      const again = await findChild(mailbox, parentId, name, hidden, signal);
      if (again) return { id: again, created: false };
      if (err instanceof UncertainOutcome) return ensureChild(mailbox, parentId, name, hidden, signal);
      throw new AppError('ERR_SINK_IO', `folder ${name} reported as existing but not listed in ${mailbox}`, {
        retryable: true,
      });
    }
  }

  async function listFolder(
    mailbox: string,
    folderId: string,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let next: string | URL = `/v1.0${user(mailbox)}/mailFolders/${encodeURIComponent(folderId)}/messages`;
    let query: Record<string, string> | undefined = { $select: 'id,internetMessageId', $top: '1000' };
    for (;;) {
      const json = await send({
        method: 'GET',
        mailbox,
        path: next,
        ...(query ? { query } : {}),
        idempotent: true,
        ...(signal ? { signal } : {}),
      });
      out.push(...asArray(json));
      const link = (json as Record<string, unknown> | undefined)?.['@odata.nextLink'];
      if (typeof link !== 'string') return out;
      next = new URL(link);
      query = undefined;
    }
  }

  async function resolveFolder(
    mailbox: string,
    create: boolean,
    signal?: AbortSignal,
  ): Promise<{ id: string; created: boolean } | undefined> {
    let parent = 'inbox';
    let created = false;
    for (const segment of folderSegments) {
      if (create) {
        const child = await ensureChild(mailbox, parent, segment, false, signal);
        parent = child.id;
        created = child.created;
      } else {
        const found = await findChild(mailbox, parent, segment, false, signal);
        if (!found) return undefined;
        parent = found;
      }
    }
    return { id: parent, created };
  }

  async function prepare(mailbox: string, signal?: AbortSignal): Promise<FolderState> {
    const folder = (await resolveFolder(mailbox, true, signal)) as { id: string; created: boolean };
    let index: Map<string, string> | undefined;
    if (folder.created) index = new Map();
    else {
      const info = await send({
        method: 'GET',
        mailbox,
        path: `/v1.0${user(mailbox)}/mailFolders/${encodeURIComponent(folder.id)}`,
        query: { $select: 'id,totalItemCount' },
        idempotent: true,
        ...(signal ? { signal } : {}),
      });
      const total = Number((info as { totalItemCount?: unknown } | undefined)?.totalItemCount ?? Infinity);
      if (total <= config.indexMaxItems) {
        index = new Map();
        for (const m of await listFolder(mailbox, folder.id, signal)) {
          const key = OUR_MESSAGE_ID.exec(String(m.internetMessageId ?? ''))?.[1];
          if (key !== undefined && typeof m.id === 'string') index.set(key, m.id);
        }
      }
    }
    log.debug({ mailbox, folder: config.folder, indexed: index?.size ?? 'probe' }, 'graph folder ready');
    return { folderId: folder.id, index, staging: undefined, importMime: config.importMime };
  }

  function openFolder(mailbox: string): Promise<FolderState> {
    let state = folders.get(mailbox);
    if (!state) {
      // Shared by every append of the mailbox, so no single caller's abort signal may cancel it.
      state = prepare(mailbox);
      folders.set(mailbox, state);
      state.catch(() => folders.delete(mailbox));
    }
    return state;
  }

  function stagingFolder(mailbox: string, state: FolderState): Promise<string> {
    if (!state.staging) {
      // Hidden folders stay out of Outlook's folder list; only set at creation (mailfolder-post-childfolders).
      state.staging = ensureChild(mailbox, 'msgfolderroot', config.stagingFolder, true).then((f) => f.id);
      state.staging.catch(() => (state.staging = undefined));
    }
    return state.staging;
  }

  /** Items of a folder carrying this Message-ID (destinations.md §1.5: `$filter` inside the folder). */
  async function probe(mailbox: string, folderId: string, messageId: string, signal?: AbortSignal): Promise<string[]> {
    const json = await send({
      method: 'GET',
      mailbox,
      path: `/v1.0${user(mailbox)}/mailFolders/${encodeURIComponent(folderId)}/messages`,
      query: {
        $filter: `internetMessageId eq ${odataLiteral(`<${messageId}>`)}`,
        $select: 'id,internetMessageId',
        $top: '10',
      },
      idempotent: true,
      ...(signal ? { signal } : {}),
    });
    return asArray(json)
      .map((m) => m.id)
      .filter((id): id is string => typeof id === 'string');
  }

  /** Sends a non-idempotent create; after an unknown outcome, looks for the item before trying again. */
  async function createOnce(
    mailbox: string,
    folderId: string,
    messageId: string,
    attemptCreate: () => Promise<string>,
    signal?: AbortSignal,
  ): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await attemptCreate();
      } catch (err) {
        if (!(err instanceof UncertainOutcome)) throw err;
        if (attempt >= config.maxRetries)
          throw new AppError('ERR_SINK_IO', err.message, {
            retryable: true,
            ...(err.retryAfterMs ? { retryAfterMs: err.retryAfterMs } : {}),
          });
        log.warn(
          { mailbox, messageId, why: err.why, attempt: attempt + 1 },
          'graph create outcome unknown; probing before a retry',
        );
        await sleep(Math.min(err.retryAfterMs ?? 250 * 2 ** attempt, config.maxRetryWaitMs), signal);
        const found = await probe(mailbox, folderId, messageId, signal);
        if (found.length > 0) return found[0] as string;
      }
    }
  }

  async function importMime(
    mailbox: string,
    state: FolderState,
    item: DeliveryItem,
    raw: Buffer,
    signal?: AbortSignal,
  ): Promise<string> {
    const text = raw.toString('base64');
    return createOnce(
      mailbox,
      state.folderId,
      item.messageId,
      async () => {
        const json = await send({
          method: 'POST',
          mailbox,
          path: `/beta${user(mailbox)}/mailFolders/${encodeURIComponent(state.folderId)}/importMime`,
          text,
          idempotent: false,
          ...(signal ? { signal } : {}),
        });
        const stored = (json as { internetMessageId?: unknown } | undefined)?.internetMessageId;
        if (typeof stored === 'string' && stored.replace(/^<|>$/g, '') !== item.messageId) {
          // Exchange may rewrite Message-IDs (microsoft-graph-docs#3092); dedupe would then miss this item.
          log.warn({ mailbox, key: item.key, stored }, 'graph stored the item under a different internetMessageId');
        }
        return idOf(json, 'importMime');
      },
      signal,
    );
  }

  function jsonPayload(
    item: DeliveryItem,
    parsed: ReturnType<typeof extractMessage>,
    inline: ExtractedAttachment[],
  ): Record<string, unknown> {
    const when = item.date.toISOString();
    const addr = (a: { name: string; address: string }): Record<string, unknown> => ({
      emailAddress: { name: a.name, address: a.address },
    });
    const props = [
      // PidTagMessageFlags = MSGFLAG_READ, without MSGFLAG_UNSENT: a read, non-draft item (destinations.md §1.2).
      { id: 'Integer 0x0E07', value: '1' },
      // PidTagMessageDeliveryTime → receivedDateTime, PidTagClientSubmitTime → sentDateTime (davmail PR #517).
      { id: 'SystemTime 0x0E06', value: when },
      { id: 'SystemTime 0x0039', value: when },
      { id: KEY_PROPERTY, value: item.key },
      ...(parsed.inReplyTo ? [{ id: 'String 0x1042', value: parsed.inReplyTo }] : []),
      ...(parsed.references ? [{ id: 'String 0x1039', value: parsed.references }] : []),
    ];
    return {
      subject: parsed.subject,
      body: { contentType: parsed.body.contentType, content: parsed.body.content },
      ...(parsed.from ? { from: addr(parsed.from) } : {}),
      toRecipients: parsed.to.map(addr),
      ccRecipients: parsed.cc.map(addr),
      replyTo: parsed.replyTo.map(addr),
      isRead: true,
      // Writable at creation per the message resource ("updatable only if isDraft"); with 0x0E07 set in the same
      // create it is [unverified] on a real tenant, and the probe and inventory depend on it.
      internetMessageId: `<${item.messageId}>`,
      internetMessageHeaders: parsed.xHeaders.map((h) => ({ name: h.name, value: h.value.replace(/[\r\n]+/g, ' ') })),
      singleValueExtendedProperties: props,
      ...(inline.length > 0 ? { attachments: inline.map(fileAttachment) } : {}),
    };
  }

  function fileAttachment(a: ExtractedAttachment): Record<string, unknown> {
    return {
      '@odata.type': '#microsoft.graph.fileAttachment',
      name: a.name,
      contentType: a.contentType,
      contentBytes: a.content.toString('base64'),
      isInline: a.isInline,
      ...(a.contentId ? { contentId: a.contentId } : {}),
    };
  }

  async function uploadLarge(
    mailbox: string,
    messageId: string,
    a: ExtractedAttachment,
    signal?: AbortSignal,
  ): Promise<void> {
    const session = (await send({
      method: 'POST',
      mailbox,
      path: `/v1.0${user(mailbox)}/messages/${encodeURIComponent(messageId)}/attachments/createUploadSession`,
      json: {
        AttachmentItem: {
          attachmentType: 'file',
          name: a.name,
          size: a.content.length,
          contentType: a.contentType,
          isInline: a.isInline,
          ...(a.contentId ? { contentId: a.contentId } : {}),
        },
      },
      // A second session is harmless: only completed uploads attach anything.
      idempotent: true,
      ...(signal ? { signal } : {}),
    })) as { uploadUrl?: unknown };
    if (typeof session?.uploadUrl !== 'string')
      throw new AppError('ERR_SINK_IO', 'createUploadSession answered without an uploadUrl', { retryable: true });
    const uploadUrl = new URL(session.uploadUrl);
    const total = a.content.length;
    for (let start = 0; start < total; start += CHUNK_BYTES) {
      const end = Math.min(start + CHUNK_BYTES, total) - 1;
      await send({
        method: 'PUT',
        mailbox,
        path: uploadUrl,
        bytes: { data: a.content.subarray(start, end + 1), contentRange: `bytes ${start}-${end}/${total}` },
        anonymous: true,
        // A lost answer leaves the session's position unknown; the caller rebuilds the item instead of guessing.
        idempotent: false,
        ...(signal ? { signal } : {}),
      });
    }
  }

  async function removeDebris(
    mailbox: string,
    stagingId: string,
    messageId: string,
    signal?: AbortSignal,
  ): Promise<void> {
    for (const id of await probe(mailbox, stagingId, messageId, signal)) {
      try {
        // permanentDelete: a plain DELETE would leave the half-built item recoverable in the user's mailbox.
        await send({
          method: 'POST',
          mailbox,
          path: `/v1.0${user(mailbox)}/messages/${encodeURIComponent(id)}/permanentDelete`,
          idempotent: true,
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        if (!(err instanceof GraphHttpError && err.status === 404)) throw err;
      }
    }
  }

  /** Route B: JSON create in staging, attachments, move into the archive folder (destinations.md §1.8 step 4). */
  async function buildAndMove(
    mailbox: string,
    state: FolderState,
    item: DeliveryItem,
    raw: Buffer,
    signal?: AbortSignal,
  ): Promise<string> {
    const stagingId = await stagingFolder(mailbox, state);
    for (let rebuild = 0; ; rebuild++) {
      await removeDebris(mailbox, stagingId, item.messageId, signal);
      const parsed = extractMessage(raw);
      const inline: ExtractedAttachment[] = [];
      const separate: ExtractedAttachment[] = [];
      let inlineBytes = 0;
      for (const a of parsed.attachments) {
        if (
          a.content.length < UPLOAD_SESSION_MIN_BYTES &&
          inlineBytes + a.content.length <= INLINE_CREATE_ATTACHMENT_BYTES
        ) {
          inline.push(a);
          inlineBytes += a.content.length;
        } else separate.push(a);
      }
      const payload = jsonPayload(item, parsed, inline);
      if (Buffer.byteLength(JSON.stringify(payload)) > JSON_CREATE_MAX_BYTES) {
        throw new AppError(
          'ERR_SINK_REJECTED',
          `item ${item.key}: its text body alone exceeds Graph's 4 MB request limit`,
        );
      }
      try {
        const draftId = await createOnce(
          mailbox,
          stagingId,
          item.messageId,
          async () =>
            idOf(
              await send({
                method: 'POST',
                mailbox,
                path: `/v1.0${user(mailbox)}/mailFolders/${encodeURIComponent(stagingId)}/messages`,
                json: payload,
                idempotent: false,
                ...(signal ? { signal } : {}),
              }),
              'creating message',
            ),
          signal,
        );
        for (const a of separate) {
          if (a.content.length >= UPLOAD_SESSION_MIN_BYTES) await uploadLarge(mailbox, draftId, a, signal);
          else {
            await send({
              method: 'POST',
              mailbox,
              path: `/v1.0${user(mailbox)}/messages/${encodeURIComponent(draftId)}/attachments`,
              json: fileAttachment(a),
              idempotent: false,
              ...(signal ? { signal } : {}),
            });
          }
        }
        return await createOnce(
          mailbox,
          state.folderId,
          item.messageId,
          async () =>
            idOf(
              await send({
                method: 'POST',
                mailbox,
                path: `/v1.0${user(mailbox)}/messages/${encodeURIComponent(draftId)}/move`,
                json: { destinationId: state.folderId },
                idempotent: false,
                ...(signal ? { signal } : {}),
              }),
              'moving message',
            ),
          signal,
        );
      } catch (err) {
        // An attachment call with an unknown outcome leaves the item's content unknown: start it again from scratch.
        if (!(err instanceof UncertainOutcome) || rebuild >= 2) {
          await removeDebris(mailbox, stagingId, item.messageId, signal).catch(() => undefined);
          throw err;
        }
        log.warn(
          { mailbox, key: item.key, why: err.why },
          'graph attachment upload outcome unknown; rebuilding the item',
        );
      }
    }
  }

  async function keepOriginal(item: DeliveryItem): Promise<string> {
    const { content } = item;
    const hash = Buffer.isBuffer(content) ? sha256(content) : content.ref;
    if (!config.oversizeCopyDir) return `the archiver's staging area, item sha256:${hash}`;
    const dir = path.resolve(config.oversizeCopyDir);
    const file = path.join(dir, `${hash}.eml`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const tmp = path.join(dir, `.${hash}.${randomBytes(6).toString('hex')}.tmp`);
      if (!Buffer.isBuffer(content)) await copyFile(content.path, tmp, fsConstants.COPYFILE_EXCL);
      const handle = await open(tmp, Buffer.isBuffer(content) ? 'wx' : 'r+', 0o600);
      try {
        if (Buffer.isBuffer(content)) await handle.writeFile(content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file).catch(async (err: unknown) => {
        await unlink(tmp).catch(() => undefined);
        throw err;
      });
    } catch (err) {
      throw new AppError('ERR_SINK_IO', `keeping the full copy of oversized item ${item.key} in ${dir} failed`, {
        retryable: true,
        cause: err,
      });
    }
    return file;
  }

  /**
   * The item with attachments replaced by stubs: level 1 stubs the large ones, level 2 all of them. `raw` is undefined
   * when even the stubbed item would exceed `maxItemBytes`; a staged file is then never read into memory.
   */
  async function stubbed(
    item: DeliveryItem,
    level: 1 | 2,
    why: string,
  ): Promise<{ raw: Buffer | undefined; partial: string }> {
    const location = await keepOriginal(item);
    const notice = (a: StubbedAttachment): string =>
      [
        `This attachment was removed from the archived copy because ${why}.`,
        '',
        `File name: ${a.name}`,
        `Size: ${a.size} bytes`,
        `SHA-256: ${a.sha256}`,
        `Full message kept at: ${location}`,
        '',
      ].join('\r\n');
    const minBytes = level === 1 ? config.stubMinBytes : 0;
    const reason = `attachments removed: ${why}`;
    const result = Buffer.isBuffer(item.content)
      ? stubAttachments(item.content, minBytes, notice, reason)
      : await stubAttachmentsInFile(item.content, minBytes, notice, reason, config.maxItemBytes);
    if (result.stubbed.length === 0) {
      throw new AppError(
        'ERR_SINK_REJECTED',
        `item ${item.key} is too large for the mailbox (${why}) and has no attachment to remove`,
      );
    }
    const list = result.stubbed.map((a) => `${a.name} (${a.size} bytes, sha256 ${a.sha256})`).join(', ');
    return { raw: result.raw, partial: `${why}; replaced by stubs: ${list}; full message: ${location}` };
  }

  async function deliver(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<GraphDeliveryReceipt> {
    const state = await openFolder(mailbox);
    const known = state.index?.get(item.key);
    if (known !== undefined) return { ref: known, duplicate: true };
    if (!state.index) {
      const found = await probe(mailbox, state.folderId, item.messageId, signal);
      if (found.length > 0) return { ref: found[0] as string, duplicate: true };
    }
    const size = itemSize(item);
    // Graph takes at most maxItemBytes, so only that much of a staged file is ever read into memory.
    let raw = size <= config.maxItemBytes ? await itemBytes(item) : undefined;
    let partial: string | undefined;
    let level: 0 | 1 | 2 = 0;
    let forceJson = false;
    if (raw === undefined) {
      const why = `the message (${size} bytes) is larger than the mailbox accepts (${config.maxItemBytes} bytes)`;
      for (const next of [1, 2] as const) {
        level = next;
        ({ raw, partial } = await stubbed(item, level, why));
        if (raw !== undefined && raw.length <= config.maxItemBytes) break;
      }
      if (raw === undefined || raw.length > config.maxItemBytes) {
        throw new AppError(
          'ERR_SINK_REJECTED',
          `item ${item.key} exceeds ${config.maxItemBytes} bytes even without attachments`,
        );
      }
    }
    for (;;) {
      const route: Route =
        state.importMime && !forceJson && raw.length <= config.importMimeMaxBytes ? 'importMime' : 'json';
      try {
        const id =
          route === 'importMime'
            ? await importMime(mailbox, state, item, raw, signal)
            : await buildAndMove(mailbox, state, item, raw, signal);
        state.index?.set(item.key, id);
        if (partial) log.warn({ mailbox, key: item.key, partial }, 'graph item imported partially');
        else log.debug({ mailbox, key: item.key, route, bytes: raw.length }, 'graph item imported');
        return partial ? { ref: id, duplicate: false, partial } : { ref: id, duplicate: false };
      } catch (err) {
        if (!(err instanceof GraphHttpError)) throw err;
        if (route === 'importMime' && err.status === 403 && err.code === 'ErrorAccessDenied') {
          // No Mail-Advanced.ReadWrite.All (or beta refused): the v1.0 JSON route still works with Mail.ReadWrite.
          state.importMime = false;
          log.warn({ mailbox, code: err.code }, 'graph refused importMime; using the v1.0 JSON route for this mailbox');
          continue;
        }
        if (route === 'importMime' && err.status === 413) {
          forceJson = true;
          continue;
        }
        const tooBig =
          err.status === 413 ||
          err.code === 'ErrorMessageSizeExceeded' ||
          err.code === 'ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize';
        if (!tooBig || level === 2) throw err;
        const why = `the message (${size} bytes) is larger than the mailbox accepts (${err.code})`;
        level = level === 0 ? 1 : 2;
        const next = await stubbed(item, level, why);
        if (next.raw === undefined) throw err;
        raw = next.raw;
        partial = next.partial;
      }
    }
  }

  function toSinkError(err: unknown, mailbox: string): AppError {
    if (err instanceof AppError) return err;
    if (err instanceof UncertainOutcome) {
      return new AppError('ERR_SINK_IO', err.message, {
        retryable: true,
        ...(err.retryAfterMs ? { retryAfterMs: err.retryAfterMs } : {}),
      });
    }
    if (err instanceof GraphHttpError) {
      let code: ErrorCode = 'ERR_SINK_REJECTED';
      let retryable = false;
      let detail = err.message;
      if (err.status === 401)
        detail = `Graph refused the app's access token for ${mailbox} (${err.code}): check tenant, app and consent`;
      else if (err.status === 403 && err.code === 'ErrorQuotaExceeded') {
        // A full mailbox is not the item's fault; it goes in once the owner or an admin frees space.
        code = 'ERR_SINK_IO';
        retryable = true;
        detail = `mailbox ${mailbox} is full (${err.code})`;
      } else if (err.status === 403) {
        detail = `access to ${mailbox} denied (${err.code}): the app needs Mail.ReadWrite (and RBAC scope) for this mailbox`;
      } else if (err.status === 404 && /InvalidUser|MailboxNotEnabled|ResourceNotFound/i.test(err.code)) {
        detail = `mailbox ${mailbox} does not exist or has no Exchange Online mailbox (${err.code})`;
      }
      return new AppError(code, detail, {
        status: err.status,
        retryable,
        ...(err.retryAfterMs ? { retryAfterMs: err.retryAfterMs } : {}),
      });
    }
    return new AppError('ERR_SINK_IO', err instanceof Error ? err.message : String(err), { retryable: true });
  }

  return {
    kind: 'graph',

    async verify(signal?: AbortSignal): Promise<void> {
      try {
        const { tokens } = await rt();
        await tokens.token(signal);
        if (config.verifyMailbox) {
          const mailbox = normaliseMailbox(config.verifyMailbox);
          await send({
            method: 'GET',
            mailbox,
            path: `/v1.0${user(mailbox)}/mailFolders/inbox`,
            query: { $select: 'id' },
            idempotent: true,
            ...(signal ? { signal } : {}),
          });
        }
      } catch (err) {
        throw toSinkError(err, config.verifyMailbox ?? '(none)');
      }
    },

    async append(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<GraphDeliveryReceipt> {
      if (signal?.aborted) throw new AppError('ERR_ABORTED', item.key);
      const name = normaliseMailbox(mailbox);
      if (!KEY_SYNTAX.test(item.key))
        throw new AppError('ERR_SINK_REJECTED', `item key "${item.key}" is not a plain token`);
      if (!MESSAGE_ID_SYNTAX.test(item.messageId))
        throw new AppError('ERR_SINK_REJECTED', `item ${item.key} has no usable Message-ID`);
      if (!(item.date instanceof Date) || Number.isNaN(item.date.getTime()))
        throw new AppError('ERR_SINK_REJECTED', `item ${item.key} has no valid date`);
      const flightKey = `${name}\0${item.key}`;
      const pending = inFlight.get(flightKey);
      if (pending) {
        const first = await pending;
        return { ref: first.ref, duplicate: true };
      }
      const job = deliver(name, item, signal).catch((err: unknown) => {
        throw toSinkError(err, name);
      });
      inFlight.set(flightKey, job);
      try {
        return await job;
      } finally {
        inFlight.delete(flightKey);
      }
    },

    async inventory(mailbox: string, signal?: AbortSignal): Promise<Map<string, number>> {
      const name = normaliseMailbox(mailbox);
      const counts = new Map<string, number>();
      try {
        // Read from Graph, not the writer's index: reconciliation must see what the mailbox holds.
        const folder = await resolveFolder(name, false, signal);
        if (!folder) return counts;
        for (const m of await listFolder(name, folder.id, signal)) {
          const key = OUR_MESSAGE_ID.exec(String(m.internetMessageId ?? ''))?.[1];
          if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      } catch (err) {
        throw toSinkError(err, name);
      }
      return counts;
    },

    async flush(): Promise<void> {
      // A 201 from Graph means the item is stored; nothing is buffered here.
    },

    async close(): Promise<void> {
      closed = true;
      const r = runtime;
      runtime = undefined;
      if (r) (await r.catch(() => undefined))?.transport.close();
    },
  };
}
