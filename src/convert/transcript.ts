/**
 * Daily transcripts (`format: daily-transcript`, issue 4 item 6): one email per conversation per calendar day in a
 * configured IANA time zone, with every item of the day in order, its time and sender, and its content rendered
 * exactly as its own email would render it (index.ts `prepareEntry`: mentions, cards, tables, Elements, edits,
 * removal notices, room events). Every entry's attachments are included, streamed from their files as
 * `convertStreamed` streams them, and one JSON attachment carries every entry's source verbatim.
 *
 * A message that arrives after the day's transcript was imported makes a revision: a new email, labelled as one in
 * its Subject, headers and body, threaded under the transcripts it supersedes (RFC 5322 §3.6.4) so it never reads
 * as a silent duplicate; nothing already archived is altered. Which items a transcript holds, when it is built and
 * who gets it is the pipeline's business; this module only renders. Pure and deterministic: the same input, with
 * its entries in any order, gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { AppError, isAppError, reasonOf } from '../core/errors.ts';
import { canonicalId, messageIdFor } from '../core/ids.ts';
import type { AttachmentContent, Conversation, Person } from '../core/types.ts';
import { HTML_CLOSE, HTML_OPEN, isoTime, type BodyField } from './body.ts';
import type { ConvertInput, ConvertOptions, StreamedItem } from './converter.ts';
import {
  NAME_MAX,
  addressOf,
  cleanHeaderText,
  personName,
  subjectFor,
  truncate,
  uniqueSortedPeople,
  type MailAddress,
} from './headers.ts';
import { DOMAIN, MAX_TO, MESSAGE_ID_MAX, prepareEntry, sourceJson, type PreparedItem } from './index.ts';
import type { MimeAttachment, MimeInput } from './mime.ts';
import { composeMimeStream } from './mime-stream.ts';
import { escapeHtml, sanitize } from './presentation.ts';

/** The attachment that carries every entry's source, as `symphony-message.json` does for one message. */
export const TRANSCRIPT_SOURCE_NAME = 'symphony-transcript.json';

/**
 * Local part of the transcript's From. A transcript has many authors; naming one of them as its sender would
 * misattribute the others' words (a search by From finds the author of a message), so it comes from the
 * conversation, in the synthetic domain where no real mailbox lives.
 */
export const TRANSCRIPT_SENDER = 'symphony-transcript';

export interface TranscriptEntry {
  /** Everything convert() would get for this item except conversation, participants and options. */
  input: Omit<ConvertInput, 'conversation' | 'participants' | 'options'>;
}

export interface TranscriptInput {
  conversation: Conversation;
  /** The calendar day in timeZone, 'YYYY-MM-DD'. */
  day: string;
  /** IANA zone, e.g. 'Europe/London'; times in the body are shown in it with the UTC offset. */
  timeZone: string;
  /** Recipients of this transcript (To), as participants are for a message. */
  participants: readonly Person[];
  /** The day's items; the renderer sorts them by (timestamp, message id) itself so order is deterministic. */
  entries: readonly TranscriptEntry[];
  /** 1 for the first transcript of this conversation-day for these recipients; n > 1 for a revision. */
  revision: number;
  /** For a revision: the Message-IDs (without <>) of the earlier transcripts it supersedes, oldest first. */
  supersedes?: readonly string[];
  /** For a revision: the message ids new since the previous revision (shown/marked as added). */
  added?: readonly string[];
  options: ConvertOptions;
}

function fail(detail: string): never {
  throw new AppError('ERR_CONVERT_FAILED', detail);
}

// ---- days in a time zone --------------------------------------------------------------------------------------

/** Supported calendar years: a four-digit year for RFC 5322 §3.3, none before Symphony existed to disambiguate. */
const MIN_YEAR = 1970;
const MAX_YEAR = 9999;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A formatter per zone (building one costs far more than using it); Gregorian, Latin digits, 0–23 hours. */
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f) return f;
  if (typeof timeZone !== 'string' || timeZone.trim() === '') fail('no time zone given');
  try {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch (err) {
    throw new AppError('ERR_CONVERT_FAILED', `${JSON.stringify(timeZone)} is not an IANA time zone`, { cause: err });
  }
  formatters.set(timeZone, f);
  return f;
}

/** Date.UTC without its mapping of years 0–99 to 1900–1999. */
function utc(year: number, month: number, day: number): number {
  return new Date(0).setUTCFullYear(year, month - 1, day);
}

/** The wall-clock time at `ts` in the zone, as the UTC instant that shows the same digits, to the second. */
function wallClock(ts: number, timeZone: string): number {
  const v: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(ts)) if (p.type !== 'literal') v[p.type] = Number(p.value);
  return utc(v['year']!, v['month']!, v['day']!) + ((v['hour']! * 60 + v['minute']!) * 60 + v['second']!) * 1000;
}

/** The zone's UTC offset at `ts` in ms; tz data offsets and transitions fall on whole seconds. */
function offsetAt(ts: number, timeZone: string): number {
  return wallClock(ts, timeZone) - Math.floor(ts / 1000) * 1000;
}

/**
 * The first instant at which the zone's clocks read `midnight` (a day's 00:00, as a UTC instant with those digits)
 * or later. Usually local midnight; where a transition skips midnight (America/Havana springs forward at 00:00)
 * the day starts at the transition. Offsets lie within −12 h … +14 h, so the start lies within this window;
 * a window holding one transition (never two in a day, in any zone's history) is searched for it to the second.
 */
function dayStart(midnight: number, timeZone: string): number {
  const left = midnight - 16 * HOUR;
  const right = midnight + 16 * HOUR;
  const before = offsetAt(left, timeZone);
  const after = offsetAt(right, timeZone);
  if (before === after) return midnight - before;
  let lo = left / 1000;
  let hi = right / 1000;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(mid * 1000, timeZone) === before) lo = mid;
    else hi = mid;
  }
  const transition = hi * 1000;
  if (midnight - before < transition) return midnight - before;
  return Math.max(transition, midnight - after);
}

const DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Midnight of a 'YYYY-MM-DD' day as a UTC instant with those digits; fails unless it is a real supported date. */
function parseDay(day: string): number {
  const m = typeof day === 'string' ? DAY_PATTERN.exec(day) : null;
  if (!m) fail(`day ${JSON.stringify(day)} is not YYYY-MM-DD`);
  const [year, month, date] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const midnight = utc(year, month, date);
  if (year < MIN_YEAR || year > MAX_YEAR || formatDay(midnight) !== day) {
    fail(`day ${day} is not a date between ${MIN_YEAR} and ${MAX_YEAR}`);
  }
  return midnight;
}

function formatDay(midnight: number): string {
  return new Date(midnight).toISOString().slice(0, 10);
}

/** The day ('YYYY-MM-DD') a timestamp (ms) falls on in timeZone: the one whose {@link dayBounds} hold it. */
export function dayOf(ts: number, timeZone: string): string {
  if (typeof ts !== 'number' || !Number.isFinite(ts) || Math.abs(ts) > 8.64e15) fail(`timestamp ${ts} is not usable`);
  const wall = wallClock(ts, timeZone);
  let midnight = wall - (((wall % DAY) + DAY) % DAY);
  // Where clocks go back across midnight, the repeated hour comes after the next day has begun.
  if (ts >= dayStart(midnight + DAY, timeZone)) midnight += DAY;
  const day = formatDay(midnight);
  const year = new Date(midnight).getUTCFullYear();
  if (year < MIN_YEAR || year > MAX_YEAR) fail(`timestamp ${ts} falls outside ${MIN_YEAR}–${MAX_YEAR} in ${timeZone}`);
  return day;
}

/** The [start, end) ms bounds of a day in timeZone; 23 or 25 hours long, or other lengths, across transitions. */
export function dayBounds(day: string, timeZone: string): { start: number; end: number } {
  const midnight = parseDay(day);
  return { start: dayStart(midnight, timeZone), end: dayStart(midnight + DAY, timeZone) };
}

function two(n: number): string {
  return String(n).padStart(2, '0');
}

/** `+01:00`, `-03:30`, `+05:45`; seconds only for the local mean times of old tz data (`-00:01:15`). */
function formatOffset(offset: number): string {
  const abs = Math.abs(offset) / 1000;
  const s = abs % 60;
  return `${offset < 0 ? '-' : '+'}${two(Math.floor(abs / 3600))}:${two(Math.floor(abs / 60) % 60)}${s ? `:${two(s)}` : ''}`;
}

/** `HH:MM:SS ±HH:MM` in the zone, preceded by the date unless `ts` is on the transcript's day. */
function localTime(ts: number, timeZone: string, onDay: boolean): string {
  const wall = wallClock(ts, timeZone);
  const iso = new Date(wall).toISOString();
  const time = `${iso.slice(11, 19)} ${formatOffset(wall - Math.floor(ts / 1000) * 1000)}`;
  return onDay ? time : `${iso.slice(0, 10)} ${time}`;
}

// ---- Message-ID -----------------------------------------------------------------------------------------------

/** A variant key used as it is when it is a short `[a-z0-9]` token, else hashed (with a `-`, so the two never meet). */
function variantToken(variant: string): string {
  return /^[a-z0-9]{1,32}$/.test(variant)
    ? variant
    : `x-${createHash('sha256').update(String(variant)).digest('hex').slice(0, 16)}`;
}

/**
 * The ledger's item id of a transcript: `transcript.{stream}.{yyyymmdd}.r{revision}.{variant}`, never a Symphony
 * message id (those are base64url without dots). Derived from its parts alone, so the pipeline knows it before
 * (and without) rendering.
 */
export function transcriptItemId(conversationId: string, day: string, revision: number, variant: string): string {
  if (typeof conversationId !== 'string' || conversationId.trim() === '') fail('the conversation has no id');
  parseDay(day);
  if (!Number.isSafeInteger(revision) || revision < 1) fail(`revision ${revision} is not a positive integer`);
  return `transcript.${canonicalId(conversationId)}.${day.replace(/-/g, '')}.r${revision}.${variantToken(variant)}`;
}

/**
 * The transcript's Message-ID is that of its item id, formed as a message's is (core/ids.ts `messageIdFor`): the
 * writers find an item already filed by the key in it (deliver/imap/folder.ts `keyOfMessageId`), and a retried
 * delivery derives it again from the ledger's item id alone.
 */
export function transcriptMessageId(
  conversationId: string,
  day: string,
  revision: number,
  variant: string,
  domain: string,
): string {
  const itemId = transcriptItemId(conversationId, day, revision, variant);
  const host = typeof domain === 'string' ? domain.trim().toLowerCase() : '';
  if (!DOMAIN.test(host)) fail('messageIdDomain must be a domain name');
  const id = messageIdFor(itemId, host);
  if (id.length > MESSAGE_ID_MAX) fail(`conversation id ${cleanHeaderText(conversationId).slice(0, 200)}… is too long`);
  return id;
}

/** A msg-id (RFC 5322 §3.6.4) as the pipeline stores it: a dot-atom, `@`, a domain; angle brackets tolerated. */
const MSG_ID = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9][A-Za-z0-9.\-[\]:]*$/;

// ---- entries ---------------------------------------------------------------------------------------------------

/** How an entry's heading names what it is, before its id. */
const KIND_NAMES: Record<PreparedItem['kind'], string> = {
  message: 'message',
  edit: 'edited message',
  suppression: 'removal notice',
  'form-response': 'form response',
  'room-event': 'room event',
};

/** One entry as the transcript shows it. */
interface Entry {
  /** The Symphony id, canonical; empty when the entry has none. */
  key: string;
  /** The same, cleaned and capped for display. */
  id: string;
  ts: number | undefined;
  /** `HH:MM:SS ±HH:MM` in the zone. */
  time: string;
  from: MailAddress | undefined;
  kind: string;
  fields: BodyField[];
  text: string;
  /** Sanitized; empty for an entry that could not be rendered. */
  html: string;
  attachments: MimeAttachment[];
  source: unknown;
  added: boolean;
}

function entryMessage(entry: TranscriptEntry): Partial<ConvertInput['message']> {
  const message = entry && typeof entry === 'object' ? entry.input?.message : undefined;
  return message && typeof message === 'object' ? message : {};
}

function entryTimestamp(entry: TranscriptEntry): number | undefined {
  const ts = entryMessage(entry).timestamp;
  return typeof ts === 'number' && Number.isFinite(ts) && Math.abs(ts) <= 8.64e15 ? ts : undefined;
}

function entryId(entry: TranscriptEntry): string {
  const id = entryMessage(entry).messageId;
  return typeof id === 'string' ? canonicalId(id) : '';
}

/** What an entry is, without the attachment bytes, for ordering ties and for an entry that could not be rendered. */
function entryRecord(entry: TranscriptEntry): unknown {
  const input: Partial<TranscriptEntry['input']> =
    entry && typeof entry === 'object' && entry.input && typeof entry.input === 'object' ? entry.input : {};
  const { attachments, ...rest } = input;
  const files: unknown[] = Array.isArray(attachments) ? attachments : [];
  const described = files.map((a) => {
    const { id, name } = a && typeof a === 'object' ? (a as Partial<AttachmentContent>) : {};
    return { id, name };
  });
  return { ...rest, attachments: described };
}

function jsonOrEmpty(value: unknown): string {
  try {
    return sourceJson(value).toString('utf8');
  } catch {
    return '';
  }
}

function codePointCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Time, then message id, then (only for two entries with both equal, e.g. the same item given twice) the entry
 * itself: a total order, so the output does not depend on the order the entries came in. Entries without a
 * usable time go last.
 */
function sortEntries(entries: readonly TranscriptEntry[]): TranscriptEntry[] {
  const keyed = entries.map((entry) => ({
    entry,
    ts: entryTimestamp(entry) ?? Infinity,
    id: entryId(entry),
    record: undefined as string | undefined,
  }));
  const record = (k: (typeof keyed)[number]): string => (k.record ??= jsonOrEmpty(entryRecord(k.entry)));
  keyed.sort((a, b) => a.ts - b.ts || codePointCompare(a.id, b.id) || codePointCompare(record(a), record(b)));
  return keyed.map((k) => k.entry);
}

/** The sanitized content between the document shell that body.ts puts around every HTML body. */
function innerHtml(html: string): string {
  if (!html.startsWith(HTML_OPEN) || !html.endsWith(HTML_CLOSE)) throw new Error('HTML body has an unexpected shell');
  return html.slice(HTML_OPEN.length, html.length - HTML_CLOSE.length);
}

/** What every entry of one transcript is rendered against. */
interface TranscriptContext {
  conversation: Conversation;
  participants: Person[];
  options: ConvertOptions;
  timeZone: string;
  day: string;
  start: number;
  end: number;
  /** Canonical ids of the entries new in this revision. */
  added: ReadonlySet<string>;
  /** Warnings about the transcript as a whole, which its entries would only repeat. */
  general: ReadonlySet<string>;
}

/**
 * One entry, rendered as its own email would be (index.ts `prepareEntry`), or a placeholder when it cannot be.
 * Its attachment names are added to `takenNames` only when it renders, so a failed entry takes none.
 */
function renderEntry(
  entry: TranscriptEntry,
  ctx: TranscriptContext,
  takenNames: Set<string>,
  warnings: Set<string>,
): Entry {
  const ts = entryTimestamp(entry);
  const key = entryId(entry);
  const id = cleanHeaderText(key).slice(0, 200);
  const onDay = ts !== undefined && ts >= ctx.start && ts < ctx.end;
  const time = ts === undefined ? 'time unknown' : localTime(ts, ctx.timeZone, onDay);
  const where = `${id ? `message ${id}` : 'entry without id'} at ${time}`;
  if (ts !== undefined && !onDay) warnings.add(`${where} is not on ${ctx.day} in ${ctx.timeZone}`);
  const base = { key, id, ts, time, added: ctx.added.has(key) };
  try {
    const names = new Set(takenNames);
    const { conversation, participants, options } = ctx;
    const item = prepareEntry(
      { ...entry.input, conversation, participants, options },
      { takenNames: names, sourceName: TRANSCRIPT_SOURCE_NAME },
    );
    // A source JSON cannot hold fails the entry, as it fails a message of its own.
    sourceJson(item.source);
    for (const name of names) takenNames.add(name);
    for (const w of item.warnings) if (!ctx.general.has(w)) warnings.add(`${where}: ${w}`);
    return {
      ...base,
      from: item.mime.from,
      kind:
        item.kind === 'room-event' && entry.input.roomEvent?.type === 'INSTANTMESSAGECREATED'
          ? 'chat event'
          : KIND_NAMES[item.kind],
      fields: item.fields,
      text: item.mime.text.trimEnd(),
      html: innerHtml(item.mime.html),
      attachments: item.mime.attachments,
      source: item.source,
    };
  } catch (err) {
    const reason = cleanHeaderText(isAppError(err) ? err.message : reasonOf(err));
    warnings.add(`${where} could not be rendered (${reason}); a placeholder stands for it`);
    const record = entryRecord(entry);
    return {
      ...base,
      from: undefined,
      kind: 'item',
      fields: [],
      text: `This item could not be rendered: ${reason}. What it holds is in ${TRANSCRIPT_SOURCE_NAME}; its attachments are not included.`,
      html: '',
      attachments: [],
      source: { unrenderable: reason, entry: jsonOrEmpty(record) ? record : null },
    };
  }
}

// ---- the transcript --------------------------------------------------------------------------------------------

interface PreparedTranscript {
  mime: MimeInput;
  messageId: string;
  date: Date;
  warnings: string[];
}

function prepareTranscript(input: TranscriptInput & { variant: string }): PreparedTranscript {
  if (!input || typeof input !== 'object') fail('transcript input is not an object');
  const { conversation, day, timeZone, revision, options } = input;
  if (!conversation || typeof conversation !== 'object') fail('the transcript has no conversation');
  const syntheticDomain =
    typeof options?.syntheticDomain === 'string' ? options.syntheticDomain.trim().toLowerCase() : '';
  if (!DOMAIN.test(syntheticDomain)) fail('syntheticDomain must be a domain name');
  const messageId = transcriptMessageId(conversation.id, day, revision, input.variant, options?.messageIdDomain);
  const { start, end } = dayBounds(day, timeZone);

  const warnings = new Set<string>();
  const participants = uniqueSortedPeople(Array.isArray(input.participants) ? input.participants : []);
  let to = participants.map((p) => {
    const a = addressOf(p, syntheticDomain);
    if (a.invalid !== undefined) {
      warnings.add(`email of user ${cleanHeaderText(p.userId)} is not a plain address; using ${a.address}`);
    }
    return { name: a.name, address: a.address };
  });

  const sorted = sortEntries(Array.isArray(input.entries) ? input.entries : []);
  const isRevision = revision > 1;
  const label = isRevision ? ` (transcript ${day}, revision ${revision})` : ` (transcript ${day})`;
  const first = sorted[0]?.input?.sender;
  // `{sender}` and a wall's name ("Wall post: <sender>") are the first author's.
  const subjectSender = first && typeof first === 'object' && typeof first.userId === 'string' ? first : undefined;
  const { subject, conversationName, warning } = subjectFor(
    conversation,
    subjectSender ?? participants[0] ?? { userId: '' },
    participants,
    { template: options?.subjectTemplate, label },
  );
  if (warning) warnings.add(warning);
  // Entries repeat what is true of the whole transcript (an unknown stream type, a participant's bad email).
  const general = new Set(warnings);

  const added = new Set(
    (isRevision && Array.isArray(input.added) ? input.added : []).flatMap((id) =>
      typeof id === 'string' ? [canonicalId(id)] : [],
    ),
  );
  const supersedes: string[] = [];
  for (const raw of isRevision && Array.isArray(input.supersedes) ? input.supersedes : []) {
    const id = typeof raw === 'string' ? raw.trim().replace(/^<(.*)>$/, '$1') : '';
    if (!MSG_ID.test(id) || id.length > MESSAGE_ID_MAX || id === messageId) {
      warnings.add(`superseded Message-ID ${cleanHeaderText(String(raw)).slice(0, 200)} is not usable; left out`);
    } else if (!supersedes.includes(id)) supersedes.push(id);
  }
  if (!isRevision && (input.supersedes?.length || input.added?.length)) {
    warnings.add('revision 1 supersedes nothing; supersedes and added are ignored');
  }
  if (isRevision && supersedes.length === 0) warnings.add(`revision ${revision} names no transcript it supersedes`);

  const context: TranscriptContext = { conversation, participants, options, timeZone, day, start, end, added, general };
  const takenNames = new Set<string>([TRANSCRIPT_SOURCE_NAME]);
  const entries = sorted.map((entry) => renderEntry(entry, context, takenNames, warnings));
  const counts = new Map<string, number>();
  for (const e of entries) if (e.key) counts.set(e.key, (counts.get(e.key) ?? 0) + 1);
  for (const [key, n] of counts)
    if (n > 1) warnings.add(`message ${cleanHeaderText(key)} is in the transcript ${n} times`);
  for (const key of added) {
    if (!counts.has(key)) warnings.add(`added message ${cleanHeaderText(key).slice(0, 200)} is not in the transcript`);
  }
  const addedCount = entries.filter((e) => e.added).length;

  const from: MailAddress = {
    name: truncate(conversationName, NAME_MAX),
    address: `${TRANSCRIPT_SENDER}@${syntheticDomain}`,
  };
  const streamType = cleanHeaderText(conversation.type).slice(0, 64);
  const fields: BodyField[] = [
    { label: 'Conversation', value: `${conversationName} (${streamType || 'unknown type'})` },
    { label: 'Day', value: `${day} in ${cleanHeaderText(timeZone)}, from ${isoTime(start)} to ${isoTime(end)}` },
    { label: 'Messages', value: String(entries.length) },
  ];
  if (to.length > MAX_TO) {
    warnings.add(`${to.length} recipients; the first ${MAX_TO} are in To, all are listed in the body`);
    fields.push({ label: 'Participants', value: participants.map(personName).join(', ') });
    to = to.slice(0, MAX_TO);
  }
  // A conversation without participants is still filed, as a wall post is: To = From.
  if (to.length === 0) to = [from];

  const headers: [string, string][] = [
    ['X-Symphony-Stream-Id', cleanHeaderText(canonicalId(conversation.id)).slice(0, 200)],
    ['X-Symphony-Stream-Type', streamType || 'unknown'],
    ['X-Symphony-Item-Type', 'transcript'],
    ['X-Symphony-Transcript-Day', day],
    ['X-Symphony-Transcript-Zone', cleanHeaderText(timeZone).slice(0, 200)],
    ['X-Symphony-Transcript-Revision', String(revision)],
    ['X-Symphony-Transcript-Messages', String(entries.length)],
  ];
  if (isRevision) headers.push(['X-Symphony-Transcript-Added', String(addedCount)]);

  const textParts: string[] = [];
  const htmlParts: string[] = [];
  const mark = `added in revision ${revision}`;
  if (isRevision) {
    const list = supersedes.length > 0 ? supersedes.map((id) => `<${id}>`).join(', ') : 'the earlier revisions';
    const notice =
      `Revision ${revision} of this transcript: supersedes ${list}; ` +
      `${addedCount === 1 ? '1 message' : `${addedCount} messages`} added since revision ${revision - 1}` +
      `${addedCount > 0 ? `, marked "${mark}"` : ''}. Earlier revisions are kept as they were; this one holds ` +
      'every item of the day.';
    textParts.push(notice);
    htmlParts.push(`<h3>Revision ${revision} of this transcript</h3><p>${escapeHtml(notice)}</p>`);
  }
  textParts.push(`${fields.map((f) => `${f.label}: ${f.value}`).join('\n')}\n${'-'.repeat(10)}`);
  htmlParts.push(
    `<p>${fields.map((f) => `<b>${escapeHtml(f.label)}:</b> ${escapeHtml(f.value)}`).join('<br>')}</p><hr>`,
  );
  if (entries.length === 0) {
    textParts.push('(no messages)');
    htmlParts.push('<p>(no messages)</p>');
  }
  for (const e of entries) {
    // `[09:14:03 +01:00] Alice Martin <alice@bank.example>, edited message <id>`, its details, then its content.
    const who = e.from ? `${e.from.name} <${e.from.address}>, ` : '';
    const what = `${e.kind}${e.id ? ` ${e.id}` : ''}`;
    textParts.push(
      [
        `[${e.time}] ${who}${what}${e.added ? ` [${mark}]` : ''}`,
        ...e.fields.map((f) => `  ${f.label}: ${f.value}`),
        e.text,
      ].join('\n'),
    );
    const heading =
      `<p><b>${escapeHtml(e.time)}</b> ${escapeHtml(who + what)}${e.added ? ` <b>[${mark}]</b>` : ''}` +
      e.fields.map((f) => `<br>${escapeHtml(`${f.label}: ${f.value}`)}`).join('') +
      `</p>${e.html ? '' : `<p>${escapeHtml(e.text)}</p>`}`;
    htmlParts.push(heading + (e.html ? `<div>${e.html}</div>` : ''));
  }

  const attachments = entries.flatMap((e) => e.attachments);
  const source = {
    transcript: {
      messageId,
      conversation,
      day,
      timeZone,
      start,
      end,
      revision,
      ...(isRevision ? { supersedes, added: entries.filter((e) => e.added).map((e) => e.key) } : {}),
      participants,
      attachments: entries.flatMap((e) =>
        e.attachments.map((a) => ({
          filename: a.filename,
          messageId: e.key,
          ...(a.symphonyId ? { id: a.symphonyId } : {}),
        })),
      ),
    },
    entries: entries.map((e) => e.source),
  };
  attachments.push({
    filename: TRANSCRIPT_SOURCE_NAME,
    content: sourceJson(source),
    contentType: 'application/json',
    params: { charset: 'utf-8' },
  });

  // Date (RFC 5322 §3.6.1): the last item's time on the day, so a transcript built while its day runs is never
  // dated in the future; the day's start when it has none.
  const date = new Date(entries.reduce((d, e) => (e.ts !== undefined && e.ts < end && e.ts > d ? e.ts : d), start));
  const mime: MimeInput = {
    messageId,
    date,
    from,
    to,
    subject,
    headers,
    // Threading (RFC 5322 §3.6.4): a revision replies to the one before it and references all before it.
    ...(supersedes.length > 0 ? { inReplyTo: supersedes[supersedes.length - 1]!, references: supersedes } : {}),
    // LF here; the MIME writer turns every line end into CRLF (RFC 5322 §2.3).
    text: textParts.join('\n\n') + '\n',
    // The whole through the sanitizer again, as body.ts does (reliability.md §3 row 3).
    html: HTML_OPEN + sanitize(htmlParts.join('\n')) + HTML_CLOSE,
    attachments,
  };
  return { mime, messageId, date, warnings: [...warnings] };
}

/**
 * Renders one transcript. Attachments given as files are base64-encoded from the file while `chunks()` is read
 * (mime-stream.ts), so a day of any size needs memory for its text only. An entry that cannot be rendered gets a
 * placeholder and a warning; `ERR_CONVERT_FAILED` only when the transcript as a whole cannot be made (its day,
 * zone, revision, domains or conversation id unusable, or an attachment file unreadable).
 */
export async function convertTranscript(input: TranscriptInput & { variant: string }): Promise<StreamedItem> {
  try {
    const { mime, messageId, date, warnings } = prepareTranscript(input);
    const { size, raw, chunks } = await composeMimeStream(mime);
    return { messageId, date, warnings, size, raw, chunks };
  } catch (err) {
    if (isAppError(err, 'ERR_CONVERT_FAILED')) throw err;
    const what = `transcript of ${cleanHeaderText(String(input?.conversation?.id)).slice(0, 200)} on ${cleanHeaderText(String(input?.day))}`;
    throw new AppError('ERR_CONVERT_FAILED', `${what}: ${reasonOf(err)}`, { cause: err });
  }
}
