/**
 * The converter as the pipeline uses it: headers, threading, item kinds, the subject template, null and
 * broken fields (reliability.md §3), and what counts as unconvertible (ERR_CONVERT_FAILED → quarantine).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser, type AddressObject } from 'mailparser';
import { MAX_TO, createSymphonyMimeConverter, fromV4Event } from '../../src/convert/index.ts';
import type { ConvertInput } from '../../src/convert/index.ts';
import { safeFilename } from '../../src/convert/mime.ts';
import { isAppError } from '../../src/core/errors.ts';
import { messageIdFor } from '../../src/core/ids.ts';
import type { V4Message } from '../../src/source/symphony/api-types.ts';
import {
  ALICE,
  BOB,
  CAROL,
  OPTIONS,
  assertWireFormat,
  baseInput,
  countHeader,
  headerLines,
  unsafeHtml,
} from './helpers.ts';

const converter = createSymphonyMimeConverter();
const mid = (id: string) => `<${messageIdFor(id, OPTIONS.messageIdDomain)}>`;
const header = (raw: Buffer, name: string) =>
  headerLines(raw)
    .find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    ?.slice(name.length + 1)
    .trim();

function addresses(a: AddressObject | AddressObject[] | undefined): string[] {
  return (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value.map((v) => v.address ?? ''));
}

async function rejects(input: unknown, message: RegExp): Promise<void> {
  await assert.rejects(converter.convert(input as ConvertInput), (e: unknown) => {
    assert.ok(isAppError(e, 'ERR_CONVERT_FAILED'), String(e));
    assert.match(e.message, message);
    return true;
  });
}

describe('unconvertible input', () => {
  it('throws ERR_CONVERT_FAILED without an id, a time or an author', async () => {
    await rejects(null, /input is not an object/);
    await rejects({ ...baseInput(), message: null }, /message is not an object/);
    await rejects(baseInput({ messageId: '' }), /no messageId/);
    await rejects(baseInput({ messageId: null as unknown as string }), /no messageId/);
    for (const timestamp of [null, NaN, Infinity, '1599670462918', 9e15]) {
      await rejects(baseInput({ timestamp: timestamp as number }), /no usable timestamp/);
    }
    await rejects(
      baseInput({ user: null as unknown as V4Message['user'] }, { sender: null as unknown as ConvertInput['sender'] }),
      /no author user id/,
    );
    await rejects(baseInput({ messageId: 'x'.repeat(600) }), /too long for a Message-ID/);
  });

  it('refuses a Message-ID or synthetic domain that could break the header', async () => {
    for (const d of ['', 'a b.example', 'x>\r\nBcc: eve@evil.example', 'a@b.example', '<x>']) {
      await rejects(baseInput({}, { options: { ...OPTIONS, messageIdDomain: d } }), /must be domain names/);
      await rejects(baseInput({}, { options: { ...OPTIONS, syntheticDomain: d } }), /must be domain names/);
    }
  });

  it('wraps anything unexpected (a cyclic message) in ERR_CONVERT_FAILED with the cause', async () => {
    const input = baseInput();
    (input.message as unknown as Record<string, unknown>)['self'] = input.message;
    await assert.rejects(converter.convert(input), (e: unknown) => {
      assert.ok(isAppError(e, 'ERR_CONVERT_FAILED'), "isAppError(e, 'ERR_CONVERT_FAILED')");
      assert.ok(e.cause instanceof TypeError, 'e.cause instanceof TypeError');
      return true;
    });
  });
});

describe('null and broken fields still make one valid message', () => {
  const cases: [string, ConvertInput][] = [
    ['null content', baseInput({ message: null, data: null, attachments: null })],
    ['empty content', baseInput({ message: '' })],
    ['content that is not a string', baseInput({ message: 42 as unknown as string })],
    [
      'null stream and conversation',
      baseInput(
        { stream: null as unknown as V4Message['stream'] },
        { conversation: null as unknown as ConvertInput['conversation'] },
      ),
    ],
    [
      'null participants and attachments',
      baseInput({}, { participants: null as unknown as [], attachments: null as unknown as [] }),
    ],
    [
      'null entries in lists',
      baseInput(
        { attachments: [null as never] },
        { participants: [null as never, ALICE], attachments: [null as never] },
      ),
    ],
    ['author only in the message', baseInput({}, { sender: undefined as unknown as ConvertInput['sender'] })],
    ['broken data JSON', baseInput({ data: '{"0": {' })],
    ['data that is not an object', baseInput({ data: '[1,2]' })],
    [
      'an attachment without content',
      baseInput({}, { attachments: [{ id: 'a', name: 'a.txt', content: 'x' as unknown as Buffer }] }),
    ],
    ['BigInt ids', baseInput({ user: { userId: 7215545078461n as unknown as number } })],
    [
      'people with non-string fields',
      baseInput(
        {},
        { participants: [{ userId: '1', displayName: 5 as unknown as string, email: {} as unknown as string }] },
      ),
    ],
  ];
  for (const [name, input] of cases) {
    it(name, async () => {
      const item = await converter.convert(input);
      assert.equal(assertWireFormat(item.raw), undefined);
      for (const h of ['from', 'date', 'message-id', 'to', 'subject']) assert.equal(countHeader(item.raw, h), 1, h);
      const mail = await simpleParser(item.raw);
      assert.equal(mail.messageId, `<${item.messageId}>`);
      assert.equal(addresses(mail.from).length, 1);
    });
  }

  it('says why the body is empty', async () => {
    const none = await converter.convert(baseInput({ message: null }));
    assert.ok(
      none.warnings.some((w) => /no PresentationML content/.test(w)),
      'none.warnings.some((w) => /no PresentationML content/.test(w))',
    );
    const empty = await simpleParser((await converter.convert(baseInput({ message: '' }))).raw);
    assert.match(empty.text ?? '', /\(empty message\)/);
  });

  it('clamps a Date outside 1970–9999 and keeps the real time in the body and a header', async () => {
    for (const ts of [-1, -8.64e15, 253402300800000, 8.64e15]) {
      const item = await converter.convert(baseInput({ timestamp: ts }));
      assert.ok(
        item.warnings.some((w) => /outside 1970–9999/.test(w)),
        'item.warnings.some((w) => /outside 1970–9999/.test(w))',
      );
      const mail = await simpleParser(item.raw);
      assert.ok(
        mail.date instanceof Date && mail.date.getUTCFullYear() >= 1970 && mail.date.getUTCFullYear() <= 9999,
        'mail.date instanceof Date && mail.date.getUTCFullYear() >= 1970 && mail.date.getUTCFullYear() <= 9999',
      );
      assert.equal(header(item.raw, 'X-Symphony-Timestamp'), String(ts));
    }
  });
});

describe('headers', () => {
  it('addresses the room to everyone but the author, sorted, with synthetic addresses where email is missing', async () => {
    const item = await converter.convert(baseInput());
    const mail = await simpleParser(item.raw);
    assert.deepEqual(addresses(mail.from), [ALICE.email]);
    assert.deepEqual(addresses(mail.to), [`user-${CAROL.userId}@symphony.invalid`, BOB.email]);
    assert.equal(header(item.raw, 'X-Symphony-Sender-Id'), ALICE.userId);
    assert.equal(header(item.raw, 'X-Symphony-Stream-Type'), 'ROOM');
    assert.equal(header(item.raw, 'X-Symphony-Item-Type'), 'message');
  });

  it('does not depend on the order of the participants', async () => {
    const a = await converter.convert(baseInput({}, { participants: [ALICE, BOB, CAROL] }));
    const b = await converter.convert(baseInput({}, { participants: [CAROL, ALICE, BOB, BOB] }));
    assert.ok(a.raw.equals(b.raw), 'a.raw.equals(b.raw)');
  });

  it(`puts at most ${MAX_TO} recipients in To and lists everyone in the body`, async () => {
    const many = Array.from({ length: 700 }, (_, i) => ({ userId: String(1000 + i), displayName: `User ${i}` }));
    const item = await converter.convert(baseInput({}, { participants: [ALICE, ...many] }));
    const mail = await simpleParser(item.raw);
    assert.equal(addresses(mail.to).length, MAX_TO);
    assert.match(mail.text ?? '', /Participants: User 0, User 1, .*User 699, Alice Martin\n/);
    assert.ok(
      item.warnings.some((w) => /700 recipients/.test(w)),
      'item.warnings.some((w) => /700 recipients/.test(w))',
    );
    assert.equal(assertWireFormat(item.raw), undefined);
  });

  it('names the room, the IM participants, the wall author or an unknown stream in the default Subject', async () => {
    const id = 'gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA';
    const subject = async (type: string, name?: string) =>
      (
        await simpleParser(
          (
            await converter.convert(
              baseInput({ stream: { streamId: id } }, { conversation: { id, type, ...(name ? { name } : {}) } }),
            )
          ).raw,
        )
      ).subject;
    assert.equal(await subject('ROOM', 'Rates Desk'), '[Symphony] Rates Desk');
    assert.equal(await subject('ROOM'), '[Symphony] Alice Martin, Bob Chen, Carol Ng');
    assert.equal(await subject('IM'), '[Symphony] Chat: Alice Martin, Bob Chen, Carol Ng');
    assert.equal(await subject('MIM'), '[Symphony] Chat: Alice Martin, Bob Chen, Carol Ng');
    assert.equal(await subject('POST'), '[Symphony] Wall post: Alice Martin');
    assert.equal(await subject('WEIRD'), '[Symphony] Conversation gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA');
  });

  it('fills a configured Subject template, leaving unknown placeholders and removing line breaks', async () => {
    const subject = async (subjectTemplate: string, overrides: Partial<V4Message> = {}) =>
      (
        await simpleParser(
          (await converter.convert(baseInput(overrides, { options: { ...OPTIONS, subjectTemplate } }))).raw,
        )
      ).subject;
    assert.equal(
      await subject('{room} | {type} | {sender} | {participants} | {streamId}{label}'),
      'Rates Desk | ROOM | Alice Martin | Alice Martin, Bob Chen, Carol Ng | gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA',
    );
    assert.equal(
      await subject('Chat {nope}{label}', { replacing: 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA' }),
      'Chat {nope} (edited)',
    );
    assert.equal(await subject('a\r\nBcc: eve@evil.example'), 'a Bcc: eve@evil.example');
  });

  it('encodes non-ASCII names and subjects as RFC 2047 words of at most 75 characters, 7-bit throughout', async () => {
    const input = baseInput(
      {},
      {
        sender: { userId: '1', displayName: 'Zoë Ångström 利率交易台 '.repeat(6) },
        conversation: { id: 'x', type: 'ROOM', name: 'Desk — 利率交易台 — '.repeat(10) },
      },
    );
    const item = await converter.convert(input);
    assert.ok(
      item.raw.every((b) => b < 0x80),
      'item.raw.every((b) => b < 0x80)',
    );
    const head = item.raw.toString('latin1', 0, item.raw.indexOf('\r\n\r\n'));
    const words = head.match(/=\?[^?]+\?[QB]\?[^?]*\?=/g) ?? [];
    assert.ok(words.length > 5, 'words.length > 5');
    for (const w of words) assert.ok(w.length <= 75, w);
    const mail = await simpleParser(item.raw);
    assert.equal((mail.from as AddressObject).value[0]!.name, 'Zoë Ångström 利率交易台 '.repeat(6).trim());
    assert.ok(
      mail.subject?.startsWith('[Symphony] Desk — 利率交易台 — Desk'),
      "mail.subject?.startsWith('[Symphony] Desk — 利率交易台 — Desk')",
    );
  });

  it('removes CR/LF, bidi overrides and lone surrogates from names; keeps the header set', async () => {
    const item = await converter.convert(
      baseInput(
        {},
        {
          sender: { userId: '1', displayName: 'Eve\r\nBcc: x@evil.example\u202Egnp.exe\ud800', email: 'eve@x.example' },
        },
      ),
    );
    const mail = await simpleParser(item.raw);
    assert.equal((mail.from as AddressObject).value[0]!.name, 'Eve Bcc: x@evil.examplegnp.exe\ufffd');
    assert.equal(countHeader(item.raw, 'bcc'), 0);
  });

  it('makes file names safe and RFC 2231-encodes them', async () => {
    assert.equal(safeFilename('../../etc/cron.d/x', 'f'), 'x');
    assert.equal(safeFilename('..\\..\\win.ini', 'f'), 'win.ini');
    assert.equal(safeFilename('r\u202Efdp.exe', 'f'), 'rfdp.exe');
    assert.equal(safeFilename('a\r\nb.txt', 'f'), 'a b.txt');
    assert.equal(safeFilename('', 'f'), 'f');
    assert.equal(safeFilename('...', 'f'), 'f');
    const long = safeFilename('Ü'.repeat(300) + '.pdf', 'f');
    assert.ok(
      Buffer.byteLength(long) <= 255 && long.endsWith('….pdf'),
      "Buffer.byteLength(long) <= 255 && long.endsWith('….pdf')",
    );
    const item = await converter.convert(
      baseInput(
        {},
        {
          attachments: [
            { id: 'a', name: 'Überblick 2024.pdf', content: Buffer.from('%PDF') },
            { id: 'b', name: 'Überblick 2024.pdf', content: Buffer.from('2') },
          ],
        },
      ),
    );
    const mail = await simpleParser(item.raw);
    assert.deepEqual(
      mail.attachments.map((a) => a.filename),
      ['Überblick 2024.pdf', '2-Überblick 2024.pdf', 'symphony-message.json'],
    );
    assert.match(item.raw.toString('latin1'), /filename\*0\*=utf-8''%C3%9Cberblick%202024\.pdf/);
  });
});

describe('threading and item kinds', () => {
  const FIRST = 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA';
  const SECOND = 'lFpyw0ATFmji-Cc_cSzbk3___pZkWpe1dA';
  const PARENT = 'RUkxW4x40aB74g0UWpaMw3___ozLPsapdA';

  it('threads a reply under its parent', async () => {
    const mail = await simpleParser((await converter.convert(baseInput({ parentMessageId: PARENT }))).raw);
    assert.equal(mail.inReplyTo, mid(PARENT));
    assert.equal(mail.references, mid(PARENT));
    assert.equal(mail.headers.get('x-symphony-parent-message-id'), PARENT);
  });

  it('threads every edit under the first version, In-Reply-To the version it replaces', async () => {
    const item = await converter.convert(
      baseInput({ replacing: SECOND, initialMessageId: FIRST, initialTimestamp: 1599670000000 }),
    );
    const mail = await simpleParser(item.raw);
    assert.deepEqual(mail.references, [mid(FIRST), mid(SECOND)]);
    assert.equal(mail.inReplyTo, mid(SECOND));
    assert.equal(mail.subject, '[Symphony] Rates Desk (edited)');
    assert.equal(mail.headers.get('x-symphony-item-type'), 'edit');
    assert.equal(mail.headers.get('x-symphony-edit-of'), SECOND);
    assert.equal(mail.headers.get('x-symphony-initial-message-id'), FIRST);
    assert.match(
      mail.text ?? '',
      /Edited version of message: lFpyw0ATFmji-Cc_cSzbk3___pZkWpe1dA\nFirst version: kWpOSc30hEJtOoT89gLinH___ouMyhHwdA, sent 2020-09-09T16:46:40.000Z/,
    );
    // Each version is its own item: its own Message-ID, never the original's.
    assert.equal(item.messageId, messageIdFor('E_U_0jnuzmQcBOr1CIGPqX___ouMNdY5bQ', OPTIONS.messageIdDomain));
  });

  it('threads an edited reply under the parent, then the versions', async () => {
    const mail = await simpleParser(
      (await converter.convert(baseInput({ parentMessageId: PARENT, replacing: SECOND, initialMessageId: FIRST }))).raw,
    );
    assert.deepEqual(mail.references, [mid(PARENT), mid(FIRST), mid(SECOND)]);
    assert.equal(mail.inReplyTo, mid(SECOND));
  });

  it('marks a message that was later edited', async () => {
    const mail = await simpleParser((await converter.convert(baseInput({ replacedBy: SECOND }))).raw);
    assert.equal(mail.headers.get('x-symphony-replaced-by'), SECOND);
    assert.match(mail.text ?? '', /Later replaced by edit: lFpyw0ATFmji/);
  });

  it('turns a MESSAGESUPPRESSED event into a removal notice threaded under the removed message', async () => {
    // symphony-api.md §3, verbatim sample.
    const event = JSON.parse(
      '{"id":"V2Jdlz","messageId":"qsOkkR1Z170QKVu54QU8WX___qRaa2y5bw","timestamp":1493131629382,"type":"MESSAGESUPPRESSED",' +
        '"initiator":{"user":{"userId":8933531976380}},' +
        '"payload":{"messageSuppressed":{"messageId":"QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA","stream":{"streamId":"ksuDd0xGnAGW1B4plItFyn___qRfGLBsdA"}}}}',
    ) as unknown;
    const parts = fromV4Event(event);
    assert.ok(parts?.suppression, 'parts?.suppression');
    const item = await converter.convert({
      ...baseInput(),
      ...parts,
      conversation: { id: 'ksuDd0xGnAGW1B4plItFyn___qRfGLBsdA', type: 'ROOM', name: 'Rates Desk' },
    });
    const mail = await simpleParser(item.raw);
    assert.equal(item.messageId, messageIdFor('qsOkkR1Z170QKVu54QU8WX___qRaa2y5bw', OPTIONS.messageIdDomain));
    assert.equal(mail.inReplyTo, mid('QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA'));
    assert.equal(mail.subject, '[Symphony] Rates Desk (removed)');
    assert.equal(mail.headers.get('x-symphony-suppressed-message-id'), 'QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA');
    assert.equal(mail.headers.get('x-symphony-suppressed-by'), '8933531976380');
    assert.deepEqual(addresses(mail.from), ['user-8933531976380@symphony.invalid']);
    assert.match(
      mail.text ?? '',
      /Message QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA was removed \(suppressed\) in Symphony by user 8933531976380 <user-8933531976380@symphony\.invalid> at 2017-04-25T14:47:09\.382Z\./,
    );
  });

  it('derives a stable notice id when the event has none', () => {
    const event = {
      timestamp: 1,
      type: 'MESSAGESUPPRESSED',
      initiator: { user: { userId: 1 } },
      payload: { messageSuppressed: { messageId: 'QasBvaApRVqAIGPcqUTOAn///qRaa6hwdA==' } },
    };
    assert.equal(fromV4Event(event)?.message.messageId, 'QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA.suppressed');
    assert.equal(fromV4Event({ ...event, type: 'MESSAGESENT' }), undefined);
    assert.equal(fromV4Event({ ...event, initiator: {} }), undefined);
    assert.equal(fromV4Event(null), undefined);
  });

  it('turns a SYMPHONYELEMENTSACTION event into a form response threaded under the form', async () => {
    const event = {
      id: 'abc',
      messageId: 'LQ2oZgY1qHgP0ePb2X5jXn___oXoVTCbdA',
      timestamp: 1599670500000,
      type: 'SYMPHONYELEMENTSACTION',
      initiator: { user: { userId: 344147139494862, displayName: 'Bob Chen', email: 'bob.chen@bank.example' } },
      payload: {
        symphonyElementsAction: {
          stream: { streamId: 'YuK1c2y2yuie6+UfQnjSPX///pQEn69idA==', streamType: 'ROOM' },
          formMessageId: 'E_U_0jnuzmQcBOr1CIGPqX///ouMNdY5bQ==',
          formId: 'form_id',
          formValues: { action: 'submit_button', name_01: 'John', country: ['fr'], who: [7215545078461] },
        },
      },
    };
    const parts = fromV4Event(event);
    assert.ok(parts?.elementsAction, 'parts?.elementsAction');
    const mail = await simpleParser((await converter.convert({ ...baseInput(), ...parts })).raw);
    assert.equal(mail.inReplyTo, mid('E_U_0jnuzmQcBOr1CIGPqX___ouMNdY5bQ'));
    assert.equal(mail.subject, '[Symphony] Rates Desk (form response)');
    assert.deepEqual(addresses(mail.from), ['bob.chen@bank.example']);
    assert.match(mail.text ?? '', /action +\| Button pressed +\| submit_button/);
    assert.match(mail.text ?? '', /name_01 +\| +\| John/);
    assert.match(mail.text ?? '', /who +\| +\| Alice Martin \(7215545078461\)/);
  });
});

describe('determinism and throughput', () => {
  it('gives the same bytes for the same input, across calls', async () => {
    const a = await converter.convert(
      baseInput({ message: '<div><p>x</p><img src="data:image/png;base64,iVBORw0KGgo="/></div>' }),
    );
    const b = await converter.convert(
      baseInput({ message: '<div><p>x</p><img src="data:image/png;base64,iVBORw0KGgo="/></div>' }),
    );
    assert.ok(a.raw.equals(b.raw), 'a.raw.equals(b.raw)');
    assert.equal(a.sha256, b.sha256);
  });

  it('converts a 5 MB single-line message in linear time, every line within 998 octets', async () => {
    const big = '<div><p>' + 'word '.repeat(1_000_000) + '</p></div>';
    const t0 = performance.now();
    const item = await converter.convert(baseInput({ message: big }));
    const ms = performance.now() - t0;
    assert.equal(assertWireFormat(item.raw), undefined);
    assert.ok(ms < 20_000, `${ms} ms`);
    const mail = await simpleParser(item.raw);
    assert.equal(unsafeHtml(String(mail.html)), undefined);
    assert.ok((mail.text ?? '').includes('word word'), "(mail.text ?? '').includes('word word')");
  });
});
