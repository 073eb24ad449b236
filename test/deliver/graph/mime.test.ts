/**
 * The writer's MIME reading (for the v1.0 JSON route) and attachment stubbing, checked against what mailparser sees.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
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
    const m = extractMessage(item.raw);
    const reference = await simpleParser(item.raw);
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
    const result = stubAttachments(item.raw, 200_000, (a) => `gone: ${a.name} ${a.size} ${a.sha256}`, 'too large');
    assert.deepEqual(result.stubbed, [
      { name: 'big.bin', size: 300_000, sha256: createHash('sha256').update(big).digest('hex') },
    ]);
    const root = parseMime(item.raw);
    const bigPart = root.children.find((c) => c.disposition?.params.filename === 'big.bin')!;
    assert.ok(
      result.raw.subarray(result.raw.length - (item.raw.length - bigPart.end)).equals(item.raw.subarray(bigPart.end)),
      'tail unchanged',
    );
    const parsed = await simpleParser(result.raw);
    assert.equal(parsed.messageId, `<${item.messageId}>`);
    assert.equal(parsed.html, (await simpleParser(item.raw)).html);
    assert.deepEqual(
      parsed.attachments.map((a) => a.filename),
      ['big.bin (removed).txt', 'small.bin'],
    );
    assert.match(parsed.attachments[0]!.content.toString(), /^gone: big\.bin 300000 [0-9a-f]{64}$/);
    assert.equal(parsed.headers.get('x-symphony-archiver-partial'), 'too large');
    assert.equal(stubAttachments(item.raw, 0, () => 'x', 'r').stubbed.length, 2);
  });
});
