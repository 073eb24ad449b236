/**
 * Header values derived from the chat message. Every string that ends up in a header is cleaned first and
 * addresses are only ever handed to nodemailer as structured `{name, address}` objects, never concatenated
 * (reliability.md §3 rows 1, 2, 4: header injection, address confusion, bidi spoofing).
 */
import { canonicalId, idToken } from '../core/ids.ts';
import type { Conversation, Person } from '../core/types.ts';

/**
 * C0 controls (incl. CR, LF, NUL), DEL, C1 controls (incl. NEL U+0085), U+2028/2029 (line/paragraph
 * separators some parsers treat as line breaks) and the bidi embedding/override/isolate controls
 * U+202A–202E, U+2066–2069 (`invoice\u202Efdp.exe` spoofing).
 */
// eslint-disable-next-line no-control-regex
const HEADER_BREAKING = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Controls become a space (`Alice\r\nBcc: x` stays readable as one line), bidi controls are removed
 * (`r\u202Eport.pdf` → `rport.pdf`), white space runs collapse. Lone surrogates become U+FFFD so the
 * value encodes to valid UTF-8 (RFC 2047 encoded words).
 */
export function cleanHeaderText(value: string | null | undefined): string {
  if (!value) return '';
  return value
    .replace(LONE_SURROGATE, '\ufffd')
    .replace(BIDI_CONTROLS, '')
    .replace(HEADER_BREAKING, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Cuts `value` to at most `max` code points (never splitting a surrogate pair), marking the cut with "…". */
export function truncate(value: string, max: number): string {
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

/** The name a person is shown with: display name, else first + last, else username, else `user {id}`. */
export function personName(person: Person): string {
  const display = cleanHeaderText(person.displayName);
  if (display) return display;
  const full = cleanHeaderText([person.firstName, person.lastName].filter(Boolean).join(' '));
  if (full) return full;
  const username = cleanHeaderText(person.username);
  if (username) return username;
  return `user ${cleanHeaderText(person.userId) || 'unknown'}`;
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
  const email = (person.email ?? '').trim();
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

/** One entry per user id, sorted by id, so the To header does not depend on input order. */
export function uniqueSortedPeople(people: readonly Person[]): Person[] {
  const byId = new Map<string, Person>();
  for (const p of people) if (!byId.has(p.userId)) byId.set(p.userId, p);
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

export interface SubjectResult {
  subject: string;
  /** The conversation's human name, used in the body header block. */
  conversationName: string;
  warning?: string;
}

export function subjectFor(conversation: Conversation, sender: Person, participants: readonly Person[]): SubjectResult {
  const type = conversation.type;
  const streamId = cleanHeaderText(canonicalId(conversation.id));
  const names = sortedNames(participants.length > 0 ? participants : [sender]).join(', ');
  let name: string;
  let subject: string;
  let warning: string | undefined;
  switch (type) {
    case 'ROOM': {
      name = cleanHeaderText(conversation.name) || names || `Room ${streamId}`;
      subject = `[Symphony] ${name}`;
      break;
    }
    case 'IM':
    case 'MIM':
      name = `Chat: ${names}`;
      subject = `[Symphony] ${name}`;
      break;
    case 'POST':
      name = `Wall post: ${personName(sender)}`;
      subject = `[Symphony] ${name}`;
      break;
    default:
      name = `Conversation ${streamId}`;
      subject = `[Symphony] ${name}`;
      warning = `stream type "${cleanHeaderText(type)}" is not known; archived as a generic conversation`;
  }
  const result: SubjectResult = { subject: truncate(subject, SUBJECT_MAX), conversationName: name };
  if (warning) result.warning = warning;
  return result;
}

/**
 * `sym.{token}@{domain}`: the token is `[a-z0-9]` (ids.ts `idToken`) so the left side stays within the
 * RFC 5322 dot-atom and is safe in Graph `$filter`, IMAP SEARCH and file names (destinations.md §1.5, §3).
 */
export function messageIdFor(symphonyMessageId: string, messageIdDomain: string): string {
  return `sym.${idToken(symphonyMessageId)}@${messageIdDomain.trim().toLowerCase()}`;
}
