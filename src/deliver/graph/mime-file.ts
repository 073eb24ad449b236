import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import {
  decodeQuotedPrintable,
  fileName,
  headerEnd,
  parseMime,
  partialHeader,
  stubPart,
  walk,
  type MimePart,
  type StubbedAttachment,
  type Walk,
} from './mime.ts';

/**
 * Stubbing (mime.ts `stubAttachments`) for an item kept in a file because it is larger than Graph takes: its
 * structure is read without holding its attachments. The file is read once into a skeleton in which every long run
 * of full base64 lines (76 characters, RFC 2045 §6.8; the body of a large attachment) is one placeholder line.
 * Delimiter and header lines never look like that, so mime.ts's parser reads the skeleton as it would the item; the
 * runs are read from the file again only where their bytes are needed.
 */

/** Shorter runs stay in the skeleton: a placeholder must save more than it costs to map. */
const MIN_RUN_LINES = 64;
const PLACEHOLDER = Buffer.from('A'.repeat(76), 'latin1');
const CRLF = Buffer.from('\r\n');
const LF = Buffer.from('\n');
const BASE64_CHAR = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_CHAR[c.charCodeAt(0)] = 1;

/** A run of base64 lines replaced by {@link PLACEHOLDER} at `at` in the skeleton; `[from, to)` in the file. */
interface Run {
  at: number;
  from: number;
  to: number;
}

interface Skeleton {
  bytes: Buffer;
  runs: Run[];
}

function isBase64Line(line: Buffer, end: number): boolean {
  if (end !== 76) return false;
  for (let i = 0; i < 76; i++) if (!BASE64_CHAR[line[i]!]) return false;
  return true;
}

async function readSkeleton(path: string): Promise<Skeleton> {
  const out: Buffer[] = [];
  let outBytes = 0;
  const runs: Run[] = [];
  /** The current run: its first lines while it is too short to replace, then only where it started and ends. */
  let pending: Buffer[] = [];
  let runFrom = -1;
  let runLines = 0;
  let runTo = 0;
  let runBreak: Buffer = Buffer.alloc(0);
  const emit = (b: Buffer): void => {
    out.push(b);
    outBytes += b.length;
  };
  const endRun = (): void => {
    if (runLines >= MIN_RUN_LINES) {
      runs.push({ at: outBytes, from: runFrom, to: runTo });
      emit(PLACEHOLDER);
      emit(runBreak);
    } else for (const line of pending) emit(line);
    pending = [];
    runFrom = -1;
    runLines = 0;
  };
  let offset = 0;
  let partial: Buffer[] = [];
  const line = (bytes: Buffer): void => {
    const start = offset;
    offset += bytes.length;
    const brk = bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d ? 2 : bytes[bytes.length - 1] === 0x0a ? 1 : 0;
    if (brk > 0 && isBase64Line(bytes, bytes.length - brk)) {
      if (runFrom < 0) runFrom = start;
      runLines += 1;
      runTo = offset - brk;
      runBreak = brk === 2 ? CRLF : LF;
      // Copied, as is everything kept: a view would keep the whole read chunk alive.
      if (runLines < MIN_RUN_LINES) pending.push(Buffer.from(bytes));
      else pending = [];
      return;
    }
    endRun();
    emit(Buffer.from(bytes));
  };
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    let from = 0;
    for (let lf = chunk.indexOf(0x0a); lf >= 0; lf = chunk.indexOf(0x0a, from)) {
      const piece = chunk.subarray(from, lf + 1);
      line(partial.length ? Buffer.concat([...partial, piece]) : piece);
      partial = [];
      from = lf + 1;
    }
    if (from < chunk.length) partial.push(Buffer.from(chunk.subarray(from)));
  }
  if (partial.length) line(Buffer.concat(partial));
  endRun();
  return { bytes: Buffer.concat(out, outBytes), runs };
}

/** Skeleton range → the pieces that make it up: skeleton bytes, and file ranges where runs were replaced. */
function* pieces(s: Skeleton, from: number, to: number): Generator<Buffer | { from: number; to: number }> {
  let at = from;
  for (const run of s.runs) {
    if (run.at + PLACEHOLDER.length <= at) continue;
    if (run.at >= to) break;
    if (run.at > at) yield s.bytes.subarray(at, run.at);
    yield { from: run.from, to: run.to };
    at = run.at + PLACEHOLDER.length;
  }
  if (at < to) yield s.bytes.subarray(at, to);
}

/** Skeleton offset → file offset. Offsets the parser returns lie at line boundaries, never inside a placeholder. */
function fileOffset(s: Skeleton, at: number): number {
  let shift = 0;
  for (const run of s.runs) {
    if (run.at >= at) break;
    shift += run.to - run.from - PLACEHOLDER.length;
  }
  return at + shift;
}

/** Decoded size and SHA-256 of a part, as mime.ts `partContent` decodes it, reading replaced runs from the file. */
async function digest(path: string, s: Skeleton, part: MimePart): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  const take = (b: Buffer): void => {
    hash.update(b);
    size += b.length;
  };
  const base64 = part.encoding === 'base64';
  let quad = '';
  // Base64 is decoded four characters at a time across pieces; a run holds no `=`, so quoted-printable escapes and
  // soft breaks never cross into one and its bytes decode to themselves.
  const feed = (b: Buffer, inSkeleton: boolean): void => {
    if (!base64) return take(inSkeleton && part.encoding === 'quoted-printable' ? decodeQuotedPrintable(b) : b);
    const text = quad + b.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
    const whole = text.length - (text.length % 4);
    take(Buffer.from(text.slice(0, whole), 'base64'));
    quad = text.slice(whole);
  };
  for (const piece of pieces(s, part.bodyStart, part.end)) {
    if (Buffer.isBuffer(piece)) feed(piece, true);
    else
      for await (const chunk of createReadStream(path, {
        start: piece.from,
        end: piece.to - 1,
      }) as AsyncIterable<Buffer>)
        feed(chunk, false);
  }
  if (quad) take(Buffer.from(quad, 'base64'));
  return { size, sha256: hash.digest('hex') };
}

export interface FileStubResult {
  /** The stubbed item; undefined when it would still be larger than `maxBytes` (nothing was read for it). */
  raw: Buffer | undefined;
  size: number;
  stubbed: StubbedAttachment[];
}

/**
 * mime.ts `stubAttachments` for an item in a file: the same bytes, with no more than the stubbed item (at most
 * `maxBytes`) and the skeleton in memory.
 */
export async function stubAttachmentsInFile(
  file: { path: string; size: number },
  minBytes: number,
  notice: (a: StubbedAttachment) => string,
  reason: string,
  maxBytes: number,
): Promise<FileStubResult> {
  const skeleton = await readSkeleton(file.path);
  const root = parseMime(skeleton.bytes);
  const acc: Walk = { html: undefined, text: undefined, attachments: [] };
  walk(root, acc, false);
  const targets: { part: MimePart; info: StubbedAttachment }[] = [];
  for (const { part } of acc.attachments.sort((a, b) => a.part.start - b.part.start)) {
    if (part === root) continue;
    const { size, sha256 } = await digest(file.path, skeleton, part);
    if (size >= minBytes) targets.push({ part, info: { name: fileName(part) ?? 'attachment', size, sha256 } });
  }
  const crlf = skeleton.bytes.includes('\r\n') ? '\r\n' : '\n';
  const layout: (Buffer | { from: number; to: number })[] = [];
  const range = (from: number, to: number) => ({ from: fileOffset(skeleton, from), to: fileOffset(skeleton, to) });
  let pos = headerEnd(skeleton.bytes, 0, skeleton.bytes.length).end;
  layout.push(range(0, pos), partialHeader(reason, crlf));
  for (const { part, info } of targets) {
    layout.push(range(pos, part.start), stubPart(info, notice(info), crlf));
    pos = part.end;
  }
  layout.push({ from: fileOffset(skeleton, pos), to: file.size });
  const stubbed = targets.map((t) => t.info);
  const size = layout.reduce((n, p) => n + (Buffer.isBuffer(p) ? p.length : p.to - p.from), 0);
  if (size > maxBytes) return { raw: undefined, size, stubbed };
  const raw = Buffer.alloc(size);
  const fh = await open(file.path, 'r');
  try {
    let at = 0;
    for (const p of layout) {
      if (Buffer.isBuffer(p)) at += p.copy(raw, at);
      else {
        for (let read = 0; read < p.to - p.from;) {
          const { bytesRead } = await fh.read(raw, at + read, p.to - p.from - read, p.from + read);
          if (bytesRead === 0) throw new Error(`${file.path} ended before byte ${p.to}`);
          read += bytesRead;
        }
        at += p.to - p.from;
      }
    }
  } finally {
    await fh.close();
  }
  return { raw, size, stubbed };
}
