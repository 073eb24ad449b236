/**
 * RFC 5322 / MIME serialisation (destinations.md §3). The encoders are nodemailer's own (`mime-funcs` for
 * RFC 2047 encoded words, RFC 2231 parameters and folding; `qp` for bodies); the tree is written
 * here, synchronously, because MailComposer's stream pipeline costs about 0.8 ms a message, more than the
 * whole 2,000 msg/s budget allows. The output is byte-deterministic: nothing comes from the clock or the RNG.
 *
 * Structure: multipart/mixed [ multipart/alternative [ text/plain, text/html ], attachments… ]. When the HTML
 * shows images of its own (`cid:` URLs, RFC 2392), the HTML and those images form a multipart/related in its
 * place (RFC 2387): multipart/alternative [ text/plain, multipart/related [ text/html, images… ] ].
 */
import { createHash, type Hash } from 'node:crypto';
import {
  buildHeaderValue,
  detectMimeType,
  encodeWord,
  encodeWords,
  foldLines,
  quoteString,
} from 'nodemailer/lib/mime-funcs';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import { cleanHeaderText, truncate, type MailAddress } from './headers.ts';

/** An attachment body left in its file until the message is written (mime-stream.ts `composeMimeStream`). */
export interface MimeFile {
  path: string;
  /** Exact length of the file in bytes. */
  size: number;
}

export interface MimeAttachment {
  filename: string;
  /** The bytes, or the file they are read from while the message is written. */
  content: Buffer | MimeFile;
  /** `type/subtype` without parameters; derived from the file name when absent. */
  contentType?: string;
  /** Content-Type parameters other than `name`, e.g. `{ charset: 'utf-8' }`. */
  params?: Record<string, string>;
  /** Symphony file id, kept in an `X-Symphony-Attachment-Id` part header. */
  symphonyId?: string;
  /**
   * Set for an image the HTML body shows through `cid:{contentId}` (RFC 2392): it becomes an inline part of
   * the HTML's multipart/related (RFC 2387) instead of an attachment. Without angle brackets.
   */
  contentId?: string;
}

export interface MimeInput {
  /** Without angle brackets. */
  messageId: string;
  date: Date;
  from: MailAddress;
  to: MailAddress[];
  subject: string;
  /** Header name → value, in the order they should appear after the standard fields. Values are cleaned here. */
  headers: [string, string][];
  inReplyTo?: string;
  /** Oldest first, parent last (RFC 5322 §3.6.4). */
  references?: string[];
  text: string;
  html: string;
  attachments: MimeAttachment[];
}

export const CRLF = '\r\n';

/** RFC 2231 lets a parameter be arbitrarily long, but many clients and file systems stop at 255 bytes. */
const FILENAME_MAX_BYTES = 255;

/**
 * A file name fit for `Content-Disposition`: no path components (`../../x`, `C:\x`), no controls or bidi
 * overrides (reliability.md §3 rows 4, 6), at most 255 UTF-8 bytes with the extension kept.
 */
export function safeFilename(name: string | null | undefined, fallback: string): string {
  const raw = typeof name === 'string' ? name : '';
  const base = cleanHeaderText(raw.split(/[/\\]/).pop() ?? '').replace(/^[.\s]+/, '');
  if (!base) return fallback;
  if (Buffer.byteLength(base) <= FILENAME_MAX_BYTES) return base;
  const dot = base.lastIndexOf('.');
  const ext = dot > 0 && base.length - dot <= 16 ? base.slice(dot) : '';
  const chars = Array.from(base.slice(0, base.length - ext.length));
  let bytes = Buffer.byteLength(ext) + 3; // "…" is 3 bytes in UTF-8
  let n = 0;
  while (n < chars.length && bytes + Buffer.byteLength(chars[n]!) <= FILENAME_MAX_BYTES)
    bytes += Buffer.byteLength(chars[n++]!);
  return chars.slice(0, n).join('') + '…' + ext;
}

export function contentTypeFor(filename: string): string {
  const dot = filename.lastIndexOf('.');
  const ext = dot >= 0 ? filename.slice(dot + 1).toLowerCase() : '';
  return (ext && detectMimeType(ext)) || 'application/octet-stream';
}

/** Q for mostly-Latin text, B otherwise: the shorter encoding (nodemailer MimeNode `_getTextEncoding`). */
function wordEncoding(value: string): 'Q' | 'B' {
  let nonLatin = 0;
  let latin = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0x80 || c < 0x20) nonLatin++;
    else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++;
  }
  return nonLatin < latin ? 'Q' : 'B';
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Longest unstructured header value, in characters, before encoding. */
const HEADER_VALUE_MAX = 900;

/**
 * An unstructured field body (RFC 5322 §3.2.5). Non-ASCII becomes RFC 2047 encoded words of at most 75
 * characters (§2); so does ASCII that contains `=?`, which a reader would otherwise decode as an encoded word.
 */
export function encodeUnstructured(value: string): string {
  // Every caller caps its values far lower; this keeps even an unbroken token under 998 octets (§2.1.1).
  const clean = truncate(cleanHeaderText(value), HEADER_VALUE_MAX);
  if (PRINTABLE_ASCII.test(clean) && !clean.includes('=?')) return clean;
  return encodeWords(clean, wordEncoding(clean), 52, true);
}

/** A display name as an RFC 5322 phrase: atoms as they are, other ASCII quoted, the rest encoded words. */
function encodePhrase(name: string): string {
  if (/^[\w ]*$/.test(name)) return name;
  if (PRINTABLE_ASCII.test(name) && !name.includes('=?')) return quoteString(name);
  return encodeWord(name, wordEncoding(name), 52);
}

/** `Name <address>`; the address is a validated dot-atom (headers.ts `addressOf`), never parsed from text. */
export function formatAddress(a: MailAddress): string {
  const name = cleanHeaderText(a.name);
  return name ? `${encodePhrase(name)} <${a.address}>` : a.address;
}

/** RFC 5322 §3.3 date-time, always in UTC: `Thu, 13 Jun 2024 08:00:00 +0000`. */
export function formatDate(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/** One header field, folded at white space to 76 characters (RFC 5322 §2.2.3; hard limit 998, §2.1.1). */
function field(name: string, value: string): string {
  return foldLines(`${name}: ${value}`, 76);
}

export interface Part<Body = string> {
  headers: string[];
  /** Encoded body, CRLF line ends, no trailing CRLF. */
  body: Body;
}

/** Is any line longer than 76 characters (RFC 2045 §6.7 / RFC 5322 §2.1.1 recommend at most 78)? */
function hasLongLine(value: string): boolean {
  let start = 0;
  for (;;) {
    const end = value.indexOf('\n', start);
    const lineEnd = end < 0 ? value.length : end > start && value.charCodeAt(end - 1) === 13 ? end - 1 : end;
    if (lineEnd - start > 76) return true;
    if (end < 0) return false;
    start = end + 1;
  }
}

/** Base64 in lines of 76 (RFC 2045 §6.8). */
export function base64Lines(content: Buffer): string {
  const b64 = content.toString('base64');
  if (b64.length <= 76) return b64;
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join(CRLF);
}
const SEVEN_BIT_TEXT = /^[\x20-\x7e\t\r\n]*$/;

/**
 * A text part: 7bit when it is short-lined printable ASCII, else quoted-printable (mostly Latin) or base64.
 * Line ends become CRLF first, so nothing depends on the platform (RFC 5322 §2.3: no bare CR or LF).
 */
export function textPart(content: string, subtype: 'plain' | 'html'): Part {
  const lf = content.includes('\r') ? content.replace(/\r\n?/g, '\n') : content;
  const text = lf.replace(/\n/g, CRLF);
  const headers = [`Content-Type: text/${subtype}; charset=utf-8`];
  if (SEVEN_BIT_TEXT.test(text) && !hasLongLine(text)) {
    headers.push('Content-Transfer-Encoding: 7bit');
    return { headers, body: text };
  }
  if (wordEncoding(text) === 'Q') {
    headers.push('Content-Transfer-Encoding: quoted-printable');
    return { headers, body: qpWrap(qpEncode(Buffer.from(text, 'utf8')), 76) };
  }
  headers.push('Content-Transfer-Encoding: base64');
  return { headers, body: base64Lines(Buffer.from(text, 'utf8')) };
}

/** The part headers of an attachment or inline image; its body is always base64. */
export function attachmentHeaders(a: MimeAttachment): string[] {
  const type = (a.contentType ?? contentTypeFor(a.filename)).replace(/[^\w.+/-]/g, '') || 'application/octet-stream';
  // `name=` as an RFC 2047 word for clients that ignore Content-Disposition (as nodemailer does); the
  // authoritative name is `filename` in Content-Disposition, RFC 2231-encoded by buildHeaderValue.
  let name = PRINTABLE_ASCII.test(a.filename)
    ? a.filename
    : encodeWords(a.filename, wordEncoding(a.filename), 52, true);
  if (name !== a.filename || /[\s'"\\;:/=(),<>@[\]?]|^-/.test(name)) name = JSON.stringify(name);
  const headers = [
    field('Content-Type', `${buildHeaderValue({ value: type, params: { ...a.params } })}; name=${name}`),
    'Content-Transfer-Encoding: base64',
    field(
      'Content-Disposition',
      buildHeaderValue({
        value: a.contentId === undefined ? 'attachment' : 'inline',
        params: { filename: a.filename },
      }),
    ),
  ];
  if (a.contentId !== undefined) headers.push(field('Content-ID', `<${a.contentId}>`));
  if (a.symphonyId) headers.push(field('X-Symphony-Attachment-Id', encodeUnstructured(a.symphonyId)));
  return headers;
}

function inMemory(a: MimeAttachment): Buffer {
  if (!Buffer.isBuffer(a.content)) throw new TypeError(`attachment ${a.filename} is in a file; use composeMimeStream`);
  return a.content;
}

/** `multipart/related` names the type of its root part, the HTML (RFC 2387 §3.1: `type` is required). */
export function multipartHeader(subtype: string, boundary: string): string {
  const type = subtype === 'related' ? '; type="text/html"' : '';
  return field('Content-Type', `multipart/${subtype}${type}; boundary="${boundary}"`);
}

/** A multipart entity: its own header fields, its boundary and its parts (leaves or multiparts again). */
export interface Multipart<Body = string> {
  headers: string[];
  boundary: string;
  parts: (Part<Body | string> | Multipart<Body>)[];
}

export function isMultipart<Body>(p: Part<Body | string> | Multipart<Body>): p is Multipart<Body> {
  return 'parts' in p;
}

/**
 * The message's MIME tree, given the encoded text bodies and the encoded attachments in the order of
 * `attachments` (RFC 2046 §5.1.3 mixed, §5.1.4 alternative; RFC 2387 related). Inline images follow the HTML
 * inside its multipart/related; the other attachments follow the alternative bodies.
 */
export function mimeTree<Body>(
  bodies: readonly [Part, Part],
  attachments: readonly MimeAttachment[],
  encoded: readonly Part<Body | string>[],
  base: string,
): Multipart<Body> {
  const b = boundaries(base);
  const inline = encoded.filter((_, i) => attachments[i]!.contentId !== undefined);
  const html: Part | Multipart<Body> =
    inline.length === 0
      ? bodies[1]
      : { headers: [multipartHeader('related', b.related)], boundary: b.related, parts: [bodies[1], ...inline] };
  const alternative: Multipart<Body> = {
    headers: [multipartHeader('alternative', b.alternative)],
    boundary: b.alternative,
    parts: [bodies[0], html],
  };
  return {
    headers: [multipartHeader('mixed', b.mixed)],
    boundary: b.mixed,
    parts: [alternative, ...encoded.filter((_, i) => attachments[i]!.contentId === undefined)],
  };
}

/**
 * The body of a multipart held in memory (RFC 2046 §5.1.1): each part after a delimiter line, then the close
 * delimiter.
 */
function serialise(node: Multipart): string {
  const body: string[] = [];
  for (const p of node.parts) {
    body.push(
      `--${node.boundary}${CRLF}${p.headers.join(CRLF)}${CRLF}${CRLF}`,
      isMultipart(p) ? serialise(p) : p.body,
      CRLF,
    );
  }
  body.push(`--${node.boundary}--`);
  return body.join('');
}

/**
 * The boundary is a hash over the whole content, not only the message id: a sender who could predict it
 * could otherwise place the delimiter line inside a 7bit body part (RFC 2046 §5.1.1 requires that the
 * boundary not occur in the encapsulated parts). The check below makes that a guarantee, not a likelihood.
 */
function boundaryBase(input: MimeInput, parts: readonly Part[]): string {
  const h = createHash('sha256').update(input.messageId);
  for (const p of parts) h.update('\0').update(p.body);
  for (let salt = 0; ; salt++) {
    const base = saltedBase(h, salt);
    if (!parts.some((p) => p.body.includes(base))) return base;
  }
}

/** Candidate `salt` for the boundary of the content hashed into `h`: 32 hex digits. */
export function saltedBase(h: Hash, salt: number): string {
  return h.copy().update(String(salt)).digest('hex').slice(0, 32);
}

/** Boundaries of the multipart/mixed root, the multipart/alternative bodies and the HTML's multipart/related. */
export function boundaries(base: string): { mixed: string; alternative: string; related: string } {
  return { mixed: `--_sym-${base}-Part_1`, alternative: `--_sym-${base}-Part_2`, related: `--_sym-${base}-Part_3` };
}

/** Serialises the message in memory; every attachment must be a Buffer. */
export function composeMime(input: MimeInput): Buffer {
  const bodies = [textPart(input.text, 'plain'), textPart(input.html, 'html')] as const;
  const attachments = input.attachments.map((a) => ({ headers: attachmentHeaders(a), body: base64Lines(inMemory(a)) }));
  const base = boundaryBase(input, [...bodies, ...attachments]);
  const root = mimeTree(bodies, input.attachments, attachments, base);
  return Buffer.from(
    `${messageHeaders(input, root.headers).join(CRLF)}${CRLF}${CRLF}${serialise(root)}${CRLF}`,
    'utf8',
  );
}

/** The message's own header fields, the root part's Content-Type last. */
export function messageHeaders(input: MimeInput, rootHeaders: readonly string[]): string[] {
  const headers = [
    field('From', formatAddress(input.from)),
    field('To', input.to.map(formatAddress).join(', ')),
    field('Subject', encodeUnstructured(input.subject)),
    field('Date', formatDate(input.date)),
    field('Message-ID', `<${input.messageId}>`),
  ];
  if (input.inReplyTo) headers.push(field('In-Reply-To', `<${input.inReplyTo}>`));
  if (input.references?.length) headers.push(field('References', input.references.map((r) => `<${r}>`).join(' ')));
  for (const [name, value] of input.headers) headers.push(field(name, encodeUnstructured(value)));
  headers.push('MIME-Version: 1.0', ...rootHeaders);
  return headers;
}
