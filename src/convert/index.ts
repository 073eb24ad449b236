/**
 * The Symphony → RFC 5322 converter: one V4Message (or a suppression, Elements or room event), its conversation
 * and participants → one email (symphony-api.md §3, §4, §6; destinations.md §3; reliability.md §3). Pure and
 * deterministic: the same input gives the same bytes, so a retried delivery has the same size and SHA-256.
 * Whatever the content, the result is one well-formed message with exactly one From, Date and Message-ID;
 * input that cannot be dated or keyed at all raises `ERR_CONVERT_FAILED` so the pipeline quarantines it.
 */
import { createHash } from 'node:crypto';
import { AppError, isAppError, reasonOf } from '../core/errors.ts';
import { canonicalId, userIdOf } from '../core/ids.ts';
import type { Conversation, Person } from '../core/types.ts';
import type { V4Message } from '../source/symphony/api-types.ts';
import { buildBodies, isoTime, type BodyField, type ItemKind } from './body.ts';
import type { ConvertInput, ConvertedItem, Converter, StreamedItem } from './converter.ts';
import { isRoomEvent } from './events.ts';
import {
  addressOf,
  cleanHeaderText,
  messageIdFor,
  personName,
  subjectFor,
  uniqueSortedPeople,
  type MailAddress,
} from './headers.ts';
import { safeFilename, type MimeAttachment, type MimeFile, type MimeInput } from './mime.ts';
import { composeMimeStream } from './mime-stream.ts';
import { describeRoomEvent, roomEventBodies, roomEventLabel } from './room-event.ts';

export type {
  ConvertInput,
  ConvertOptions,
  ConvertedItem,
  Converter,
  ElementsAction,
  StreamedItem,
  RoomEvent,
  RoomEventType,
  RoomProperties,
  SuppressionNotice,
} from './converter.ts';
export { ROOM_EVENT_TYPES } from './converter.ts';
export { DEFAULT_SUBJECT_TEMPLATE } from './headers.ts';
export { participantsFromMembers } from './members.ts';
export type { EventInput, EventReadResult, EventSkip, EventSkipReason, ItemEventType } from './events.ts';
export { ITEM_EVENT_TYPES, NON_ITEM_EVENT_TYPES, fromV4Event, isRoomEvent, readV4Event } from './events.ts';

/** Name of the attachment that carries the source verbatim, so nothing of it is lost (reliability.md §3 row 3). */
export const SOURCE_ATTACHMENT_NAME = 'symphony-message.json';

/**
 * Recipients beyond this go to the body only (reliability.md §3 row 13: a 2,000-member room makes a header
 * servers reject); routing never reads To, it uses the participant list.
 */
export const MAX_TO = 500;

/** RFC 5322 §3.3 needs a four-digit year: dates outside 1970–9999 go in Date clamped, exactly in the body. */
const MAX_DATE = Date.UTC(9999, 11, 31, 23, 59, 59);

/**
 * What may follow the `@` of a Message-ID or synthetic address. The config already insists on an LDH name
 * (config/schema.ts `DOMAIN_NAME`); this only keeps anything that could break the header out (space, `<`,
 * `>`, `@`, CR, LF), and admits the `symphony.<pod host>` default for a literal pod address.
 */
export const DOMAIN = /^[a-z0-9][a-z0-9.\-[\]:]{0,252}$/;

/**
 * A Message-ID must fit one header line (RFC 5322 §2.1.1: 998 octets). Real ids make 50-character tokens;
 * only a garbage id of hundreds of characters exceeds this, and it cannot be shortened because the pipeline
 * derives the same Message-ID on its own (core/ids.ts `messageIdFor`).
 */
export const MESSAGE_ID_MAX = 900;

/** Symphony ids are base64url; anything else in a header value is cleaned and capped. */
function headerId(id: string): string {
  return cleanHeaderText(canonicalId(id)).slice(0, 200);
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== '';
}

function fail(detail: string): never {
  throw new AppError('ERR_CONVERT_FAILED', detail);
}

/** The author: the resolved `sender`, else what the message itself says (`user.userId`). */
function senderOf(input: ConvertInput, message: V4Message): Person {
  const given = input.sender;
  if (given && typeof given === 'object' && nonEmptyString(given.userId)) return given;
  const user = message.user && typeof message.user === 'object' ? message.user : undefined;
  const userId = userIdOf(user?.userId);
  if (userId === undefined) fail(`message ${headerId(message.messageId)} has no author user id`);
  const p: Person = { userId };
  if (typeof user?.displayName === 'string') p.displayName = user.displayName;
  if (typeof user?.email === 'string') p.email = user.email;
  return p;
}

function conversationOf(input: ConvertInput, message: V4Message): Conversation {
  const c = input.conversation && typeof input.conversation === 'object' ? input.conversation : undefined;
  const stream = message.stream && typeof message.stream === 'object' ? message.stream : undefined;
  const id = nonEmptyString(c?.id) ? c.id : nonEmptyString(stream?.streamId) ? stream.streamId : '';
  const type = nonEmptyString(c?.type) ? c.type : nonEmptyString(stream?.streamType) ? stream.streamType : '';
  const name = nonEmptyString(c?.name) ? c.name : nonEmptyString(stream?.roomName) ? stream.roomName : undefined;
  return name === undefined ? { id, type } : { id, type, name };
}

/** JSON of the source with BigInt-safe ids; a value JSON cannot hold at all makes the input unconvertible. */
export function sourceJson(value: unknown): Buffer {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, null, 2);
  } catch {
    // A replacer costs a call per value, so it only runs when plain JSON failed (BigInt ids).
    json = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
  }
  return Buffer.from((json ?? 'null') + '\n', 'utf8');
}

function convert(input: ConvertInput, entry?: EntryContext): PreparedItem {
  if (!input || typeof input !== 'object') fail('input is not an object');
  const { message, options } = input;
  if (!message || typeof message !== 'object') fail('message is not an object');
  if (!nonEmptyString(message.messageId)) fail('message has no messageId');
  const ts = message.timestamp;
  if (typeof ts !== 'number' || !Number.isFinite(ts) || Math.abs(ts) > 8.64e15) {
    fail(`message ${headerId(message.messageId)} has no usable timestamp`);
  }
  const messageIdDomain =
    typeof options?.messageIdDomain === 'string' ? options.messageIdDomain.trim().toLowerCase() : '';
  const syntheticDomain =
    typeof options?.syntheticDomain === 'string' ? options.syntheticDomain.trim().toLowerCase() : '';
  if (!DOMAIN.test(messageIdDomain) || !DOMAIN.test(syntheticDomain)) {
    fail('messageIdDomain and syntheticDomain must be domain names');
  }

  const warnings: string[] = [];
  const sender = senderOf(input, message);
  const conversation = conversationOf(input, message);
  const streamType = cleanHeaderText(conversation.type).slice(0, 64);

  const suppression =
    input.suppression && typeof input.suppression === 'object' && nonEmptyString(input.suppression.messageId)
      ? input.suppression
      : undefined;
  const action =
    input.elementsAction &&
    typeof input.elementsAction === 'object' &&
    nonEmptyString(input.elementsAction.formMessageId)
      ? input.elementsAction
      : undefined;
  const roomEvent =
    input.roomEvent && typeof input.roomEvent === 'object' && isRoomEvent(input.roomEvent.type)
      ? input.roomEvent
      : undefined;
  const replacing = nonEmptyString(message.replacing) ? message.replacing : undefined;
  const messageKind: ItemKind = suppression ? 'suppression' : action ? 'form-response' : replacing ? 'edit' : 'message';
  const kind = roomEvent ? 'room-event' : messageKind;

  let date = new Date(ts);
  if (ts < 0 || ts > MAX_DATE) {
    warnings.push(`timestamp ${ts} (${isoTime(ts) ?? '?'}) is outside 1970–9999; the Date header is clamped`);
    date = new Date(ts < 0 ? 0 : MAX_DATE);
  }
  const messageId = messageIdFor(message.messageId, messageIdDomain);
  if (messageId.length > MESSAGE_ID_MAX)
    fail(`message id ${headerId(message.messageId)}… is too long for a Message-ID`);

  const addressWarning = (p: Person, a: MailAddress & { invalid?: string }): MailAddress => {
    if (a.invalid !== undefined) {
      warnings.push(`email of user ${cleanHeaderText(p.userId)} is not a plain address; using ${a.address}`);
    }
    return { name: a.name, address: a.address };
  };
  const from = addressWarning(sender, addressOf(sender, syntheticDomain));
  const participants = uniqueSortedPeople(Array.isArray(input.participants) ? input.participants : []);
  const others = participants.filter((p) => p.userId !== sender.userId);
  // A wall post or a conversation whose only member is the author is still filed: To = the author. A transcript
  // entry has no recipients of its own.
  let to = others.length > 0 && !entry ? others.map((p) => addressWarning(p, addressOf(p, syntheticDomain))) : [from];
  const fields: BodyField[] = [];
  if (to.length > MAX_TO) {
    warnings.push(`${to.length} recipients; the first ${MAX_TO} are in To, all are listed in the body`);
    fields.push({ label: 'Participants', value: participants.map(personName).join(', ') });
    to = to.slice(0, MAX_TO);
  }

  const label = {
    message: '',
    edit: ' (edited)',
    suppression: ' (removed)',
    'form-response': ' (form response)',
    'room-event': roomEvent ? roomEventLabel(roomEvent.type) : '',
  }[kind];
  const { subject, conversationName, warning } = subjectFor(conversation, sender, participants, {
    template: options.subjectTemplate,
    label,
  });
  if (warning) warnings.push(warning);

  const headers: [string, string][] = [
    ['X-Symphony-Message-Id', headerId(message.messageId)],
    ['X-Symphony-Stream-Id', headerId(conversation.id)],
    ['X-Symphony-Stream-Type', streamType || 'unknown'],
    ['X-Symphony-Sender-Id', headerId(sender.userId)],
    ['X-Symphony-Item-Type', kind],
    ['X-Symphony-Timestamp', String(ts)],
  ];
  if (!entry) {
    fields.unshift(
      { label: 'From', value: `${from.name} <${from.address}>` },
      { label: kind === 'message' || kind === 'edit' ? 'Sent' : 'Time', value: isoTime(ts) ?? String(ts) },
      { label: 'Conversation', value: `${conversationName} (${streamType || 'unknown type'})` },
    );
  }

  // Threading (RFC 5322 §3.6.4): References oldest first, In-Reply-To the direct parent.
  const references: string[] = [];
  let inReplyTo: string | undefined;
  const thread = (symphonyId: string): string | undefined => {
    const id = messageIdFor(symphonyId, messageIdDomain);
    if (id.length > MESSAGE_ID_MAX) {
      warnings.push(
        `related message id ${headerId(symphonyId)}… is too long to thread on; kept in the X-Symphony headers`,
      );
      return undefined;
    }
    if (id !== messageId && !references.includes(id)) references.push(id);
    return id;
  };
  if (nonEmptyString(message.parentMessageId)) {
    headers.push(['X-Symphony-Parent-Message-Id', headerId(message.parentMessageId)]);
    fields.push({ label: 'Reply to / forward of message', value: headerId(message.parentMessageId) });
    inReplyTo = thread(message.parentMessageId) ?? inReplyTo;
  }
  if (kind === 'edit' && replacing) {
    // Every version is its own item, threaded under the first version (symphony-api.md §4.1 archiver policy).
    const initial = nonEmptyString(message.initialMessageId) ? message.initialMessageId : undefined;
    headers.push(['X-Symphony-Edit-Of', headerId(replacing)]);
    if (initial) headers.push(['X-Symphony-Initial-Message-Id', headerId(initial)]);
    fields.push({ label: 'Edited version of message', value: headerId(replacing) });
    if (initial) {
      const first = isoTime(message.initialTimestamp);
      fields.push({ label: 'First version', value: `${headerId(initial)}${first ? `, sent ${first}` : ''}` });
      thread(initial);
    }
    inReplyTo = thread(replacing) ?? inReplyTo;
  }
  if (nonEmptyString(message.replacedBy)) {
    headers.push(['X-Symphony-Replaced-By', headerId(message.replacedBy)]);
    fields.push({ label: 'Later replaced by edit', value: headerId(message.replacedBy) });
  }
  let notice: string | undefined;
  if (suppression) {
    // The event's initiator is often a bare user id (symphony-api.md §3 sample); the caller resolved the sender.
    const given = suppression.suppressedBy;
    const by = given && nonEmptyString(given.userId) && given.userId !== sender.userId ? given : sender;
    const byAddress = addressOf(by, syntheticDomain);
    const at = isoTime(suppression.suppressedAt) ?? isoTime(ts) ?? String(ts);
    const removed = headerId(suppression.messageId);
    headers.push(['X-Symphony-Suppressed-Message-Id', removed], ['X-Symphony-Suppressed-By', headerId(by.userId)]);
    fields.push(
      { label: 'Removed message', value: removed },
      { label: 'Removed by', value: `${byAddress.name} <${byAddress.address}>` },
      { label: 'Removed at', value: at },
    );
    const removedId = thread(suppression.messageId);
    inReplyTo = removedId ?? inReplyTo;
    notice =
      `Message ${removed} was removed (suppressed) in Symphony by ${byAddress.name} <${byAddress.address}> at ${at}. ` +
      `Its archived copy${removedId && !entry ? `, Message-ID <${removedId}>,` : ''} is kept unchanged.`;
  }
  if (action) {
    headers.push(['X-Symphony-Form-Message-Id', headerId(action.formMessageId)]);
    if (nonEmptyString(action.formId))
      headers.push(['X-Symphony-Form-Id', cleanHeaderText(action.formId).slice(0, 200)]);
    fields.push({ label: 'Form message', value: headerId(action.formMessageId) });
    inReplyTo = thread(action.formMessageId) ?? inReplyTo;
  }
  const roomView = roomEvent && describeRoomEvent(roomEvent, sender, (p) => addressOf(p, syntheticDomain));
  if (roomView) {
    headers.push(...roomView.headers);
    fields.push(...roomView.fields);
  }

  const people = new Map<string, Person>();
  for (const p of [...participants, sender]) if (!people.has(p.userId)) people.set(p.userId, p);

  const provided = Array.isArray(input.attachments) ? input.attachments : [];
  const attachments: MimeAttachment[] = [];
  const providedIds = new Set<string>();
  const takenNames = entry?.takenNames ?? new Set<string>([SOURCE_ATTACHMENT_NAME]);
  const sourceName = entry?.sourceName ?? SOURCE_ATTACHMENT_NAME;
  provided.forEach((a, i) => {
    if (!a || typeof a !== 'object') return;
    const content = Buffer.isBuffer(a.content)
      ? a.content
      : a.content instanceof Uint8Array
        ? Buffer.from(a.content)
        : attachmentFile(a.content);
    if (!content) {
      warnings.push(`attachment ${i + 1} has no content; left out`);
      return;
    }
    const name = safeFilename(a.name, `attachment-${i + 1}`);
    let filename = name;
    // Two files of one name stay two files (and never replace the source JSON).
    for (let n = i + 1; takenNames.has(filename); n++) filename = safeFilename(`${n}-${name}`, name);
    takenNames.add(filename);
    const att: MimeAttachment = { filename, content };
    if (nonEmptyString(a.id)) {
      att.symphonyId = cleanHeaderText(a.id).slice(0, 200);
      providedIds.add(a.id);
    }
    attachments.push(att);
  });
  const listed: { name: string; size: number; missing?: boolean }[] = attachments.map((a) => ({
    name: a.filename,
    size: Buffer.isBuffer(a.content) ? a.content.length : a.content.size,
  }));
  const declared = Array.isArray(message.attachments) ? message.attachments : [];
  for (const [i, info] of declared.entries()) {
    if (!info || typeof info !== 'object' || providedIds.has(info.id)) continue;
    const name = safeFilename(info.name, `attachment-${i + 1}`);
    warnings.push(`attachment "${name}" was not provided; listed in the body and ${sourceName} only`);
    listed.push({ name, size: typeof info.size === 'number' ? info.size : 0, missing: true });
  }

  // A transcript shows an entry's fields its own way (transcript.ts), above the content.
  const shown = entry ? [] : fields;
  const bodies = roomView
    ? roomEventBodies(shown, roomView)
    : buildBodies({
        kind: messageKind,
        message,
        fields: shown,
        people,
        attachments: listed,
        takenNames,
        // RFC 2045 §7: a Content-ID is world-unique; the Message-ID already is, so each image extends it.
        contentIdFor: (filename) => `${filename}.${messageId}`,
        ...(notice ? { notice } : {}),
        ...(action ? { elementsAction: action } : {}),
      });
  warnings.push(...bodies.warnings);
  if (typeof message.diagnostic === 'string' && message.diagnostic.trim() !== '') {
    warnings.push(
      `Symphony reported a diagnostic for this message: ${cleanHeaderText(message.diagnostic).slice(0, 200)}`,
    );
  }
  for (const img of bodies.images) {
    attachments.push({
      filename: img.filename,
      content: img.content,
      contentType: img.contentType,
      ...(img.contentId === undefined ? {} : { contentId: img.contentId }),
    });
  }

  const { formMessage: _form, ...actionRecord } = action ?? {};
  const source = roomEvent
    ? { event: roomEvent.type, roomEvent, message }
    : suppression
      ? { event: 'MESSAGESUPPRESSED', suppression, message }
      : action
        ? { event: 'SYMPHONYELEMENTSACTION', elementsAction: actionRecord, message }
        : message;
  if (!entry) {
    attachments.push({
      filename: SOURCE_ATTACHMENT_NAME,
      content: sourceJson(source),
      contentType: 'application/json',
      params: { charset: 'utf-8' },
    });
  }

  const mime: MimeInput = {
    messageId,
    date,
    from,
    to,
    subject,
    headers,
    ...(inReplyTo && references.includes(inReplyTo) ? { inReplyTo, references } : {}),
    text: bodies.text,
    html: bodies.html,
    attachments,
  };
  return { mime, messageId, date, warnings, kind, fields, source };
}

/** An item ready to be serialised. */
export interface PreparedItem {
  mime: MimeInput;
  messageId: string;
  date: Date;
  warnings: string[];
  kind: ItemKind | 'room-event';
  /** The body's header block; for a transcript entry only the lines beyond From, Sent/Time and Conversation. */
  fields: BodyField[];
  /** What the source attachment carries, verbatim. */
  source: unknown;
}

/**
 * How an item is prepared as one entry of a daily transcript (transcript.ts) instead of an email of its own:
 * no recipients, no From / Sent / Conversation lines and no header block in the bodies (the transcript shows
 * them once, its own way), no source attachment (the transcript carries every source in one), and attachment
 * names unique across the whole transcript.
 */
export interface EntryContext {
  /** Attachment names already used in the transcript; the entry's are added to it. */
  takenNames: Set<string>;
  /** The transcript's source attachment, named where the entry refers to it. */
  sourceName: string;
}

/** One transcript entry, as {@link EntryContext} describes; input that cannot be keyed or dated throws as here. */
export function prepareEntry(input: ConvertInput, context: EntryContext): PreparedItem {
  return convert(input, context);
}

/** An attachment given as a file (core/types.ts `AttachmentContent`), checked as far as its shape goes. */
function attachmentFile(content: unknown): MimeFile | undefined {
  if (!content || typeof content !== 'object') return undefined;
  const { path, size } = content as Partial<MimeFile>;
  if (typeof path !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  return { path, size };
}

/** Anything unexpected becomes `ERR_CONVERT_FAILED` (quarantined, never a crashed run). */
async function converting<T>(input: ConvertInput, build: () => Promise<T>): Promise<T> {
  try {
    return await build();
  } catch (err) {
    if (isAppError(err, 'ERR_CONVERT_FAILED')) throw err;
    const id = nonEmptyString(input?.message?.messageId) ? ` ${headerId(input.message.messageId)}` : '';
    throw new AppError('ERR_CONVERT_FAILED', `message${id}: ${reasonOf(err)}`, { cause: err });
  }
}

/** Converts one item in memory; attachments given as files are read into it. */
export function convertMessage(input: ConvertInput): Promise<ConvertedItem> {
  return converting(input, async () => {
    const { mime, messageId, date, warnings } = convert(input);
    const composed = await composeMimeStream(mime);
    let raw = composed.raw;
    if (!raw) {
      const chunks: Buffer[] = [];
      for await (const chunk of composed.chunks()) chunks.push(chunk);
      raw = Buffer.concat(chunks);
    }
    return { raw, messageId, date, sha256: createHash('sha256').update(raw).digest('hex'), warnings };
  });
}

/** Converts one item without holding attachments given as files (convert/mime-stream.ts). */
export function convertMessageStreamed(input: ConvertInput): Promise<StreamedItem> {
  return converting(input, async () => {
    const { mime, messageId, date, warnings } = convert(input);
    const { size, raw, chunks } = await composeMimeStream(mime);
    return { messageId, date, warnings, size, raw, chunks };
  });
}

/** The converter the pipeline uses (nodemailer `createTransport` naming). */
export function createSymphonyMimeConverter(): Converter {
  return { convert: convertMessage, convertStreamed: convertMessageStreamed };
}
