/**
 * Header values derived from the chat message. Every string that ends up in a header is cleaned first and
 * addresses are only ever handed to nodemailer as structured `{name, address}` objects, never concatenated
 * (reliability.md §3 rows 1, 2, 4: header injection, address confusion, bidi spoofing).
 */
import { canonicalId } from '../core/ids.ts';
import type { Conversation, Person } from '../core/types.ts';

/**
 * C0 controls (incl. CR, LF, NUL), DEL, C1 controls (incl. NEL U+0085), U+2028/2029 (line/paragraph
 * separators some parsers treat as line breaks) and the bidi embedding/override/isolate controls
 * U+202A–202E, U+2066–2069 (`invoice\u202Efdp.exe` spoofing).
 */
// eslint-disable-next-line no-control-regex
const HEADER_BREAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;
/** Printable ASCII words separated by single spaces: already clean (the common case, tested first). */
const PLAIN_TEXT = /^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Controls become a space (`Alice\r\nBcc: x` stays readable as one line), bidi controls are removed
 * (`r\u202Eport.pdf` → `rport.pdf`), white space runs collapse. Lone surrogates become U+FFFD so the
 * value encodes to valid UTF-8 (RFC 2047 encoded words).
 */
export function cleanHeaderText(value: string | null | undefined): string {
  if (typeof value !== 'string' || !value) return '';
  if (PLAIN_TEXT.test(value)) return value;
  return value
    .replace(LONE_SURROGATE, '\ufffd')
    .replace(BIDI_CONTROLS, '')
    .replace(HEADER_BREAKING, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Cuts `value` to at most `max` code points (never splitting a surrogate pair), marking the cut with "…". */
export function truncate(value: string, max: number): string {
  if (value.length <= max) return value;
  const chars = Array.from(value);
  if (chars.length <= max) return value;
  return (
    chars
      .slice(0, max - 1)
      .join('')
      .trimEnd() + '…'
  );
}

/** RFC 5321 dot-atom local part and an LDH domain with at least two labels: nothing that needs quoting. */
const SIMPLE_ADDRESS =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function isSimpleAddress(value: string): boolean {
  return value.length <= 254 && SIMPLE_ADDRESS.test(value);
}

/** Names longer than this are cut: a 5 KB display name (reliability.md §3 row 13) is noise, not identity. */
export const NAME_MAX = 128;

/** The name a person is shown with: display name, else first + last, else username, else `user {id}`. */
export function personName(person: Person): string {
  const display = cleanHeaderText(str(person.displayName));
  if (display) return truncate(display, NAME_MAX);
  const full = cleanHeaderText([str(person.firstName), str(person.lastName)].filter(Boolean).join(' '));
  if (full) return truncate(full, NAME_MAX);
  const username = cleanHeaderText(str(person.username));
  if (username) return truncate(username, NAME_MAX);
  return `user ${truncate(cleanHeaderText(str(person.userId)), 64) || 'unknown'}`;
}

/** Fields typed as strings may hold anything at run time (the JSON was never validated). */
function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A local part safe in any address: the decimal user id, or the hex of anything else. */
function syntheticLocal(userId: string): string {
  return /^[A-Za-z0-9._-]{1,64}$/.test(userId) && !/^\.|\.$|\.\./.test(userId)
    ? `user-${userId}`
    : `user-x${Buffer.from(userId, 'utf8').toString('hex').slice(0, 56)}`;
}

export interface MailAddress {
  name: string;
  address: string;
}

/**
 * The person's own email when it is a plain address; otherwise a synthetic `user-{id}@{domain}` so identity
 * survives in the header (reliability.md §3 row 5). `invalid` reports an email that was present but unusable.
 */
export function addressOf(person: Person, syntheticDomain: string): MailAddress & { invalid?: string } {
  const name = personName(person);
  const email = (str(person.email) ?? '').trim();
  if (email && isSimpleAddress(email)) return { name, address: email };
  const address = `${syntheticLocal(person.userId)}@${syntheticDomain}`;
  return email ? { name, address, invalid: email } : { name, address };
}

/** Decimal user ids compare numerically; anything else falls back to code-point order. */
export function compareUserIds(a: string, b: string): number {
  const da = /^\d+$/.test(a);
  const db = /^\d+$/.test(b);
  if (da && db) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (da !== db) return da ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One entry per user id, sorted by id, so the To header does not depend on input order. Entries without a
 * string user id are dropped (they cannot be addressed or deduplicated). */
export function uniqueSortedPeople(people: readonly Person[]): Person[] {
  const byId = new Map<string, Person>();
  for (const p of people) {
    if (!p || typeof p !== 'object' || typeof p.userId !== 'string' || p.userId === '') continue;
    if (!byId.has(p.userId)) byId.set(p.userId, p);
  }
  return [...byId.values()].sort((a, b) => compareUserIds(a.userId, b.userId));
}

function codePointCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Names sorted by code point (locale-independent, so the bytes are the same on every host). */
export function sortedNames(people: readonly Person[]): string[] {
  return uniqueSortedPeople(people).map(personName).sort(codePointCompare);
}

/** RFC 5322 §2.1.1 allows 998 octets a line; 200 characters keep the Subject readable and foldable. */
export const SUBJECT_MAX = 200;

/**
 * The default subject: the conversation's name and, for an edit, a removal notice or a form response, a
 * label, e.g. `[Symphony] Rates Desk`, `[Symphony] Chat: Alice Martin, Bob Chen (edited)`.
 */
export const DEFAULT_SUBJECT_TEMPLATE = '[Symphony] {conversation}{label}';

/** What a subject template can refer to, as `{name}`. */
export interface SubjectFields {
  /** The room name, `Chat: <participants>` for an IM/MIM, `Wall post: <sender>` for a POST. */
  conversation: string;
  /** The room name (empty outside rooms). */
  room: string;
  /** Participants' names, comma-separated, sorted. */
  participants: string;
  sender: string;
  /** Stream type as Symphony reports it: IM, MIM, ROOM, POST. */
  type: string;
  streamId: string;
  /** ` (edited)`, ` (removed)`, ` (form response)` or empty. */
  label: string;
}

export interface SubjectResult {
  subject: string;
  /** The conversation's human name, used in the body header block. */
  conversationName: string;
  warning?: string;
}

/** Expands `{name}` placeholders; unknown names are left as they are, so a typo shows in the subject. */
export function expandTemplate(template: string, fields: SubjectFields): string {
  return template.replace(/\{([A-Za-z]+)\}/g, (whole, key: string) =>
    Object.hasOwn(fields, key) ? fields[key as keyof SubjectFields] : whole,
  );
}

export function subjectFor(
  conversation: Conversation,
  sender: Person,
  participants: readonly Person[],
  options: { template?: string | undefined; label?: string } = {},
): SubjectResult {
  const type = conversation.type;
  const streamId = cleanHeaderText(canonicalId(conversation.id ?? ''));
  const names = truncate(sortedNames(participants.length > 0 ? participants : [sender]).join(', '), SUBJECT_MAX);
  const room = cleanHeaderText(conversation.name);
  let name: string;
  let warning: string | undefined;
  switch (type) {
    case 'ROOM':
      name = room || names || `Room ${streamId}`;
      break;
    case 'IM':
    case 'MIM':
      name = `Chat: ${names}`;
      break;
    case 'POST':
      name = `Wall post: ${personName(sender)}`;
      break;
    default:
      name = `Conversation ${streamId}`;
      warning = `stream type "${cleanHeaderText(type)}" is not known; archived as a generic conversation`;
  }
  const template = typeof options.template === 'string' && options.template.trim() ? options.template : undefined;
  const fields: SubjectFields = {
    conversation: name,
    room: type === 'ROOM' ? room : '',
    participants: names,
    sender: personName(sender),
    type: cleanHeaderText(type),
    streamId,
    label: options.label ?? '',
  };
  const subject = cleanHeaderText(expandTemplate(template ?? DEFAULT_SUBJECT_TEMPLATE, fields));
  const result: SubjectResult = { subject: truncate(subject, SUBJECT_MAX), conversationName: name };
  if (warning) result.warning = warning;
  return result;
}

/**
 * `sym.{token}@{domain}`: the token is `[a-z0-9]` (ids.ts `idToken`) so the left side stays within the
 * RFC 5322 dot-atom and is safe in Graph `$filter`, IMAP SEARCH and file names (destinations.md §1.5, §3).
 * The pipeline derives the same id on its own (core/ids.ts), so both must stay this one function.
 */
export { messageIdFor } from '../core/ids.ts';
