import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { decodeWords, parseAddresses, readTopHeaders, type Recipient } from './mime.ts';

/**
 * Well-known folder names Graph accepts in place of an id
 * (https://learn.microsoft.com/graph/api/resources/mailfolder#well-known-folder-names), with their display names.
 */
const WELL_KNOWN: Record<string, string> = {
  msgfolderroot: 'Top of Information Store',
  inbox: 'Inbox',
  drafts: 'Drafts',
  sentitems: 'Sent Items',
  deleteditems: 'Deleted Items',
  junkemail: 'Junk Email',
  outbox: 'Outbox',
  archive: 'Archive',
};

export interface Folder {
  id: string;
  displayName: string;
  parentFolderId: string;
  isHidden: boolean;
  wellKnownName: string | undefined;
}

export interface Attachment {
  id: string;
  name: string;
  contentType: string;
  size: number;
  isInline: boolean;
  contentId: string | undefined;
  content: Buffer;
  lastModifiedDateTime: string;
}

export type CreatedVia = 'mime-draft' | 'importMime' | 'json';

export interface ExtendedProperty {
  id: string;
  value: string;
}

export interface Message {
  /** Immutable id (https://learn.microsoft.com/graph/outlook-immutable-id): stable across moves. */
  immutableId: string;
  /** Default (REST) id: changes whenever the item moves to another folder. */
  restId: string;
  folderId: string;
  createdVia: CreatedVia;
  /** The stored MIME for MIME-created items; JSON-created items have none. */
  mime: Buffer | undefined;
  internetMessageId: string | undefined;
  isDraft: boolean;
  isRead: boolean;
  subject: string;
  body: { contentType: 'text' | 'html'; content: string };
  from: Recipient | undefined;
  toRecipients: Recipient[];
  ccRecipients: Recipient[];
  bccRecipients: Recipient[];
  replyTo: Recipient[];
  internetMessageHeaders: { name: string; value: string }[];
  extendedProperties: ExtendedProperty[];
  attachments: Attachment[];
  createdDateTime: string;
  lastModifiedDateTime: string;
  receivedDateTime: string;
  sentDateTime: string | undefined;
  conversationId: string;
  changeKey: string;
}

export interface UploadSession {
  id: string;
  token: string;
  user: string;
  appId: string;
  messageId: string;
  name: string;
  contentType: string;
  isInline: boolean;
  contentId: string | undefined;
  size: number;
  chunks: Buffer[];
  received: number;
  expiresAt: number;
}

/** Graph ids are opaque base64 strings; the prefixes mimic the shapes real REST and immutable ids have. */
function newId(prefix: string): string {
  return prefix + randomBytes(33).toString('base64url') + '=';
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function messageSize(m: Message): number {
  const attachments = m.attachments.reduce((n, a) => n + a.size, 0);
  return (m.mime?.length ?? Buffer.byteLength(m.body.content)) + attachments;
}

export class Mailbox {
  readonly upn: string;
  readonly objectId = randomUUID();
  readonly folders = new Map<string, Folder>();
  readonly messages = new Map<string, Message>();
  /** REST id → immutable id, for the ids of items as they were before a move (those are then invalid). */
  readonly restIndex = new Map<string, string>();
  readonly wellKnown = new Map<string, string>();

  constructor(upn: string) {
    this.upn = upn;
    const root: Folder = {
      id: newId('AAMkAGRm'),
      displayName: WELL_KNOWN.msgfolderroot as string,
      parentFolderId: '',
      isHidden: false,
      wellKnownName: 'msgfolderroot',
    };
    this.folders.set(root.id, root);
    this.wellKnown.set('msgfolderroot', root.id);
    for (const [wk, displayName] of Object.entries(WELL_KNOWN)) {
      if (wk === 'msgfolderroot') continue;
      const f: Folder = {
        id: newId('AAMkAGRm'),
        displayName,
        parentFolderId: root.id,
        isHidden: false,
        wellKnownName: wk,
      };
      this.folders.set(f.id, f);
      this.wellKnown.set(wk, f.id);
    }
  }

  folder(idOrName: string): Folder | undefined {
    const wk = this.wellKnown.get(idOrName.toLowerCase());
    return this.folders.get(wk ?? idOrName);
  }

  children(folderId: string, includeHidden: boolean): Folder[] {
    return [...this.folders.values()].filter((f) => f.parentFolderId === folderId && (includeHidden || !f.isHidden));
  }

  /** Exchange folder names are unique among siblings, case-insensitively. */
  createFolder(parent: Folder, displayName: string, isHidden: boolean): Folder | 'exists' {
    const clash = [...this.folders.values()].some(
      (f) => f.parentFolderId === parent.id && f.displayName.toLowerCase() === displayName.toLowerCase(),
    );
    if (clash) return 'exists';
    const folder: Folder = {
      id: newId('AAMkAGRm'),
      displayName,
      parentFolderId: parent.id,
      isHidden,
      wellKnownName: undefined,
    };
    this.folders.set(folder.id, folder);
    return folder;
  }

  path(folderId: string): string {
    const parts: string[] = [];
    for (
      let f = this.folders.get(folderId);
      f && f.wellKnownName !== 'msgfolderroot';
      f = this.folders.get(f.parentFolderId)
    ) {
      parts.unshift(f.displayName);
    }
    return parts.join('/');
  }

  /** A message by its immutable or current REST id; a REST id from before a move no longer resolves. */
  message(id: string): Message | undefined {
    const direct = this.messages.get(id);
    if (direct) return direct;
    const immutable = this.restIndex.get(id);
    const m = immutable === undefined ? undefined : this.messages.get(immutable);
    return m && m.restId === id ? m : undefined;
  }

  folderMessages(folderId: string): Message[] {
    return [...this.messages.values()]
      .filter((m) => m.folderId === folderId)
      .sort(
        (a, b) =>
          b.receivedDateTime.localeCompare(a.receivedDateTime) || a.createdDateTime.localeCompare(b.createdDateTime),
      );
  }

  usedBytes(): number {
    let n = 0;
    for (const m of this.messages.values()) n += messageSize(m);
    return n;
  }

  sizeOf(m: Message): number {
    return messageSize(m);
  }

  add(m: Message): void {
    this.messages.set(m.immutableId, m);
    this.restIndex.set(m.restId, m.immutableId);
  }

  move(m: Message, folderId: string): void {
    this.restIndex.delete(m.restId);
    m.folderId = folderId;
    m.restId = newId('AAMkAGI2');
    m.lastModifiedDateTime = isoSeconds(Date.now());
    m.changeKey = randomBytes(12).toString('base64');
    this.restIndex.set(m.restId, m.immutableId);
  }

  remove(m: Message): void {
    this.messages.delete(m.immutableId);
    this.restIndex.delete(m.restId);
  }
}

function base(folderId: string, createdVia: CreatedVia): Message {
  const now = isoSeconds(Date.now());
  return {
    immutableId: newId('AAkALgAA'),
    restId: newId('AAMkAGI2'),
    folderId,
    createdVia,
    mime: undefined,
    internetMessageId: undefined,
    isDraft: true,
    isRead: true,
    subject: '',
    body: { contentType: 'text', content: '' },
    from: undefined,
    toRecipients: [],
    ccRecipients: [],
    bccRecipients: [],
    replyTo: [],
    internetMessageHeaders: [],
    extendedProperties: [],
    attachments: [],
    createdDateTime: now,
    lastModifiedDateTime: now,
    receivedDateTime: now,
    sentDateTime: undefined,
    conversationId: newId('AAQkAGI2'),
    changeKey: randomBytes(12).toString('base64'),
  };
}

/**
 * A message from MIME. MIME creation through `…/messages` always yields a draft
 * (https://learn.microsoft.com/graph/api/user-post-messages); importMime yields a non-draft "as if delivered"
 * (https://learn.microsoft.com/graph/api/mailfolder-importmime?view=graph-rest-beta).
 */
export function messageFromMime(folderId: string, mime: Buffer, via: 'mime-draft' | 'importMime'): Message {
  const m = base(folderId, via);
  const headers = readTopHeaders(mime);
  m.mime = mime;
  m.isDraft = via === 'mime-draft';
  m.isRead = via === 'mime-draft';
  m.internetMessageId = headers.get('message-id')?.trim();
  m.subject = decodeWords(headers.get('subject') ?? '');
  m.from = parseAddresses(headers.get('from'))[0];
  m.toRecipients = parseAddresses(headers.get('to'));
  m.ccRecipients = parseAddresses(headers.get('cc'));
  m.replyTo = parseAddresses(headers.get('reply-to'));
  m.internetMessageHeaders = headers.all.map((h) => ({ name: h.name, value: decodeWords(h.value) }));
  const date = Date.parse(headers.get('date') ?? '');
  if (!Number.isNaN(date)) {
    // Delivery time of an imported item is the message's own Date [unverified]; a draft keeps its creation time.
    m.sentDateTime = isoSeconds(date);
    if (via === 'importMime') m.receivedDateTime = isoSeconds(date);
  }
  m.body = { contentType: /text\/html/i.test(headers.get('content-type') ?? '') ? 'html' : 'text', content: '' };
  return m;
}

export function messageFromJson(folderId: string): Message {
  return base(folderId, 'json');
}

export function newAttachment(
  name: string,
  contentType: string,
  content: Buffer,
  isInline: boolean,
  contentId: string | undefined,
): Attachment {
  return {
    id: newId('AAMkAGI2AtT'),
    name,
    contentType,
    size: content.length,
    isInline,
    contentId,
    content,
    lastModifiedDateTime: isoSeconds(Date.now()),
  };
}

export function newUploadSession(
  fields: Omit<UploadSession, 'id' | 'token' | 'chunks' | 'received' | 'expiresAt'>,
  lifetimeMs: number,
): UploadSession {
  return {
    ...fields,
    id: newId('AAMkAGI2AtS'),
    token: randomBytes(32).toString('base64url'),
    chunks: [],
    received: 0,
    expiresAt: Date.now() + lifetimeMs,
  };
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export { isoSeconds };
