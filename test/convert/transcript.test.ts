/**
 * Daily transcripts (src/convert/transcript.ts): golden `.eml` files for a representative day and for its revision
 * (`golden/transcript-eml/`), a mailparser round trip, the same bytes whatever the entry order, days across DST
 * changes, streamed bytes equal to in-memory ones, broken entries, and a fast-check property over names and markup.
 * Regenerate the goldens after an intended change with
 * `UPDATE_GOLDEN=1 node --import tsx --test test/convert/transcript.test.ts` and review the diff.
 *
 * Property runs: PROPERTY_RUNS (default 50). Reproduce a failure with PROPERTY_SEED and the printed path.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { SOURCE_ATTACHMENT_NAME, convertMessage } from '../../src/convert/index.ts';
import {
  TRANSCRIPT_SOURCE_NAME,
  convertTranscript,
  dayBounds,
  dayOf,
  transcriptItemId,
  transcriptMessageId,
  type TranscriptEntry,
  type TranscriptInput,
} from '../../src/convert/transcript.ts';
import type { StreamedItem } from '../../src/convert/converter.ts';
import { isAppError } from '../../src/core/errors.ts';
import { messageIdFor } from '../../src/core/ids.ts';
import { keyOfMessageId } from '../../src/deliver/imap/folder.ts';
import type { Conversation, Person } from '../../src/core/types.ts';
import type { V4Message } from '../../src/source/symphony/api-types.ts';
import { OPTIONS, assertWireFormat, countHeader, headerLines, unsafeHtml } from './helpers.ts';

const GOLDEN = fileURLToPath(new URL('./golden/transcript-eml/', import.meta.url));
const update = process.env['UPDATE_GOLDEN'] === '1';
const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 50);
const SEED = process.env['PROPERTY_SEED'] === undefined ? undefined : Number(process.env['PROPERTY_SEED']);

const scratch = mkdtempSync(join(tmpdir(), 'transcript-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A Symphony id (25 bytes, URL-safe base64) that reads as its label in the test. */
function sid(label: string): string {
  return createHash('sha256').update(label).digest().subarray(0, 25).toString('base64url');
}

async function bytesOf(item: StreamedItem): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of item.chunks()) out.push(chunk);
  return Buffer.concat(out);
}

// ---- a representative day: Europe/London, 13 June 2024 (BST, UTC+01:00) -----------------------------------------

const ROOM: Conversation = { id: sid('room'), type: 'ROOM', name: 'Desk des taux · 利率' };
const ALICE: Person = { userId: '7215545078461', displayName: 'Alice Martin', email: 'alice.martin@bank.example' };
const ZOE: Person = { userId: '7215545078462', displayName: 'Zoë Ångström', email: 'zoe.angstrom@bank.example' };
const BOB: Person = { userId: '344147139494862', displayName: 'Bob Chen', email: 'bob.chen@bank.example' };
const TARO: Person = { userId: '1305690252351', displayName: '山田 太郎' };
const COMPLIANCE: Person = {
  userId: '8933531976380',
  displayName: 'Compliance Officer',
  email: 'compliance@bank.example',
};
const PARTICIPANTS = [ALICE, ZOE, BOB, TARO];
const DAY = '2024-06-13';
const ZONE = 'Europe/London';
const VARIANT = 'a1b2c3';

const PDF = Buffer.from('%PDF-1.4\n% quarterly figures\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n');
const CSV = Buffer.from('tenor,bid,ask\n5y,3.125,3.135\n');
const CSV_2 = Buffer.from('tenor,bid,ask\n5y,3.128,3.138\n');
const pdfFile = join(scratch, 'upload-1');
writeFileSync(pdfFile, PDF);

function at(time: string): number {
  return Date.parse(`${DAY}T${time}Z`);
}

function pml(body: string): string {
  return `<div data-format="PresentationML" data-version="2.0"><p>${body}</p></div>`;
}

function message(label: string, time: string, sender: Person, body: string | null, extra: Partial<V4Message> = {}) {
  const v4: V4Message = {
    messageId: sid(label),
    timestamp: at(time),
    message: body === null ? null : pml(body),
    data: null,
    user: { userId: Number(sender.userId), displayName: sender.displayName ?? null, email: sender.email ?? null },
    stream: { streamId: ROOM.id, streamType: 'ROOM', roomName: ROOM.name ?? null },
    ...extra,
  };
  return v4;
}

/** The day's items, in the order they happened. */
function dayEntries(pdf: Buffer | { path: string; size: number }): TranscriptEntry[] {
  return [
    {
      input: {
        message: message('joined', '07:58:00', ALICE, null),
        sender: ALICE,
        attachments: [],
        roomEvent: { type: 'USERJOINEDROOM', affectedUser: ZOE },
      },
    },
    {
      input: {
        message: message(
          'first',
          '08:00:00.123',
          ALICE,
          'Morning <span class="entity" data-entity-id="m1">@Zoë Ångström</span>, the 5y mid is <b>3.120</b>.',
          {
            data: JSON.stringify({
              m1: {
                type: 'com.symphony.user.mention',
                version: '1.0',
                id: [{ type: 'com.symphony.user.userId', value: 7215545078462 }],
              },
            }),
          },
        ),
        sender: ALICE,
        attachments: [],
      },
    },
    {
      input: {
        message: message('reply', '08:01:10', ZOE, 'Très bien — merci ✓', { parentMessageId: sid('first') }),
        sender: ZOE,
        attachments: [],
      },
    },
    {
      input: {
        message: message('edit', '08:02:00', ALICE, 'Correction: the 5y mid is <b>3.130</b>.', {
          replacing: sid('first'),
          initialMessageId: sid('first'),
          initialTimestamp: at('08:00:00.123'),
        }),
        sender: ALICE,
        attachments: [],
      },
    },
    {
      input: {
        message: message('files', '08:05:00', BOB, 'Figures attached.', {
          attachments: [
            { id: 'internal_1/pdf', name: 'Überblick Q2 2024.pdf', size: PDF.length },
            { id: 'internal_1/csv', name: 'curve.csv', size: CSV.length },
          ],
        }),
        sender: BOB,
        attachments: [
          { id: 'internal_1/pdf', name: 'Überblick Q2 2024.pdf', content: pdf },
          { id: 'internal_1/csv', name: 'curve.csv', content: CSV },
        ],
      },
    },
    {
      input: {
        message: message('csv-again', '08:06:00', TARO, '更新しました', {
          attachments: [{ id: 'internal_2/csv', name: 'curve.csv', size: CSV_2.length }],
        }),
        sender: TARO,
        attachments: [{ id: 'internal_2/csv', name: 'curve.csv', content: CSV_2 }],
      },
    },
    {
      input: {
        message: message('removed', '08:10:00', COMPLIANCE, null),
        sender: COMPLIANCE,
        attachments: [],
        suppression: { messageId: sid('reply'), suppressedBy: COMPLIANCE, suppressedAt: at('08:10:00') },
      },
    },
  ];
}

const LATE: TranscriptEntry = {
  input: {
    message: message('late', '08:03:30', BOB, 'Late: the auction is at <i>11:00</i>.'),
    sender: BOB,
    attachments: [],
  },
};

const FIRST_ID = transcriptMessageId(ROOM.id, DAY, 1, VARIANT, OPTIONS.messageIdDomain);

function dayInput(entries = dayEntries({ path: pdfFile, size: PDF.length })): TranscriptInput & { variant: string } {
  return {
    conversation: ROOM,
    day: DAY,
    timeZone: ZONE,
    participants: PARTICIPANTS,
    entries,
    revision: 1,
    options: { ...OPTIONS },
    variant: VARIANT,
  };
}

function revisionInput(): TranscriptInput & { variant: string } {
  return {
    ...dayInput([...dayEntries({ path: pdfFile, size: PDF.length }), LATE]),
    revision: 2,
    supersedes: [FIRST_ID],
    added: [sid('late')],
  };
}

// ---- goldens ----------------------------------------------------------------------------------------------------

for (const [name, build] of [
  ['day', dayInput],
  ['revision', revisionInput],
] as const) {
  it(`golden: golden/transcript-eml/${name}.eml`, async () => {
    const item = await convertTranscript(build());
    assert.deepEqual(item.warnings, []);
    const raw = await bytesOf(item);
    assert.equal(raw.length, item.size);
    assert.equal(assertWireFormat(raw), undefined);
    const path = `${GOLDEN}${name}.eml`;
    if (update || !existsSync(path)) {
      assert.ok(update, `golden ${path} is missing; run with UPDATE_GOLDEN=1 to create it`);
      mkdirSync(GOLDEN, { recursive: true });
      writeFileSync(path, raw);
      return;
    }
    assert.ok(
      raw.equals(readFileSync(path)),
      `${name}.eml differs from the golden file (UPDATE_GOLDEN=1 regenerates it)\n${raw.toString('utf8')}`,
    );
  });
}

// ---- round trip -------------------------------------------------------------------------------------------------

function addresses(a: AddressObject | AddressObject[] | undefined): { name: string; address: string }[] {
  return (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) =>
    o.value.map((v) => ({ name: v.name, address: v.address ?? '' })),
  );
}

async function parse(input: TranscriptInput & { variant: string }): Promise<{ raw: Buffer; mail: ParsedMail }> {
  const raw = await bytesOf(await convertTranscript(input));
  return { raw, mail: await simpleParser(raw) };
}

/** What a per-message item of the entry says after its header block, and its source attachment. */
async function perMessage(entry: TranscriptEntry): Promise<{ content: string; source: unknown }> {
  const item = await convertMessage({
    ...entry.input,
    conversation: ROOM,
    participants: PARTICIPANTS,
    options: OPTIONS,
  });
  const mail = await simpleParser(item.raw);
  const json = mail.attachments.find((a) => a.filename === SOURCE_ATTACHMENT_NAME)!;
  const text = mail.text ?? '';
  return {
    content: text.slice(text.indexOf('----------\n') + 11).trim(),
    source: JSON.parse(json.content.toString('utf8')),
  };
}

describe('a day transcript round trips through mailparser', () => {
  it('has one sender, the recipients, subject, date and Message-ID', async () => {
    const { raw, mail } = await parse(dayInput());
    for (const h of ['from', 'to', 'subject', 'date', 'message-id', 'mime-version']) {
      assert.equal(countHeader(raw, h), 1, `${h} once`);
    }
    for (const h of ['in-reply-to', 'references', 'cc', 'bcc']) assert.equal(countHeader(raw, h), 0, `no ${h}`);
    assert.deepEqual(addresses(mail.from), [
      { name: 'Desk des taux · 利率', address: 'symphony-transcript@symphony.invalid' },
    ]);
    assert.deepEqual(addresses(mail.to), [
      { name: '山田 太郎', address: 'user-1305690252351@symphony.invalid' },
      { name: 'Alice Martin', address: 'alice.martin@bank.example' },
      { name: 'Zoë Ångström', address: 'zoe.angstrom@bank.example' },
      { name: 'Bob Chen', address: 'bob.chen@bank.example' },
    ]);
    assert.equal(mail.subject, '[Symphony] Desk des taux · 利率 (transcript 2024-06-13)');
    assert.equal(mail.date?.toISOString(), '2024-06-13T08:10:00.000Z');
    assert.equal(mail.messageId, `<${FIRST_ID}>`);
    assert.equal(FIRST_ID, messageIdFor(transcriptItemId(ROOM.id, DAY, 1, 'a1b2c3'), 'archive.example.com'));
    assert.match(transcriptItemId(ROOM.id, DAY, 1, 'a1b2c3'), /^transcript\.[A-Za-z0-9_-]+\.20240613\.r1\.a1b2c3$/);
    const header = (name: string): unknown => mail.headers.get(name);
    assert.equal(header('x-symphony-item-type'), 'transcript');
    assert.equal(header('x-symphony-stream-id'), ROOM.id);
    assert.equal(header('x-symphony-transcript-day'), DAY);
    assert.equal(header('x-symphony-transcript-zone'), ZONE);
    assert.equal(header('x-symphony-transcript-revision'), '1');
    assert.equal(header('x-symphony-transcript-messages'), '7');
  });

  it('lists every item in order with its local time, sender and kind', async () => {
    const text = (await parse(dayInput())).mail.text ?? '';
    const headings = [
      `[08:58:00 +01:00] Alice Martin <alice.martin@bank.example>, room event ${sid('joined')}`,
      `[09:00:00 +01:00] Alice Martin <alice.martin@bank.example>, message ${sid('first')}`,
      `[09:01:10 +01:00] Zoë Ångström <zoe.angstrom@bank.example>, message ${sid('reply')}`,
      `[09:02:00 +01:00] Alice Martin <alice.martin@bank.example>, edited message ${sid('edit')}`,
      `[09:05:00 +01:00] Bob Chen <bob.chen@bank.example>, message ${sid('files')}`,
      `[09:06:00 +01:00] 山田 太郎 <user-1305690252351@symphony.invalid>, message ${sid('csv-again')}`,
      `[09:10:00 +01:00] Compliance Officer <compliance@bank.example>, removal notice ${sid('removed')}`,
    ];
    let last = -1;
    for (const h of headings) {
      const i = text.indexOf(`\n${h}\n`);
      assert.ok(i > last, `${h} after the one before:\n${text}`);
      last = i;
    }
    assert.ok(
      text.includes('Day: 2024-06-13 in Europe/London, from 2024-06-12T23:00:00.000Z to 2024-06-13T23:00:00.000Z'),
    );
    assert.ok(text.includes('Messages: 7'));
    assert.ok(text.includes(`  Reply to / forward of message: ${sid('first')}`));
    assert.ok(text.includes(`  Edited version of message: ${sid('first')}`));
    assert.ok(text.includes(`  Removed message: ${sid('reply')}`));
    assert.ok(text.includes('Morning @Zoë Ångström <zoe.angstrom@bank.example>'), text);
    assert.ok(!text.includes('Revision'), 'a first transcript says nothing of revisions');
  });

  it('renders each entry exactly as its own email renders it', async () => {
    const text = (await parse(dayInput())).mail.text ?? '';
    // The csv-again entry's file is renamed in the transcript and a removal notice names no Message-ID there.
    for (const entry of dayEntries(PDF).slice(0, 5)) {
      const { content } = await perMessage(entry);
      assert.ok(content.length > 0);
      assert.ok(text.includes(content), `${content}\nnot in\n${text}`);
    }
  });

  it('attaches every file, names unique, and the sources verbatim', async () => {
    const { mail } = await parse(dayInput());
    assert.deepEqual(
      mail.attachments.map((a) => [a.filename, a.contentType]),
      [
        ['Überblick Q2 2024.pdf', 'application/pdf'],
        ['curve.csv', 'text/csv'],
        ['1-curve.csv', 'text/csv'],
        [TRANSCRIPT_SOURCE_NAME, 'application/json'],
      ],
    );
    assert.ok(mail.attachments[0]!.content.equals(PDF));
    assert.ok(mail.attachments[1]!.content.equals(CSV));
    assert.ok(mail.attachments[2]!.content.equals(CSV_2));
    assert.ok((mail.text ?? '').includes('- 1-curve.csv (29 bytes)'), 'the body names the file as attached');
    const json = JSON.parse(mail.attachments[3]!.content.toString('utf8')) as {
      transcript: Record<string, unknown>;
      entries: unknown[];
    };
    assert.equal(json.transcript['messageId'], FIRST_ID);
    assert.equal(json.transcript['day'], DAY);
    assert.deepEqual(json.transcript['attachments'], [
      { filename: 'Überblick Q2 2024.pdf', messageId: sid('files'), id: 'internal_1/pdf' },
      { filename: 'curve.csv', messageId: sid('files'), id: 'internal_1/csv' },
      { filename: '1-curve.csv', messageId: sid('csv-again'), id: 'internal_2/csv' },
    ]);
    const entries = dayEntries(PDF);
    assert.equal(json.entries.length, entries.length);
    for (const [i, entry] of entries.entries()) assert.deepEqual(json.entries[i], (await perMessage(entry)).source);
  });

  it('keeps the HTML inert', async () => {
    const { mail } = await parse(dayInput());
    const html = typeof mail.html === 'string' ? mail.html : '';
    assert.equal(unsafeHtml(html), undefined);
    assert.ok(html.includes('<b>09:02:00 +01:00</b> Alice Martin &lt;alice.martin@bank.example&gt;, edited message'));
  });
});

describe('a revision', () => {
  it('says so in its subject, headers and body, and threads under what it supersedes', async () => {
    const { raw, mail } = await parse(revisionInput());
    const id = transcriptMessageId(ROOM.id, DAY, 2, VARIANT, OPTIONS.messageIdDomain);
    assert.notEqual(id, FIRST_ID);
    assert.equal(mail.messageId, `<${id}>`);
    assert.equal(mail.subject, '[Symphony] Desk des taux · 利率 (transcript 2024-06-13, revision 2)');
    assert.equal(mail.inReplyTo, `<${FIRST_ID}>`);
    assert.equal(mail.references, `<${FIRST_ID}>`);
    assert.equal(countHeader(raw, 'references'), 1);
    assert.equal(mail.headers.get('x-symphony-transcript-revision'), '2');
    assert.equal(mail.headers.get('x-symphony-transcript-added'), '1');
    assert.equal(mail.headers.get('x-symphony-transcript-messages'), '8');
    const text = mail.text ?? '';
    assert.ok(
      text.startsWith(
        `Revision 2 of this transcript: supersedes <${FIRST_ID}>; 1 message added since revision 1, marked ` +
          '"added in revision 2".',
      ),
      text,
    );
    const marked = text.split('\n').filter((l) => l.includes('[added in revision 2]'));
    assert.deepEqual(marked, [
      `[09:03:30 +01:00] Bob Chen <bob.chen@bank.example>, message ${sid('late')} [added in revision 2]`,
    ]);
    const html = typeof mail.html === 'string' ? mail.html : '';
    assert.ok(html.includes('<h3>Revision 2 of this transcript</h3>'));
    const json = JSON.parse(mail.attachments.at(-1)!.content.toString('utf8')) as {
      transcript: Record<string, unknown>;
    };
    assert.deepEqual(json.transcript['supersedes'], [FIRST_ID]);
    assert.deepEqual(json.transcript['added'], [sid('late')]);
  });

  it('references every earlier revision, oldest first, and replies to the last', async () => {
    const ids = [1, 2].map((n) => transcriptMessageId(ROOM.id, DAY, n, VARIANT, OPTIONS.messageIdDomain));
    const { mail } = await parse({ ...revisionInput(), revision: 3, supersedes: ids });
    assert.equal(mail.inReplyTo, `<${ids[1]}>`);
    assert.deepEqual(
      mail.references,
      ids.map((i) => `<${i}>`),
    );
  });

  it('warns about what it cannot honour instead of failing', async () => {
    const item = await convertTranscript({
      ...revisionInput(),
      supersedes: [FIRST_ID, 'not a msg-id\r\nBcc: x@evil.example'],
      added: [sid('late'), sid('never-sent')],
    });
    assert.deepEqual(item.warnings, [
      'superseded Message-ID not a msg-id Bcc: x@evil.example is not usable; left out',
      `added message ${sid('never-sent')} is not in the transcript`,
    ]);
    const raw = await bytesOf(item);
    assert.equal(countHeader(raw, 'bcc'), 0);
  });
});

// ---- determinism and streaming ----------------------------------------------------------------------------------

describe('determinism', () => {
  it('gives the same bytes whatever order the entries come in', async () => {
    const entries = [...dayEntries(PDF), LATE];
    const reference = await bytesOf(await convertTranscript({ ...revisionInput(), entries }));
    const orders = [[...entries].reverse(), [...entries.slice(3), ...entries.slice(0, 3)]];
    const shuffles = fc.sample(fc.shuffledSubarray(entries, { minLength: entries.length }), { numRuns: 5, seed: 7 });
    for (const order of [...orders, ...shuffles]) {
      const raw = await bytesOf(await convertTranscript({ ...revisionInput(), entries: order }));
      assert.ok(raw.equals(reference));
    }
  });

  it('streams attachment files to the bytes it would build in memory', async () => {
    const inMemory = await convertTranscript(dayInput(dayEntries(PDF)));
    assert.ok(inMemory.raw, 'every attachment in memory: built in memory');
    const streamed = await convertTranscript(dayInput());
    assert.equal(streamed.raw, undefined);
    assert.equal(streamed.size, inMemory.size);
    const first = await bytesOf(streamed);
    assert.ok(first.equals(inMemory.raw));
    assert.ok((await bytesOf(streamed)).equals(first), 'chunks() reads the files again');
  });
});

// ---- edge cases ---------------------------------------------------------------------------------------------------

describe('edge cases', () => {
  it('names every kind of item in its heading', async () => {
    const form: TranscriptEntry = {
      input: {
        message: message('form-sent', '10:00:00', BOB, null),
        sender: BOB,
        attachments: [],
        elementsAction: { formMessageId: sid('form'), formId: 'rfq', formValues: { action: 'submit', size: '25m' } },
      },
    };
    const chat: TranscriptEntry = {
      input: {
        message: message('chat', '10:01:00', ALICE, null),
        sender: ALICE,
        attachments: [],
        roomEvent: { type: 'INSTANTMESSAGECREATED', members: [ALICE, BOB] },
      },
    };
    const item = await convertTranscript(dayInput([form, chat]));
    assert.deepEqual(item.warnings, []);
    const text = (await simpleParser(await bytesOf(item))).text ?? '';
    assert.ok(text.includes(`[11:00:00 +01:00] Bob Chen <bob.chen@bank.example>, form response ${sid('form-sent')}`));
    assert.ok(text.includes('  Form message: ' + sid('form')));
    assert.ok(text.includes(`[11:01:00 +01:00] Alice Martin <alice.martin@bank.example>, chat event ${sid('chat')}`));
  });

  it('shows the date of an item that is not on the day, and says so', async () => {
    const stray: TranscriptEntry = {
      input: { ...LATE.input, message: { ...LATE.input.message, timestamp: Date.parse('2024-06-14T09:00:00Z') } },
    };
    const item = await convertTranscript(dayInput([stray, stray]));
    assert.deepEqual(item.warnings, [
      `message ${sid('late')} at 2024-06-14 10:00:00 +01:00 is not on 2024-06-13 in Europe/London`,
      `message ${sid('late')} is in the transcript 2 times`,
    ]);
    const mail = await simpleParser(await bytesOf(item));
    assert.ok((mail.text ?? '').includes(`[2024-06-14 10:00:00 +01:00] Bob Chen`));
    // Date is the last time on the day; with nothing on it, the day's start.
    assert.equal(mail.date?.toISOString(), '2024-06-12T23:00:00.000Z');
  });

  it('makes a transcript of an empty day', async () => {
    const item = await convertTranscript({ ...dayInput([]), participants: [] });
    const mail = await simpleParser(await bytesOf(item));
    assert.ok((mail.text ?? '').includes('Messages: 0\n----------\n\n(no messages)'));
    assert.deepEqual(addresses(mail.to), addresses(mail.from));
  });

  it('shows each time with the offset in force, across a change of offset', async () => {
    const times = ['2024-11-03T05:30:00Z', '2024-11-03T06:30:00Z'];
    const entries = times.map((t, i) => ({
      input: { ...LATE.input, message: { ...LATE.input.message, messageId: sid(`ny${i}`), timestamp: Date.parse(t) } },
    }));
    const item = await convertTranscript({ ...dayInput(entries), day: '2024-11-03', timeZone: 'America/New_York' });
    assert.deepEqual(item.warnings, []);
    const text = (await simpleParser(await bytesOf(item))).text ?? '';
    assert.ok(text.includes(`[01:30:00 -04:00] Bob Chen <bob.chen@bank.example>, message ${sid('ny0')}`), text);
    assert.ok(text.includes(`[01:30:00 -05:00] Bob Chen <bob.chen@bank.example>, message ${sid('ny1')}`), text);
    assert.ok(
      text.includes('Day: 2024-11-03 in America/New_York, from 2024-11-03T04:00:00.000Z to 2024-11-04T05:00:00.000Z'),
    );
  });
});

// ---- failures -----------------------------------------------------------------------------------------------------

describe('failures', () => {
  it('renders a placeholder for an entry that cannot be rendered, and says so', async () => {
    const broken: TranscriptEntry[] = [
      { input: { ...LATE.input, message: { ...LATE.input.message, messageId: '' } } },
      { input: null as unknown as TranscriptEntry['input'] },
    ];
    const item = await convertTranscript(dayInput([...dayEntries(PDF), ...broken]));
    assert.deepEqual(item.warnings, [
      'entry without id at 09:03:30 +01:00 could not be rendered (A message could not be converted to email: ' +
        'message has no messageId); a placeholder stands for it',
      'entry without id at time unknown could not be rendered (A message could not be converted to email: ' +
        'message is not an object); a placeholder stands for it',
    ]);
    const mail = await simpleParser(await bytesOf(item));
    const text = mail.text ?? '';
    assert.ok(text.includes('[09:03:30 +01:00] item\nThis item could not be rendered: A message could not be'));
    assert.ok(text.includes('[time unknown] item\nThis item could not be rendered'));
    assert.ok(text.includes('Messages: 9'));
    const json = JSON.parse(mail.attachments.at(-1)!.content.toString('utf8')) as { entries: unknown[] };
    assert.deepEqual(json.entries[4], {
      unrenderable: 'A message could not be converted to email: message has no messageId',
      entry: { ...JSON.parse(JSON.stringify(LATE.input)), message: { ...LATE.input.message, messageId: '' } },
    });
  });

  it('fails as a whole only when the transcript cannot be made', async () => {
    const cases: [string, Partial<TranscriptInput & { variant: string }>][] = [
      ['day', { day: '2024-02-30' }],
      ['day format', { day: '13/06/2024' }],
      ['zone', { timeZone: 'Mars/Olympus_Mons' }],
      ['revision', { revision: 0 }],
      ['domain', { options: { ...OPTIONS, messageIdDomain: 'bad domain' } }],
      ['conversation', { conversation: { id: '', type: 'ROOM' } }],
      ['file', { entries: dayEntries({ path: join(scratch, 'missing'), size: 10 }) }],
    ];
    for (const [name, override] of cases) {
      await assert.rejects(
        convertTranscript({ ...dayInput(), ...override }),
        (err) => isAppError(err, 'ERR_CONVERT_FAILED'),
        name,
      );
    }
  });
});

// ---- days in a time zone ----------------------------------------------------------------------------------------

describe('dayOf and dayBounds', () => {
  const iso = (ms: number): string => new Date(ms).toISOString();
  const bounds = (day: string, zone: string): [string, string, number] => {
    const { start, end } = dayBounds(day, zone);
    return [iso(start), iso(end), (end - start) / 3_600_000];
  };

  it('follows Europe/London across both DST changes', () => {
    assert.deepEqual(bounds('2024-03-31', 'Europe/London'), [
      '2024-03-31T00:00:00.000Z',
      '2024-03-31T23:00:00.000Z',
      23,
    ]);
    assert.deepEqual(bounds('2024-10-27', 'Europe/London'), [
      '2024-10-26T23:00:00.000Z',
      '2024-10-28T00:00:00.000Z',
      25,
    ]);
    assert.deepEqual(bounds('2024-06-13', 'Europe/London'), [
      '2024-06-12T23:00:00.000Z',
      '2024-06-13T23:00:00.000Z',
      24,
    ]);
    // 01:30 happens twice on 27 October; both are that day.
    assert.equal(dayOf(Date.parse('2024-10-27T00:30:00Z'), 'Europe/London'), '2024-10-27');
    assert.equal(dayOf(Date.parse('2024-10-27T01:30:00Z'), 'Europe/London'), '2024-10-27');
  });

  it('follows America/New_York across both DST changes', () => {
    assert.deepEqual(bounds('2024-03-10', 'America/New_York'), [
      '2024-03-10T05:00:00.000Z',
      '2024-03-11T04:00:00.000Z',
      23,
    ]);
    assert.deepEqual(bounds('2024-11-03', 'America/New_York'), [
      '2024-11-03T04:00:00.000Z',
      '2024-11-04T05:00:00.000Z',
      25,
    ]);
    assert.equal(dayOf(Date.parse('2024-11-03T05:30:00Z'), 'America/New_York'), '2024-11-03');
    assert.equal(dayOf(Date.parse('2024-11-03T06:30:00Z'), 'America/New_York'), '2024-11-03');
    assert.equal(dayOf(Date.parse('2024-11-04T04:59:59.999Z'), 'America/New_York'), '2024-11-03');
    assert.equal(dayOf(Date.parse('2024-11-04T05:00:00Z'), 'America/New_York'), '2024-11-04');
  });

  it('handles half-hour offsets, a half-hour DST change and a day that skips midnight', () => {
    assert.deepEqual(bounds('2024-06-13', 'Asia/Kolkata'), [
      '2024-06-12T18:30:00.000Z',
      '2024-06-13T18:30:00.000Z',
      24,
    ]);
    assert.equal(dayOf(Date.parse('2024-06-12T18:29:59.999Z'), 'Asia/Kolkata'), '2024-06-12');
    assert.equal(dayOf(Date.parse('2024-06-12T18:30:00Z'), 'Asia/Kolkata'), '2024-06-13');
    // Lord Howe Island moves its clocks by 30 minutes.
    assert.deepEqual(bounds('2024-10-06', 'Australia/Lord_Howe'), [
      '2024-10-05T13:30:00.000Z',
      '2024-10-06T13:00:00.000Z',
      23.5,
    ]);
    assert.deepEqual(bounds('2024-04-07', 'Australia/Lord_Howe'), [
      '2024-04-06T13:00:00.000Z',
      '2024-04-07T13:30:00.000Z',
      24.5,
    ]);
    // Cuba springs forward at midnight: 10 March 2024 starts at 01:00 local.
    assert.deepEqual(bounds('2024-03-10', 'America/Havana'), [
      '2024-03-10T05:00:00.000Z',
      '2024-03-11T04:00:00.000Z',
      23,
    ]);
    assert.equal(dayOf(Date.parse('2024-03-10T04:59:59.999Z'), 'America/Havana'), '2024-03-09');
  });

  it('agrees with itself for any instant in any of these zones', () => {
    const zones = [
      'Europe/London',
      'America/New_York',
      'Asia/Kolkata',
      'Australia/Lord_Howe',
      'America/Havana',
      'Pacific/Kiritimati',
      'Pacific/Pago_Pago',
      'UTC',
    ];
    fc.assert(
      fc.property(fc.integer({ min: 86_400_000, max: 4_102_444_800_000 }), fc.constantFrom(...zones), (ts, zone) => {
        const day = dayOf(ts, zone);
        const { start, end } = dayBounds(day, zone);
        return start <= ts && ts < end && dayOf(start, zone) === day && dayOf(end - 1, zone) === day;
      }),
      { numRuns: RUNS * 20, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  });

  it('refuses what is not a day or a zone', () => {
    for (const [day, zone] of [
      ['2024-02-30', 'UTC'],
      ['1969-12-31', 'UTC'],
      ['2024-6-1', 'UTC'],
      ['2024-06-13', 'Nowhere/Special'],
      ['2024-06-13', ''],
    ] as const) {
      assert.throws(
        () => dayBounds(day, zone),
        (err) => isAppError(err, 'ERR_CONVERT_FAILED'),
        `${day} ${zone}`,
      );
    }
    assert.throws(
      () => dayOf(Number.NaN, 'UTC'),
      (err) => isAppError(err, 'ERR_CONVERT_FAILED'),
    );
  });
});

describe('transcriptMessageId', () => {
  it('is a safe, distinct id for each stream, day, revision and variant', () => {
    const ids = new Set<string>();
    for (const stream of [ROOM.id, sid('other')])
      for (const day of ['2024-06-13', '2024-06-14'])
        for (const revision of [1, 2])
          for (const variant of ['a1b2c3', 'ffff', 'Not Safe!', ''])
            ids.add(transcriptMessageId(stream, day, revision, variant, 'Archive.Example.com'));
    assert.equal(ids.size, 32);
    // The writers read an item's key back from its Message-ID (deliver/imap/folder.ts).
    for (const id of ids) assert.ok(keyOfMessageId(id), id);
  });
});

// ---- property -------------------------------------------------------------------------------------------------------

const NASTY = [
  'Alice\r\nBcc: eve@evil.example',
  'Bob\nX-Injected: 1',
  'invoice\u202Efdp.exe',
  '=?UTF-8?B?PHNjcmlwdD4=?=',
  '"Quoted" \\ back\\slash',
  'a,b;c:<d>@e.example',
  'nul\u0000byte',
  '\ud800lone',
  '',
  'x'.repeat(1200),
  '利率交易台 — Zoë',
  '--_sym-',
  '<script>alert(1)</script>',
  '&nbsp;&amp;&lt;&#0;&#x202e;',
] as const;
const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(...NASTY),
);
const markup = fc.oneof(
  text,
  fc
    .array(
      fc.tuple(
        fc.constantFrom(
          'p',
          'b',
          'a href="javascript:alert(1)"',
          'img src=x onerror=alert(1)',
          'table><tr><td',
          'script',
          'div',
        ),
        text,
      ),
      { maxLength: 4 },
    )
    .map(
      (parts) =>
        `<div data-format="PresentationML" data-version="2.0">${parts.map(([t, s]) => `<${t}>${s}`).join('')}</div>`,
    ),
);
const person: fc.Arbitrary<Person> = fc.record({
  userId: fc.oneof(
    fc.constantFrom('7215545078461', '344147139494862', '1'),
    fc.string({ minLength: 1, maxLength: 12 }),
  ),
  displayName: text,
  email: fc.oneof(fc.emailAddress(), text),
});

describe('property: one valid message whatever the names and markup', () => {
  it('has exactly one From, Date and Message-ID, valid lines, inert HTML, and does not depend on order', async () => {
    const day = dayBounds(DAY, ZONE);
    await fc.assert(
      fc.asyncProperty(
        text,
        fc.array(person, { maxLength: 4 }),
        fc.array(
          fc.record({
            sender: person,
            body: markup,
            ts: fc.integer({ min: day.start - 3_600_000, max: day.end }),
            reply: fc.boolean(),
            file: fc.option(fc.tuple(text, fc.uint8Array({ maxLength: 64 })), { nil: undefined }),
          }),
          { maxLength: 5 },
        ),
        async (roomName, participants, items) => {
          const entries: TranscriptEntry[] = items.map((it, i) => ({
            input: {
              message: {
                messageId: sid(`p${i}`),
                timestamp: it.ts,
                message: it.body,
                user: { userId: it.sender.userId, displayName: it.sender.displayName ?? null },
                stream: { streamId: ROOM.id },
                ...(it.reply ? { parentMessageId: sid('p0') } : {}),
                ...(it.file ? { attachments: [{ id: `f${i}`, name: it.file[0], size: it.file[1].length }] } : {}),
              },
              sender: it.sender,
              attachments: it.file ? [{ id: `f${i}`, name: it.file[0], content: Buffer.from(it.file[1]) }] : [],
            },
          }));
          const input = { ...dayInput(entries), conversation: { ...ROOM, name: roomName }, participants };
          const item = await convertTranscript(input);
          const raw = item.raw!;
          assert.equal(assertWireFormat(raw), undefined);
          assert.ok(
            raw.every((b) => b < 0x80),
            '7-bit',
          );
          for (const h of ['from', 'date', 'message-id', 'to', 'subject', 'mime-version']) {
            assert.equal(countHeader(raw, h), 1, h);
          }
          for (const l of headerLines(raw))
            assert.match(l, /^(?:From|To|Subject|Date|Message-ID|MIME-Version|Content-Type|X-Symphony-[A-Za-z-]+):/);
          const mail = await simpleParser(raw);
          assert.equal(mail.messageId, `<${item.messageId}>`);
          assert.equal(unsafeHtml(typeof mail.html === 'string' ? mail.html : ''), undefined);
          assert.equal(mail.attachments.at(-1)?.filename, TRANSCRIPT_SOURCE_NAME);
          const reversed = await convertTranscript({ ...input, entries: [...entries].reverse() });
          assert.ok(reversed.raw!.equals(raw));
        },
      ),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  });
});
