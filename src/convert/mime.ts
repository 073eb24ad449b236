/**
 * RFC 5322 / MIME composition through nodemailer's MailComposer (destinations.md §3). Output is made
 * byte-deterministic by fixing everything nodemailer would otherwise take from the clock or the RNG:
 * Message-ID, Date and the multipart boundary base; `newline: '\r\n'` makes 7bit parts CRLF too.
 */
import { createHash } from 'node:crypto';
import type Mail from 'nodemailer/lib/mailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { detectMimeType } from 'nodemailer/lib/mime-funcs';
import { cleanHeaderText, type MailAddress } from './headers.ts';

export interface MimeAttachment {
  filename: string;
  content: Buffer;
  contentType?: string;
  /** Symphony file id, kept in an `X-Symphony-Attachment-Id` part header. */
  symphonyId?: string;
}

export interface MimeInput {
  /** Without angle brackets. */
  messageId: string;
  date: Date;
  from: MailAddress;
  to: MailAddress[];
  subject: string;
  /** Header name → value, in the order they should appear. Values must already be header-safe. */
  headers: [string, string][];
  inReplyTo?: string;
  references?: string[];
  text: string;
  html: string;
  attachments: MimeAttachment[];
}

/** The Mail.Options nodemailer accepts but `@types/nodemailer` does not declare on it (they live on MimeNode). */
type ComposerOptions = Mail.Options & { baseBoundary: string; boundaryPrefix: string; newline: string };

/** RFC 2231 lets a parameter be arbitrarily long, but many clients and file systems stop at 255 bytes. */
const FILENAME_MAX_BYTES = 255;

/**
 * A file name fit for `Content-Disposition`: no path components (`../../x`, `C:\x`), no controls or bidi
 * overrides (reliability.md §3 rows 4, 6), at most 255 UTF-8 bytes with the extension kept.
 */
export function safeFilename(name: string | null | undefined, fallback: string): string {
  const base = cleanHeaderText((name ?? '').split(/[/\\]/).pop() ?? '').replace(/^[.\s]+/, '');
  if (!base) return fallback;
  if (Buffer.byteLength(base) <= FILENAME_MAX_BYTES) return base;
  const dot = base.lastIndexOf('.');
  const ext = dot > 0 && base.length - dot <= 16 ? base.slice(dot) : '';
  let stem = Array.from(base.slice(0, base.length - ext.length));
  while (stem.length > 0 && Buffer.byteLength(stem.join('') + '…' + ext) > FILENAME_MAX_BYTES) stem = stem.slice(0, -1);
  return stem.join('') + '…' + ext;
}

export function contentTypeFor(filename: string): string {
  const dot = filename.lastIndexOf('.');
  const ext = dot >= 0 ? filename.slice(dot + 1).toLowerCase() : '';
  return (ext && detectMimeType(ext)) || 'application/octet-stream';
}

/**
 * The boundary base is a hash over the whole content, not only the message id: a sender who could predict
 * it could otherwise place the delimiter line inside a 7bit body part (RFC 2046 §5.1.1 requires that the
 * boundary not occur in the encapsulated parts).
 */
function boundaryBase(input: MimeInput): string {
  const h = createHash('sha256');
  h.update(input.messageId).update('\0').update(input.text).update('\0').update(input.html);
  for (const a of input.attachments) h.update('\0').update(a.filename).update('\0').update(a.content);
  return h.digest('hex').slice(0, 32);
}

export async function composeMime(input: MimeInput): Promise<Buffer> {
  const options: ComposerOptions = {
    from: input.from,
    to: input.to,
    subject: input.subject,
    date: input.date,
    messageId: `<${input.messageId}>`,
    text: input.text,
    html: input.html,
    attachments: input.attachments.map((a) => ({
      filename: a.filename,
      content: a.content,
      contentType: a.contentType ?? contentTypeFor(a.filename),
      contentDisposition: 'attachment' as const,
      // base64 keeps every line at 76 octets whatever the content (RFC 5322 §2.1.1 998-octet limit).
      contentTransferEncoding: 'base64' as const,
      ...(a.symphonyId ? { headers: { 'X-Symphony-Attachment-Id': cleanHeaderText(a.symphonyId) } } : {}),
    })),
    baseBoundary: boundaryBase(input),
    boundaryPrefix: '--_sym',
    newline: '\r\n',
    // Attachments are Buffers only; never let a value be read as a path or URL.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  if (input.inReplyTo) options.inReplyTo = `<${input.inReplyTo}>`;
  if (input.references && input.references.length > 0) {
    options.references = input.references.map((r) => `<${r}>`);
  }
  const root = new MailComposer(options).compile();
  // Added after compile so they follow the standard fields; a fixed order keeps the bytes stable. Only
  // fixed names and cleaned values go in here (reliability.md §3 rows 1, 4).
  for (const [key, value] of input.headers) root.addHeader(key, value);
  return root.build();
}
