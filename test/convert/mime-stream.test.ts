import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { createSymphonyMimeConverter } from '../../src/convert/index.ts';
import { composeMime, type MimeAttachment, type MimeInput } from '../../src/convert/mime.ts';
import { base64Length, composeMimeStream } from '../../src/convert/mime-stream.ts';
import { isAppError } from '../../src/core/errors.ts';
import type { AttachmentContent } from '../../src/core/types.ts';
import { assertWireFormat, fixtureNames, loadFixture, propertyParams } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'mime-stream-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function toFile(content: Buffer): { path: string; size: number } {
  const path = join(dir, `f${files++}`);
  writeFileSync(path, content);
  return { path, size: content.length };
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return Buffer.concat(out);
}

const base: Omit<MimeInput, 'attachments'> = {
  messageId: 'sym.stream@archive.example',
  date: new Date(Date.UTC(2024, 5, 13, 8)),
  from: { name: 'Zoë Ångström', address: 'zoe@bank.example' },
  to: [{ name: 'Bob', address: 'bob@bank.example' }],
  subject: 'Quarterly files',
  headers: [['X-Symphony-Message-Id', 'abc']],
  text: 'see the files\n',
  html: '<p>see the files</p>',
};

/** The same message composed in memory and streamed with the chosen attachments in files. */
async function bothWays(attachments: MimeAttachment[], inFiles: (i: number) => boolean) {
  const memory = composeMime({ ...base, attachments });
  const streamed = await composeMimeStream({
    ...base,
    attachments: attachments.map((a, i) => (inFiles(i) ? { ...a, content: toFile(a.content as Buffer) } : a)),
  });
  return { memory, streamed, bytes: await collect(streamed.chunks()) };
}

describe('composeMimeStream', () => {
  it('writes the bytes composeMime writes, for sizes around every line and block boundary', async () => {
    for (const size of [
      0,
      1,
      2,
      3,
      56,
      57,
      58,
      75,
      76,
      77,
      57 * 1024 - 1,
      57 * 1024,
      57 * 1024 + 1,
      3 * 57 * 1024 + 5,
    ]) {
      const { memory, streamed, bytes } = await bothWays(
        [
          { filename: 'a.bin', content: randomBytes(size) },
          { filename: 'note.txt', content: Buffer.from('in memory') },
        ],
        (i) => i === 0,
      );
      assert.ok(bytes.equals(memory), `${size} bytes`);
      assert.equal(streamed.size, memory.length);
      assert.equal(streamed.raw, undefined);
      assert.equal(assertWireFormat(bytes), undefined);
    }
  });

  it('matches for any mix of files and buffers, inline parts or not, and reads the files again on every call', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 200_000 }), fc.boolean(), fc.boolean()), {
          minLength: 1,
          maxLength: 4,
        }),
        async (specs) => {
          // An inline part (a Content-ID) goes into the HTML's multipart/related, wherever it is in the list.
          const attachments = specs.map(([size, , inline], i) => ({
            filename: `f${i}.bin`,
            content: randomBytes(size),
            ...(inline ? { contentId: `f${i}.sym.stream@archive.example` } : {}),
          }));
          const { memory, streamed, bytes } = await bothWays(attachments, (i) => specs[i]![1]);
          assert.ok(bytes.equals(memory));
          assert.ok((await collect(streamed.chunks())).equals(memory), 'a second read gives the same bytes');
        },
      ),
      propertyParams(25),
    );
  });

  it('picks the same boundary when attachment bodies are full of hex digits that could hold it', async () => {
    // Base64 text of only [0-9a-f]: runs of 76 hex digits on every line, past what is kept while hashing.
    const hexText = Buffer.from('0123456789abcdef'.repeat(57 * 20), 'base64');
    const { memory, bytes } = await bothWays([{ filename: 'hex.bin', content: hexText }], () => true);
    assert.ok(bytes.equals(memory));
  });

  it('is composeMime itself when nothing is in a file', async () => {
    const attachments = [{ filename: 'a.txt', content: Buffer.from('x') }];
    const streamed = await composeMimeStream({ ...base, attachments });
    assert.ok(streamed.raw?.equals(composeMime({ ...base, attachments })));
    assert.ok((await collect(streamed.chunks())).equals(streamed.raw!));
  });

  it('fails when a file does not hold the size it was given', async () => {
    const file = toFile(randomBytes(1000));
    const streamed = composeMimeStream({ ...base, attachments: [{ filename: 'a', content: { ...file, size: 999 } }] });
    await assert.rejects(streamed, /has 1000 bytes, expected 999/);
  });

  it('base64Length is the length of base64 in lines of 76', () => {
    for (const n of [0, 1, 2, 3, 57, 58, 1000, 123_457]) {
      const lines = (
        randomBytes(n)
          .toString('base64')
          .match(/.{1,76}/g) ?? []
      ).join('\r\n');
      assert.equal(base64Length(n), lines.length, `${n}`);
    }
  });
});

describe('converter with attachments in files', () => {
  const converter = createSymphonyMimeConverter();
  const asFiles = (attachments: readonly AttachmentContent[]) =>
    attachments.map((a) => ({ ...a, content: toFile(a.content as Buffer) }));

  it('convert and convertStreamed give the golden bytes whether attachments are in memory or in files', async () => {
    for (const name of fixtureNames()) {
      const input = loadFixture(name);
      const expected = (await converter.convert(input)).raw;
      const filed = { ...input, attachments: asFiles(input.attachments) };
      assert.ok((await converter.convert(filed)).raw.equals(expected), `${name}: convert`);
      const streamed = await converter.convertStreamed(filed);
      assert.equal(streamed.size, expected.length, name);
      assert.ok((await collect(streamed.chunks())).equals(expected), `${name}: convertStreamed`);
      if (input.attachments.length === 0) assert.ok(streamed.raw?.equals(expected), `${name}: in memory`);
    }
  });

  it('an attachment file that cannot be read makes the item unconvertible, for quarantine', async () => {
    const input = loadFixture('attachment');
    const missing = input.attachments.map((a) => ({ ...a, content: { path: join(dir, 'missing'), size: 3 } }));
    await assert.rejects(converter.convertStreamed({ ...input, attachments: missing }), (err: unknown) => {
      assert.ok(isAppError(err, 'ERR_CONVERT_FAILED'), String(err));
      assert.match(err.message, /ENOENT/);
      return true;
    });
  });
});
