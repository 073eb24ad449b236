import { AppError } from '../../core/errors.ts';

const SEPARATORS = /\\n|[ \t\r\n\f\v]/g;
const NOT_ALPHABET = /[^A-Za-z0-9+/_-]/;
const TAIL = /^(={0,2})("?)$/;

/**
 * The attachment body (symphony-api.md §2.6: "Attachment body as Base64 encoded string"), decoded as it arrives:
 * the standard or the URL-safe alphabet (§2.1), possibly as a JSON string, with white space and `\n` escapes
 * anywhere. Anything else fails: lenient decoding would turn a proxy's HTML error page into a file. The decoded
 * bytes are counted against `size` (the message's attachment metadata, when given), failing as soon as there
 * are more and at the end when there are fewer. Failures are retryable `ERR_SOURCE_ATTACHMENT`s.
 */
export async function* decodeAttachment(
  body: AsyncIterable<Uint8Array>,
  where: string,
  size?: number,
): AsyncGenerator<Buffer> {
  const fail = (detail: string) => new AppError('ERR_SOURCE_ATTACHMENT', `${where}: ${detail}`, { retryable: true });
  const notBase64 = (at: number) => fail(`body is not base64 (at byte ${at})`);
  const wrongSize = (n: number, more: boolean) =>
    fail(`the body decodes to ${more ? 'more than ' : ''}${n} bytes, the message says ${size}`);
  let read = 0;
  let decoded = 0;
  let chars = 0;
  /** Alphabet characters not yet decoded (fewer than four). */
  let carry = '';
  /** Padding and the closing quote: nothing may follow them. */
  let tail = '';
  let started = false;
  let quoted = false;
  let backslash = false;
  const emit = (quads: string): Buffer => {
    const bytes = Buffer.from(quads, 'base64');
    decoded += bytes.length;
    if (size !== undefined && decoded > size) throw wrongSize(size, true);
    return bytes;
  };
  for await (const chunk of body) {
    const at = read;
    read += chunk.length;
    let text: string =
      (backslash ? '\\' : '') + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('latin1');
    // A `\` that ends a chunk may be the first half of a `\n`.
    backslash = text.endsWith('\\');
    if (backslash) text = text.slice(0, -1);
    text = text.replace(SEPARATORS, '');
    if (!text) continue;
    if (!started) {
      started = true;
      quoted = text.startsWith('"');
      if (quoted) text = text.slice(1);
    }
    if (tail) {
      tail += text;
      if (!TAIL.test(tail)) throw notBase64(at);
      continue;
    }
    const bad = NOT_ALPHABET.exec(text);
    if (bad) {
      tail = text.slice(bad.index);
      text = text.slice(0, bad.index);
      if (!TAIL.test(tail)) throw notBase64(at);
    }
    chars += text.length;
    text = carry + text;
    const whole = text.length - (text.length % 4);
    carry = text.slice(whole);
    if (whole > 0) yield emit(text.slice(0, whole));
  }
  const quote = TAIL.exec(tail)?.[2];
  if (backslash || quoted !== (quote === '"') || chars % 4 === 1) throw notBase64(read);
  if (carry) yield emit(carry);
  if (size !== undefined && decoded !== size) throw wrongSize(decoded, false);
}
