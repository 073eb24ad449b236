import { AppError } from '../../core/errors.ts';
import { isServerRefusal, toImapAppError } from './errors.ts';
import type { KeyIndex } from '../key-index.ts';
import { rawCommand, tokenString, type ImapConnection, type ImapResponse } from './connection.ts';

/** Our Message-IDs are `sym.<key>@<domain>` (core/ids.ts `messageIdFor`); the key is read back from them. */
const KEY_IN_MESSAGE_ID = /^sym\.([A-Za-z0-9_-]{1,200})@[^@\s]+$/;

export function keyOfMessageId(messageId: string): string | undefined {
  return KEY_IN_MESSAGE_ID.exec(messageId)?.[1];
}

/**
 * The first Message-ID in a `BODY[HEADER.FIELDS (MESSAGE-ID)]` answer, without angle brackets. Header lines may be
 * folded (RFC 5322 §2.2.3) and the field name is case-insensitive.
 */
export function messageIdOfHeader(header: Buffer | string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const text = (typeof header === 'string' ? header : header.toString('latin1')).replace(/\r?\n[ \t]+/g, ' ');
  const value = /^message-id[ \t]*:[ \t]*(.*)$/im.exec(text)?.[1];
  if (value === undefined) return undefined;
  const bracketed = /<([^<>\s]+)>/.exec(value)?.[1];
  return bracketed ?? (value.trim() || undefined);
}

/** What a writer knows about one account's archive folder. */
export interface FolderState {
  /** Full path, e.g. `INBOX.Symphony` or `INBOX/Symphony`. */
  path: string;
  uidValidity: bigint | undefined;
  /** Highest UID whose Message-ID is in `index`: everything at or below it has been read. */
  scannedUid: number;
  /** item key → UID (of `uidValidity`), for the items found in or written to the folder. */
  index: KeyIndex;
  /** Whether `index` holds the whole folder (duplicateCheck `index`) or only what this writer wrote (`search`). */
  complete: boolean;
}

export function refOf(uidValidity: bigint | undefined, uid: number): string {
  return `${uidValidity ?? 0n}:${uid}`;
}

/** The receipt ref of an item the index holds, or undefined. */
export function indexedRef(state: FolderState, key: string): string | undefined {
  const uid = state.index.get(key);
  return uid === undefined ? undefined : refOf(state.uidValidity, uid);
}

/**
 * The hierarchy separator of the personal namespace: `LIST "" ""` answers with the delimiter and the root
 * (RFC 9051 §6.3.9). Dovecot's default is ".", Exchange "/", Cyrus "." or "/" (destinations.md §2.2).
 */
export async function discoverSeparator(conn: ImapConnection): Promise<string> {
  if (conn.separator !== undefined) return conn.separator;
  let separator: string | undefined;
  let flat = false;
  try {
    await rawCommand(
      conn,
      'LIST',
      [
        { type: 'STRING', value: '' },
        { type: 'STRING', value: '' },
      ],
      {
        LIST: (res: ImapResponse) => {
          const delimiter = res.attributes?.[1];
          const value = tokenString(delimiter);
          if (value) separator = value;
          else if (delimiter === null) flat = true;
        },
      },
    );
  } catch (err) {
    throw toImapAppError(err, { what: `LIST "" "" for ${conn.identity.label}` });
  }
  if (separator === undefined) {
    throw new AppError(
      'ERR_SINK_IO',
      `IMAP server ${flat ? 'has a flat namespace (no hierarchy separator)' : 'did not report a hierarchy separator'}, so INBOX cannot have a child folder`,
    );
  }
  conn.separator = separator;
  return separator;
}

/** Whether LIST finds the mailbox as a selectable folder. */
export async function folderExists(conn: ImapConnection, path: string): Promise<boolean> {
  let found = false;
  await rawCommand(
    conn,
    'LIST',
    [
      { type: 'STRING', value: '' },
      { type: 'STRING', value: path },
    ],
    {
      LIST: (res: ImapResponse) => {
        const flags = Array.isArray(res.attributes?.[0]) ? res.attributes[0] : [];
        const noselect = flags.some((f) => /^\\(noselect|nonexistent)$/i.test(tokenString(f) ?? ''));
        const name = tokenString(res.attributes?.[2]);
        // INBOX is case-insensitive (RFC 9051 §5.1); Exchange lists it as "Inbox".
        if (name !== undefined && name.toLowerCase() === path.toLowerCase() && !noselect) found = true;
      },
    },
  );
  return found;
}

/**
 * CREATE that treats "it exists already" as success. Dovecot answers `NO [ALREADYEXISTS]` (RFC 5530), Cyrus and
 * Exchange a bare `NO Mailbox already exists`, and two writers may race, so any refusal is followed by a LIST that
 * decides (destinations.md §2.2, §6.5).
 */
export async function createFolder(conn: ImapConnection, path: string): Promise<void> {
  try {
    await rawCommand(conn, 'CREATE', [{ type: 'STRING', value: path }]);
  } catch (err) {
    if (!isServerRefusal(err) || !(await folderExists(conn, path))) throw err;
  }
}

/** Makes sure `INBOX<sep><folder>` exists and is subscribed; returns its path. */
export async function ensureFolder(conn: ImapConnection, folder: string): Promise<string> {
  const separator = await discoverSeparator(conn);
  const path = `INBOX${separator}${folder}`;
  try {
    if (!(await folderExists(conn, path))) await createFolder(conn, path);
    // Clients that show subscribed folders only would hide the archive otherwise; subscribing twice is harmless.
    await rawCommand(conn, 'SUBSCRIBE', [{ type: 'STRING', value: path }]);
  } catch (err) {
    throw toImapAppError(err, { what: `creating ${path} for ${conn.identity.label}` });
  }
  return path;
}

export interface FolderMessage {
  uid: number;
  messageId: string | undefined;
}

/**
 * Reads the Message-ID of every message with a UID of at least `fromUid` (`UID FETCH n:* (UID
 * BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`, the portable probe of destinations.md §2.3). The folder must be selected.
 * `n:*` also returns the last message when n is past the end (RFC 9051 §6.4.8: `*` is the largest UID), so UIDs
 * below `fromUid` are filtered out.
 */
export async function readMessageIds(conn: ImapConnection, fromUid: number): Promise<FolderMessage[]> {
  const out: FolderMessage[] = [];
  const messages = conn.client.fetch(`${fromUid}:*`, { uid: true, headers: ['message-id'] }, { uid: true });
  for await (const msg of messages) {
    if (msg.uid < fromUid) continue;
    out.push({ uid: msg.uid, messageId: messageIdOfHeader(msg.headers) });
  }
  return out;
}

/** Opens the folder read-only (EXAMINE: no \Recent or \Seen side effects, RFC 9051 §6.3.3). */
export async function examine(conn: ImapConnection, path: string): Promise<{ uidValidity: bigint; exists: number }> {
  const box = await conn.client.mailboxOpen(path, { readOnly: true });
  return { uidValidity: box.uidValidity, exists: box.exists };
}

/** Leaves the selected state, so APPENDs that follow are not tied to a selected mailbox's untagged updates. */
export async function unselect(conn: ImapConnection): Promise<void> {
  if (conn.client.mailbox) await conn.client.mailboxClose();
}

/**
 * Brings `state.index` up to date with the folder: everything after `scannedUid`, or the whole folder when
 * UIDVALIDITY changed (RFC 9051 §2.3.1.1: UIDs of the old validity mean nothing). Returns the messages read.
 */
export async function refreshIndex(conn: ImapConnection, state: FolderState): Promise<FolderMessage[]> {
  const box = await examine(conn, state.path);
  try {
    if (state.uidValidity !== box.uidValidity) {
      state.uidValidity = box.uidValidity;
      state.scannedUid = 0;
      state.index.clear();
    }
    if (box.exists === 0) return [];
    const messages = await readMessageIds(conn, state.scannedUid + 1);
    for (const m of messages) {
      const key = m.messageId === undefined ? undefined : keyOfMessageId(m.messageId);
      if (key !== undefined && !state.index.has(key)) state.index.set(key, m.uid);
      if (m.uid > state.scannedUid) state.scannedUid = m.uid;
    }
    return messages;
  } finally {
    await unselect(conn);
  }
}

/**
 * Looks for Message-IDs one by one: `UID SEARCH HEADER Message-ID <id>` narrows the folder down, then an exact
 * comparison of the fetched header decides, since HEADER search is a substring match (RFC 9051 §6.4.4;
 * destinations.md §2.3). Returns Message-ID (lower-cased) → UID for those found; the folder is examined once.
 */
export async function searchMessageIds(
  conn: ImapConnection,
  state: FolderState,
  messageIds: string[],
): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const box = await examine(conn, state.path);
  // UIDs of another validity mean nothing (RFC 9051 §2.3.1.1).
  if (state.uidValidity !== box.uidValidity) state.index.clear();
  state.uidValidity = box.uidValidity;
  try {
    if (box.exists === 0) return found;
    for (const messageId of messageIds) {
      const uids = await conn.client.search({ header: { 'message-id': messageId } }, { uid: true });
      if (!uids || uids.length === 0) continue;
      const wanted = messageId.toLowerCase();
      for await (const msg of conn.client.fetch(
        uids.join(','),
        { uid: true, headers: ['message-id'] },
        { uid: true },
      )) {
        if (messageIdOfHeader(msg.headers)?.toLowerCase() === wanted) found.set(wanted, msg.uid);
      }
    }
    return found;
  } finally {
    await unselect(conn);
  }
}
