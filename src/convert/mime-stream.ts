/**
 * The streaming form of mime.ts `composeMime`, for messages with attachments in files (downloads too large to
 * hold, symphony-api.md §2.6). Headers and text parts are built in memory as there; each file is base64-encoded
 * in lines of 76 (RFC 2045 §6.8) a block at a time while the message is written, so memory does not grow with
 * the attachment. The bytes are those `composeMime` gives for the same content in memory: the boundary is the
 * same hash over every part's encoded body, which costs one extra read of each file before the first byte.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  CRLF,
  attachmentHeaders,
  base64Lines,
  composeMime,
  isMultipart,
  messageHeaders,
  mimeTree,
  saltedBase,
  textPart,
  type MimeFile,
  type MimeInput,
  type Multipart,
  type Part,
} from './mime.ts';

/**
 * 57 bytes are one 76-character base64 line; a block is a whole number of lines, 58 KB in and 78 KB out. Larger
 * blocks cost memory, not speed: their strings go to V8's large-object space and wait there for a full collection.
 */
const LINE_BYTES = 57;
const BLOCK_BYTES = LINE_BYTES * 1024;
/**
 * A boundary base is 32 hex digits, so it can occur in a base64 body only inside a run of at least 32 of them on
 * one line. Such runs are recorded while the body is hashed; past this many the file is searched again instead.
 */
const HEX_RUN = /[0-9a-f]{32,}/g;
const MAX_HEX_RUNS = 64;

export interface MimeStream {
  /** Exact length of the message in bytes. */
  size: number;
  /** The whole message, when every attachment was in memory. */
  raw: Buffer | undefined;
  /** The message's bytes in order; each call reads the files again. */
  chunks(): AsyncIterable<Buffer>;
}

/** Length of mime.ts `base64Lines` for `size` bytes: 4 characters per 3 bytes, CRLF between lines of 76. */
export function base64Length(size: number): number {
  if (size === 0) return 0;
  const chars = 4 * Math.ceil(size / 3);
  return chars + 2 * (Math.ceil(chars / 76) - 1);
}

/** One block of base64 lines, preceded by the CRLF that ends the previous block's last line unless it is the first. */
function encodeBlock(block: Buffer, first: boolean): Buffer {
  const b64 = Buffer.from(block.toString('base64'), 'latin1');
  const lines = Math.ceil(b64.length / 76);
  const out = Buffer.allocUnsafe(b64.length + 2 * (lines - 1) + (first ? 0 : 2));
  let at = 0;
  for (let i = 0; i < b64.length; i += 76) {
    if (i > 0 || !first) {
      out[at++] = 13;
      out[at++] = 10;
    }
    at += b64.copy(out, at, i, Math.min(i + 76, b64.length));
  }
  return out;
}

/** The base64 body of a file, block by block; fails unless the file holds exactly `file.size` bytes. */
export async function* encodeFile(file: MimeFile): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let read = 0;
  let first = true;
  for await (const chunk of createReadStream(file.path, { highWaterMark: BLOCK_BYTES }) as AsyncIterable<Buffer>) {
    read += chunk.length;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes < BLOCK_BYTES) continue;
    const all = pending.length === 1 ? chunk : Buffer.concat(pending);
    const whole = all.length - (all.length % LINE_BYTES);
    yield encodeBlock(all.subarray(0, whole), first);
    first = false;
    pending = whole < all.length ? [all.subarray(whole)] : [];
    pendingBytes = all.length - whole;
  }
  if (read !== file.size) throw new Error(`attachment file ${file.path} has ${read} bytes, expected ${file.size}`);
  if (pendingBytes > 0) yield encodeBlock(Buffer.concat(pending), first);
}

/** Hashes the file's base64 body into `h`; returns its runs of 32+ hex digits, or undefined past MAX_HEX_RUNS. */
async function hashFile(file: MimeFile, h: ReturnType<typeof createHash>): Promise<string[] | undefined> {
  let runs: string[] | undefined = [];
  for await (const block of encodeFile(file)) {
    h.update(block);
    if (!runs) continue;
    for (const [run] of block.toString('latin1').matchAll(HEX_RUN)) {
      runs.push(run);
      if (runs.length > MAX_HEX_RUNS) {
        runs = undefined;
        break;
      }
    }
  }
  return runs;
}

async function fileContains(file: MimeFile, runs: string[] | undefined, base: string): Promise<boolean> {
  if (runs) return runs.some((run) => run.includes(base));
  // Blocks start with the CRLF before their first line, so no occurrence spans two of them.
  for await (const block of encodeFile(file)) if (block.includes(base, 0, 'latin1')) return true;
  return false;
}

/**
 * The message as a stream. Without files it is `composeMime`'s Buffer; with them, every file is read once here
 * (for the boundary) and again by each call of `chunks()`.
 */
export async function composeMimeStream(input: MimeInput): Promise<MimeStream> {
  if (input.attachments.every((a) => Buffer.isBuffer(a.content))) {
    const raw = composeMime(input);
    return {
      size: raw.length,
      raw,
      chunks: async function* () {
        yield raw;
      },
    };
  }
  const bodies = [textPart(input.text, 'plain'), textPart(input.html, 'html')] as const;
  const attachments: Part<string | MimeFile>[] = input.attachments.map((a) => ({
    headers: attachmentHeaders(a),
    body: Buffer.isBuffer(a.content) ? base64Lines(a.content) : a.content,
  }));

  // Same hash and candidate order as mime.ts `boundaryBase`.
  const h = createHash('sha256').update(input.messageId);
  const texts: string[] = [];
  const files: { file: MimeFile; runs: string[] | undefined }[] = [];
  for (const { body } of [...bodies, ...attachments]) {
    h.update('\0');
    if (typeof body === 'string') {
      h.update(body);
      texts.push(body);
    } else files.push({ file: body, runs: await hashFile(body, h) });
  }
  const inFiles = async (base: string): Promise<boolean> => {
    for (const { file, runs } of files) if (await fileContains(file, runs, base)) return true;
    return false;
  };
  let base = saltedBase(h, 0);
  for (let salt = 1; texts.some((t) => t.includes(base)) || (await inFiles(base)); salt++) base = saltedBase(h, salt);

  // The tree written out as mime.ts `composeMime` writes it, with each file left as a segment of its own.
  const root = mimeTree<MimeFile>(bodies, input.attachments, attachments, base);
  const segments: (Buffer | MimeFile)[] = [];
  let text = `${messageHeaders(input, root.headers).join(CRLF)}${CRLF}${CRLF}`;
  const write = (node: Multipart<MimeFile>): void => {
    for (const part of node.parts) {
      text += `--${node.boundary}${CRLF}${part.headers.join(CRLF)}${CRLF}${CRLF}`;
      if (isMultipart(part)) write(part);
      else if (typeof part.body === 'string') text += part.body;
      else {
        segments.push(Buffer.from(text, 'utf8'), part.body);
        text = '';
      }
      text += CRLF;
    }
    text += `--${node.boundary}--`;
  };
  write(root);
  segments.push(Buffer.from(`${text}${CRLF}`, 'utf8'));
  return {
    size: segments.reduce((n, s) => n + (Buffer.isBuffer(s) ? s.length : base64Length(s.size)), 0),
    raw: undefined,
    chunks: async function* () {
      for (const segment of segments) {
        if (Buffer.isBuffer(segment)) yield segment;
        else yield* encodeFile(segment);
      }
    },
  };
}
