/**
 * The writer's MIME reading (for the v1.0 JSON route) and attachment stubbing, checked against what mailparser sees.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import {
  decodeWords,
  extractMessage,
  parseAddressList,
  parseMime,
  parseParams,
  stubAttachments,
} from '../../../src/deliver/graph/mime.ts';
import { stubAttachmentsInFile } from '../../../src/deliver/graph/mime-file.ts';
import { composeMime } from '../../../src/convert/mime.ts';
import { inFile, type MemoryItem } from '../maildir/fixtures.ts';
import { itemWithFiles, pattern } from './helpers.ts';

describe('graph writer MIME', () => {
  it('decodes RFC 2047 words, RFC 2231 parameters and address lists', () => {
    assert.equal(decodeWords('=?UTF-8?Q?Zo=C3=AB?= =?UTF-8?B?w4VuZ3N0csO2bQ==?= x'), 'ZoëÅngström x');
    assert.deepEqual(parseParams(`attachment; filename*0*=utf-8''%C3%9Cber; filename*1*=blick%202024.pdf`), {
      value: 'attachment',
      params: { filename: 'Überblick 2024.pdf' },
    });
    assert.deepEqual(parseParams('text/plain; charset="utf-8"; name="a;b.txt"').params, {
      charset: 'utf-8',
      name: 'a;b.txt',
    });
    assert.deepEqual(
      parseAddressList(
        '"Smith, Al" <al@x.example>, bo@x.example (Bo), Team: cy@x.example, =?utf-8?Q?D=C3=A9?= <de@x.example>;',
      ),
      [
        { name: 'Smith, Al', address: 'al@x.example' },
        { name: 'bo@x.example', address: 'bo@x.example' },
        { name: 'cy@x.example', address: 'cy@x.example' },
        { name: 'Dé', address: 'de@x.example' },
      ],
    );
  });

  it('extracts what a JSON create needs from a rendered item', async () => {
    const pdf = pattern(70_000, 9);
    const item = await itemWithFiles('m1', [
      { name: 'Überblick 2024.pdf', content: pdf, contentType: 'application/pdf' },
      { name: 'notes.txt', content: Buffer.from('n'), contentType: 'text/plain' },
    ]);
    const m = extractMessage(item.content);
    const reference = await simpleParser(item.content);
    assert.equal(m.subject, reference.subject);
    assert.equal(m.messageId, `<${item.messageId}>`);
    assert.equal(m.inReplyTo, '<sym.parent@archiver.example>');
    assert.equal(m.date?.toISOString(), item.date.toISOString());
    assert.deepEqual(m.from, { name: 'Zoë Ångström', address: 'zoe@bank.example' });
    assert.deepEqual(m.cc, [{ name: 'carol@bank.example', address: 'carol@bank.example' }]);
    assert.equal(m.body.contentType, 'html');
    assert.equal(m.body.content, reference.html);
    assert.deepEqual(
      m.attachments.map((a) => [a.name, a.contentType, a.content.length]),
      reference.attachments.map((a) => [a.filename, a.contentType, a.size]),
    );
    assert.ok(m.attachments[0]!.content.equals(pdf));
    assert.deepEqual(
      m.xHeaders.map((h) => h.name.toLowerCase()),
      ['x-symphony-stream-id'],
    );
  });

  it('stubs only the large attachments and leaves every other byte alone', async () => {
    const big = pattern(300_000, 5);
    const item = await itemWithFiles('m2', [
      { name: 'big.bin', content: big },
      { name: 'small.bin', content: pattern(100, 6) },
    ]);
    const result = stubAttachments(item.content, 200_000, (a) => `gone: ${a.name} ${a.size} ${a.sha256}`, 'too large');
    assert.deepEqual(result.stubbed, [
      { name: 'big.bin', size: 300_000, sha256: createHash('sha256').update(big).digest('hex') },
    ]);
    const root = parseMime(item.content);
    const bigPart = root.children.find((c) => c.disposition?.params.filename === 'big.bin')!;
    assert.ok(
      result.raw
        .subarray(result.raw.length - (item.content.length - bigPart.end))
        .equals(item.content.subarray(bigPart.end)),
      'tail unchanged',
    );
    const parsed = await simpleParser(result.raw);
    assert.equal(parsed.messageId, `<${item.messageId}>`);
    assert.equal(parsed.html, (await simpleParser(item.content)).html);
    assert.deepEqual(
      parsed.attachments.map((a) => a.filename),
      ['big.bin (removed).txt', 'small.bin'],
    );
    assert.match(parsed.attachments[0]!.content.toString(), /^gone: big\.bin 300000 [0-9a-f]{64}$/);
    assert.equal(parsed.headers.get('x-symphony-archiver-partial'), 'too large');
    assert.equal(stubAttachments(item.content, 0, () => 'x', 'r').stubbed.length, 2);
  });

  it('stubs an item in a file to the same bytes as in memory, holding only its skeleton and the result', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'graph-stub-'));
    try {
      const notice = (a: { name: string; size: number; sha256: string }) => `gone: ${a.name} ${a.size} ${a.sha256}`;
      const composed = await itemWithFiles('m4', [
        { name: 'big.bin', content: pattern(3 * 1024 * 1024 + 7, 7) },
        { name: 'mid.bin', content: pattern(300_000, 8) },
        { name: 'note.txt', content: Buffer.from('caf\u00e9 '.repeat(4000)), contentType: 'text/plain' },
      ]);
      const ours: MemoryItem = {
        ...composed,
        key: 'm5',
        content: composeMime({
          messageId: 'sym.m5@archiver.example',
          date: new Date(Date.UTC(2024, 4, 17)),
          from: { name: 'Alice', address: 'alice@bank.example' },
          to: [{ name: 'Bob', address: 'bob@bank.example' }],
          subject: 'files',
          headers: [],
          text: 'see the files',
          html: '<p>see the files</p>',
          attachments: [
            { filename: 'deck.pptx', content: pattern(2 * 1024 * 1024, 9) },
            { filename: 'symphony-message.json', content: Buffer.from('{}\n'), contentType: 'application/json' },
          ],
        }),
      };
      for (const item of [composed, ours]) {
        const file = await inFile(item, dir);
        for (const minBytes of [0, 200_000, 64 * 1024 * 1024]) {
          const expected = stubAttachments(item.content, minBytes, notice, 'too large');
          const got = await stubAttachmentsInFile(file.content, minBytes, notice, 'too large', 64 * 1024 * 1024);
          assert.deepEqual(got.stubbed, expected.stubbed, `${item.key} from ${minBytes}`);
          assert.equal(got.size, expected.raw.length);
          assert.ok(got.raw?.equals(expected.raw), `${item.key} from ${minBytes}: same bytes`);
        }
        const tooBig = await stubAttachmentsInFile(file.content, 10 * 1024 * 1024, notice, 'r', 1000);
        assert.equal(tooBig.raw, undefined, 'nothing is read when the result would be over the limit');
        assert.ok(tooBig.size > 1000);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
