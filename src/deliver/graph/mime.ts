import { createHash } from 'node:crypto';

/**
 * RFC 2045–2047/2231 reading of a rendered item, keeping byte offsets so parts can be cut out and replaced without
 * touching the other bytes. Used for the v1.0 JSON route (Graph rebuilds the item from properties, destinations.md
 * §1.1 route B) and for stubbing attachments of an item too large for the mailbox.
 */
export interface Header {
  name: string;
  value: string;
}

export interface ContentType {
  /** Lower-case `type/subtype`. */
  mediaType: string;
  params: Record<string, string>;
}

export interface MimePart {
  /** Offset of the first header byte. */
  start: number;
  bodyStart: number;
  /** End of the body (exclusive), before the line break that precedes the next boundary. */
  end: number;
  headers: Header[];
  contentType: ContentType;
  disposition: { type: string; params: Record<string, string> } | undefined;
  encoding: string;
  children: MimePart[];
}

export interface Address {
  name: string;
  address: string;
}

export interface ExtractedAttachment {
  name: string;
  contentType: string;
  content: Buffer;
  isInline: boolean;
  contentId: string | undefined;
}

export interface ExtractedMessage {
  subject: string;
  from: Address | undefined;
  to: Address[];
  cc: Address[];
  replyTo: Address[];
  date: Date | undefined;
  messageId: string | undefined;
  inReplyTo: string | undefined;
  references: string | undefined;
  body: { contentType: 'html' | 'text'; content: string };
  attachments: ExtractedAttachment[];
  /** `x-` headers, the only ones Graph lets a JSON create carry (destinations.md §1.2). */
  xHeaders: Header[];
}

export function headerEnd(raw: Buffer, from: number, limit: number): { end: number; bodyStart: number } {
  // A part that starts with a blank line has no headers (RFC 2046 §5.1.1: default text/plain).
  if (raw[from] === 0x0d && raw[from + 1] === 0x0a) return { end: from, bodyStart: from + 2 };
  if (raw[from] === 0x0a) return { end: from, bodyStart: from + 1 };
  for (let i = from; i < limit; i++) {
    if (raw[i] !== 0x0a) continue;
    if (raw[i + 1] === 0x0a) return { end: i + 1, bodyStart: i + 2 };
    if (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a) return { end: i + 1, bodyStart: i + 3 };
  }
  return { end: limit, bodyStart: limit };
}

function parseHeaderBlock(text: string): Header[] {
  const headers: Header[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue;
    if (/^[ \t]/.test(line) && headers.length > 0) {
      (headers[headers.length - 1] as Header).value += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon > 0) headers.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() });
  }
  return headers;
}

export function headerValue(headers: Header[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower)?.value;
}

function decodeBytes(bytes: Buffer, charset: string): string {
  try {
    return new TextDecoder(charset.trim().toLowerCase() || 'utf-8').decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** RFC 2231 §3–4: `name*0*=utf-8''a%20b; name*1*=…` and plain `name="…"`. */
export function parseParams(text: string): { value: string; params: Record<string, string> } {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '\\' && quoted) {
      current += text[++i] ?? '';
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === ';' && !quoted) {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  parts.push(current);
  const value = (parts.shift() ?? '').trim().toLowerCase();
  const simple: Record<string, string> = {};
  const extended = new Map<string, { index: number; encoded: boolean; text: string }[]>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    let val = part.slice(eq + 1).trim();
    if (val.startsWith('"') && val.endsWith('"') && val.length >= 2) val = val.slice(1, -1);
    const m = /^([^*]+)(?:\*(\d+))?(\*)?$/.exec(key);
    if (!m) continue;
    if (m[2] === undefined && m[3] === undefined) {
      simple[m[1] as string] = val;
      continue;
    }
    const list = extended.get(m[1] as string) ?? [];
    list.push({ index: Number(m[2] ?? 0), encoded: m[3] !== undefined, text: val });
    extended.set(m[1] as string, list);
  }
  for (const [key, list] of extended) {
    list.sort((a, b) => a.index - b.index);
    let charset = 'utf-8';
    const bytes: number[] = [];
    for (const [i, seg] of list.entries()) {
      let text = seg.text;
      if (seg.encoded && i === 0) {
        const q = /^([^']*)'[^']*'(.*)$/.exec(text);
        if (q) {
          charset = q[1] || 'utf-8';
          text = q[2] as string;
        }
      }
      if (seg.encoded) {
        for (let j = 0; j < text.length; j++) {
          if (text[j] === '%' && /^[0-9a-fA-F]{2}$/.test(text.slice(j + 1, j + 3))) {
            bytes.push(parseInt(text.slice(j + 1, j + 3), 16));
            j += 2;
          } else bytes.push(...Buffer.from(text[j] as string, 'utf8'));
        }
      } else bytes.push(...Buffer.from(text, 'utf8'));
    }
    simple[key] = decodeBytes(Buffer.from(bytes), charset);
  }
  return { value, params: simple };
}

/** RFC 2047 encoded words; whitespace between adjacent encoded words is dropped (§6.2). */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[bBqQ]\?[^?]*\?=)\s+(?==\?[^?]+\?[bBqQ]\?[^?]*\?=)/g, '$1')
    .replace(/=\?([^?*]+)(?:\*[^?]*)?\?([bBqQ])\?([^?]*)\?=/g, (_m, charset: string, enc: string, data: string) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : Buffer.from(
              data
                .replace(/_/g, ' ')
                .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))),
              'latin1',
            );
      return decodeBytes(bytes, charset);
    });
}

function findDelimiters(
  raw: Buffer,
  boundary: string,
  from: number,
  limit: number,
): { at: number; next: number; close: boolean }[] {
  const delim = Buffer.from('--' + boundary, 'latin1');
  const found: { at: number; next: number; close: boolean }[] = [];
  let pos = from;
  while (pos < limit) {
    const at = raw.indexOf(delim, pos);
    if (at < 0 || at >= limit) break;
    const atLineStart = at === from || raw[at - 1] === 0x0a;
    let i = at + delim.length;
    const close = raw[i] === 0x2d && raw[i + 1] === 0x2d;
    if (close) i += 2;
    while (raw[i] === 0x20 || raw[i] === 0x09) i++;
    const lineEnds = i >= limit || raw[i] === 0x0a || (raw[i] === 0x0d && raw[i + 1] === 0x0a);
    if (atLineStart && lineEnds) {
      const next = raw[i] === 0x0d ? i + 2 : raw[i] === 0x0a ? i + 1 : i;
      found.push({ at, next, close });
      if (close) break;
      pos = next;
    } else pos = at + 1;
  }
  return found;
}

function lineBreakBefore(raw: Buffer, at: number, min: number): number {
  if (at - 2 >= min && raw[at - 2] === 0x0d && raw[at - 1] === 0x0a) return at - 2;
  if (at - 1 >= min && raw[at - 1] === 0x0a) return at - 1;
  return at;
}

function parsePart(raw: Buffer, start: number, limit: number, depth: number): MimePart {
  const { end: hEnd, bodyStart } = headerEnd(raw, start, limit);
  const headers = parseHeaderBlock(raw.subarray(start, hEnd).toString('utf8'));
  const ct = parseParams(headerValue(headers, 'content-type') ?? 'text/plain; charset=us-ascii');
  const cd = headerValue(headers, 'content-disposition');
  const part: MimePart = {
    start,
    bodyStart,
    end: limit,
    headers,
    contentType: { mediaType: ct.value || 'text/plain', params: ct.params },
    disposition: cd ? (({ value, params }) => ({ type: value, params }))(parseParams(cd)) : undefined,
    encoding: (headerValue(headers, 'content-transfer-encoding') ?? '7bit').trim().toLowerCase(),
    children: [],
  };
  const boundary = ct.params.boundary;
  if (part.contentType.mediaType.startsWith('multipart/') && boundary && depth < 32) {
    const delims = findDelimiters(raw, boundary, bodyStart, limit);
    for (let i = 0; i < delims.length; i++) {
      const d = delims[i] as { at: number; next: number; close: boolean };
      if (d.close) break;
      const following = delims[i + 1];
      const partEnd = following ? lineBreakBefore(raw, following.at, d.next) : limit;
      part.children.push(parsePart(raw, d.next, partEnd, depth + 1));
    }
  }
  return part;
}

export function parseMime(raw: Buffer): MimePart {
  return parsePart(raw, 0, raw.length, 0);
}

export function decodeQuotedPrintable(data: Buffer): Buffer {
  const out = Buffer.alloc(data.length);
  let n = 0;
  for (let i = 0; i < data.length; i++) {
    const b = data[i] as number;
    if (b !== 0x3d) {
      out[n++] = b;
      continue;
    }
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) i += 2;
    else if (data[i + 1] === 0x0a) i += 1;
    else {
      const hex = data.subarray(i + 1, i + 3).toString('latin1');
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        out[n++] = parseInt(hex, 16);
        i += 2;
      } else out[n++] = b;
    }
  }
  return out.subarray(0, n);
}

export function partContent(raw: Buffer, part: MimePart): Buffer {
  const data = raw.subarray(part.bodyStart, part.end);
  if (part.encoding === 'base64') return Buffer.from(data.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (part.encoding === 'quoted-printable') return decodeQuotedPrintable(data);
  return Buffer.from(data);
}

function partText(raw: Buffer, part: MimePart): string {
  return decodeBytes(partContent(raw, part), part.contentType.params.charset ?? 'utf-8');
}

export function fileName(part: MimePart): string | undefined {
  const name = part.disposition?.params.filename ?? part.contentType.params.name;
  return name === undefined ? undefined : decodeWords(name);
}

function isAttachment(part: MimePart): boolean {
  if (part.children.length > 0) return false;
  if (part.disposition?.type === 'attachment') return true;
  if (fileName(part) !== undefined) return true;
  return !part.contentType.mediaType.startsWith('text/');
}

/** RFC 5322 address lists (`"Name" <a@b>, c@d, group: e@f;`), display names RFC 2047-decoded. */
export function parseAddressList(value: string | undefined): Address[] {
  if (!value) return [];
  const out: Address[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  let comment = 0;
  const flush = (): void => {
    const part = current.trim();
    current = '';
    if (!part) return;
    const m = /^(.*?)<([^>]*)>\s*$/.exec(part);
    const rawName = m ? (m[1] as string).trim() : '';
    const name = decodeWords(rawName.replace(/^"(.*)"$/s, '$1').replace(/\\(.)/g, '$1')).trim();
    const address = (m ? (m[2] as string) : part.replace(/\(.*\)/g, '')).trim();
    if (/^[^@\s]+@[^@\s]+$/.test(address)) out.push({ name: name || address, address });
  };
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (quoted && ch === '\\') {
      current += ch + (value[++i] ?? '');
      continue;
    }
    if (!quoted && !angle && ch === '(') comment += 1;
    if (!quoted && !angle && ch === ')' && comment > 0) comment -= 1;
    if (comment === 0 && ch === '"' && !angle) quoted = !quoted;
    else if (comment === 0 && ch === '<' && !quoted) angle = true;
    else if (comment === 0 && ch === '>' && !quoted) angle = false;
    if (comment === 0 && !quoted && !angle && (ch === ',' || ch === ';')) {
      flush();
      continue;
    }
    if (comment === 0 && !quoted && !angle && ch === ':') {
      current = '';
      continue;
    }
    current += ch;
  }
  flush();
  return out;
}

export interface Walk {
  html: MimePart | undefined;
  text: MimePart | undefined;
  attachments: { part: MimePart; inline: boolean }[];
}

export function walk(part: MimePart, acc: Walk, inRelated: boolean): void {
  const type = part.contentType.mediaType;
  if (part.children.length > 0) {
    if (type === 'multipart/related') {
      const [first, ...rest] = part.children;
      if (first) walk(first, acc, false);
      for (const r of rest) walk(r, acc, true);
      return;
    }
    for (const child of part.children) walk(child, acc, inRelated);
    return;
  }
  if (!isAttachment(part)) {
    if (type === 'text/html' && !acc.html) return void (acc.html = part);
    if (type === 'text/plain' && !acc.text) return void (acc.text = part);
  }
  if (type === 'message/rfc822' || isAttachment(part) || acc.html || acc.text) {
    acc.attachments.push({ part, inline: inRelated || part.disposition?.type === 'inline' });
  }
}

/** What a JSON create needs from the item: headers as properties, one body, the attachments decoded. */
export function extractMessage(raw: Buffer, root: MimePart = parseMime(raw)): ExtractedMessage {
  const h = root.headers;
  const acc: Walk = { html: undefined, text: undefined, attachments: [] };
  walk(root, acc, false);
  const bodyPart = acc.html ?? acc.text;
  const dateValue = headerValue(h, 'date');
  const date = dateValue === undefined ? undefined : new Date(dateValue);
  return {
    subject: decodeWords(headerValue(h, 'subject') ?? ''),
    from: parseAddressList(headerValue(h, 'from'))[0],
    to: parseAddressList(headerValue(h, 'to')),
    cc: parseAddressList(headerValue(h, 'cc')),
    replyTo: parseAddressList(headerValue(h, 'reply-to')),
    date: date && !Number.isNaN(date.getTime()) ? date : undefined,
    messageId: headerValue(h, 'message-id')?.trim(),
    inReplyTo: headerValue(h, 'in-reply-to')?.trim(),
    references: headerValue(h, 'references')?.trim(),
    body: bodyPart
      ? { contentType: bodyPart === acc.html ? 'html' : 'text', content: partText(raw, bodyPart) }
      : { contentType: 'text', content: '' },
    attachments: acc.attachments.map(({ part, inline }, i) => ({
      name:
        fileName(part) ??
        (part.contentType.mediaType === 'message/rfc822' ? `message-${i + 1}.eml` : `attachment-${i + 1}`),
      contentType: part.contentType.mediaType,
      content: partContent(raw, part),
      isInline: inline,
      contentId: headerValue(part.headers, 'content-id')?.replace(/^<|>$/g, ''),
    })),
    xHeaders: h.filter((x) => /^x-/i.test(x.name)).map((x) => ({ name: x.name, value: decodeWords(x.value) })),
  };
}

export interface StubbedAttachment {
  name: string;
  size: number;
  sha256: string;
}

export interface StubResult {
  raw: Buffer;
  stubbed: StubbedAttachment[];
}

function encodeFileNameParam(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const ext = encodeURIComponent(name).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  return `filename="${ascii}"; filename*=utf-8''${ext}`;
}

/**
 * Replaces the chosen attachment parts with short text/plain parts naming the file, its size and SHA-256 and where
 * the full item is kept; every other byte stays as it was (same Message-ID, so dedupe still finds the item).
 * `minBytes` 0 stubs every attachment.
 */
export function stubAttachments(
  raw: Buffer,
  minBytes: number,
  notice: (a: StubbedAttachment) => string,
  reason: string,
): StubResult {
  const root = parseMime(raw);
  const acc: Walk = { html: undefined, text: undefined, attachments: [] };
  walk(root, acc, false);
  const targets = acc.attachments
    .map(({ part }) => ({ part, content: partContent(raw, part) }))
    .filter(({ part, content }) => part !== root && content.length >= minBytes)
    .sort((a, b) => a.part.start - b.part.start);
  const stubbed: StubbedAttachment[] = [];
  const pieces: Buffer[] = [];
  let pos = 0;
  const crlf = raw.includes('\r\n') ? '\r\n' : '\n';
  const rootHeaderEnd = headerEnd(raw, 0, raw.length).end;
  pieces.push(raw.subarray(0, rootHeaderEnd), partialHeader(reason, crlf));
  pos = rootHeaderEnd;
  for (const { part, content } of targets) {
    const info: StubbedAttachment = {
      name: fileName(part) ?? 'attachment',
      size: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
    };
    stubbed.push(info);
    pieces.push(raw.subarray(pos, part.start), stubPart(info, notice(info), crlf));
    pos = part.end;
  }
  pieces.push(raw.subarray(pos));
  return { raw: Buffer.concat(pieces), stubbed };
}

/** The header field that marks a partially imported item, inserted at the end of its header section. */
export function partialHeader(reason: string, crlf: string): Buffer {
  return Buffer.from(`X-Symphony-Archiver-Partial: ${reason.replace(/[\r\n]+/g, ' ')}${crlf}`, 'utf8');
}

/** The text/plain part that takes a removed attachment's place. */
export function stubPart(info: StubbedAttachment, notice: string, crlf: string): Buffer {
  const text = Buffer.from(notice, 'utf8').toString('base64').replace(/.{76}/g, `$&${crlf}`);
  return Buffer.from(
    [
      'Content-Type: text/plain; charset=utf-8',
      `Content-Disposition: attachment; ${encodeFileNameParam(`${info.name} (removed).txt`)}`,
      'Content-Transfer-Encoding: base64',
      `X-Symphony-Archiver-Stub: size=${info.size}; sha256=${info.sha256}`,
      '',
      text,
    ].join(crlf),
    'utf8',
  );
}
