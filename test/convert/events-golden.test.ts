/**
 * Events that become items of their own (symphony-api.md §3: the room events, MESSAGESUPPRESSED and
 * SYMPHONYELEMENTSACTION) end to end: each `test/convert/golden/<name>.json` holds a V4Event as the feed
 * delivers it plus what the caller adds (conversation, participants, the room's previous name, the form's
 * message); it goes through `readV4Event` and the converter, and the bytes are compared with `<name>.eml`. Then
 * the item is parsed back with mailparser and its meaning checked. Regenerate after an intended change with
 * `UPDATE_GOLDEN=1 node --import tsx --test test/convert/events-golden.test.ts` and review the diff.
 * (`transcript*` files in the folder belong to the transcript tests.)
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, test } from 'node:test';
import { simpleParser, type AddressObject } from 'mailparser';
import {
  ITEM_EVENT_TYPES,
  SOURCE_ATTACHMENT_NAME,
  createSymphonyMimeConverter,
  readV4Event,
  type ConvertInput,
  type ConvertedItem,
} from '../../src/convert/index.ts';
import type { V4Message } from '../../src/source/symphony/api-types.ts';
import { canonicalId, messageIdFor } from '../../src/core/ids.ts';
import type { Conversation, Person } from '../../src/core/types.ts';
import { OPTIONS, assertWireFormat, countHeader, unsafeHtml } from './helpers.ts';

const DIR = fileURLToPath(new URL('./golden/', import.meta.url));
const update = process.env['UPDATE_GOLDEN'] === '1';

interface EventFixture {
  event: Record<string, unknown> & { type: string; messageId?: string; timestamp: number };
  conversation: Conversation;
  participants: Person[];
  previousName?: string;
  /** SYMPHONYELEMENTSACTION: the form's message, which the caller looks up for the field labels. */
  formMessage?: V4Message;
}

const isOurs = (f: string): boolean => !f.startsWith('transcript');
const names = readdirSync(DIR)
  .filter((f) => f.endsWith('.json') && isOurs(f))
  .map((f) => f.slice(0, -5))
  .sort();

function load(name: string): { fixture: EventFixture; input: ConvertInput } {
  const fixture = JSON.parse(readFileSync(`${DIR}${name}.json`, 'utf8')) as EventFixture;
  const result = readV4Event(fixture.event);
  assert.ok('input' in result, `${name}: ${JSON.stringify(result)}`);
  const { roomEvent, elementsAction } = result.input;
  if (fixture.previousName !== undefined && roomEvent) roomEvent.previousName = fixture.previousName;
  if (fixture.formMessage !== undefined && elementsAction) elementsAction.formMessage = fixture.formMessage;
  // The pipeline names an initiator that the event gives by id only from the membership it knows (core/pipeline.ts).
  const bare = !result.input.sender.displayName && !result.input.sender.email;
  const known = bare ? fixture.participants.find((p) => p.userId === result.input.sender.userId) : undefined;
  const input: ConvertInput = {
    ...result.input,
    sender: known ?? result.input.sender,
    conversation: fixture.conversation,
    participants: fixture.participants,
    attachments: [],
    options: { ...OPTIONS },
  };
  return { fixture, input };
}

const converter = createSymphonyMimeConverter();

test('every golden .eml has its fixture, at least one fixture per event type that is an item of its own', () => {
  const orphans = readdirSync(DIR)
    .filter((f) => f.endsWith('.eml') && isOurs(f))
    .filter((f) => !names.includes(f.slice(0, -4)));
  assert.deepEqual(orphans, []);
  const types = new Set(names.map((n) => load(n).fixture.event.type));
  assert.deepEqual([...types].sort(), [...ITEM_EVENT_TYPES].sort());
});

for (const name of names) {
  test(`golden: golden/${name}.eml`, async () => {
    const item = await converter.convert(load(name).input);
    assert.equal(assertWireFormat(item.raw), undefined);
    const path = `${DIR}${name}.eml`;
    if (update || !existsSync(path)) {
      assert.ok(update, `golden ${path} is missing; run with UPDATE_GOLDEN=1 to create it`);
      writeFileSync(path, item.raw);
      return;
    }
    assert.ok(
      item.raw.equals(readFileSync(path)),
      `${name}.eml differs from the golden file (UPDATE_GOLDEN=1 regenerates it)\n${item.raw.toString('utf8')}`,
    );
  });
}

function addresses(a: AddressObject | AddressObject[] | undefined): { name: string; address: string }[] {
  return (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) =>
    o.value.map((v) => ({ name: v.name, address: v.address ?? '' })),
  );
}

const ALICE = 'Alice Martin <alice.martin@bank.example>';
const BOB = 'Bob Chen <bob.chen@bank.example>';

/**
 * Subject, the notice sentence, further lines of the text body; for an item other than a room event its
 * X-Symphony-Item-Type and the Symphony message it is threaded under.
 */
const EXPECT: Record<
  string,
  {
    subject: string;
    sentence: string;
    text?: string[];
    from: string;
    warnings?: string[];
    itemType?: 'suppression' | 'form-response';
    threadedUnder?: string;
  }
> = {
  'room-created': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `Room "Rates Desk EMEA" created by ${ALICE}.`,
    text: ['- Created by: ' + ALICE, '- External: no', '- Public: no', '- Keywords: region: EMEA; desk: rates'],
    from: 'alice.martin@bank.example',
  },
  'room-updated': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `Room properties updated by ${ALICE}; the room is named "Rates Desk EMEA".`,
    text: ['Properties as of this event:\n- Name: Rates Desk EMEA', '- Read-only: yes'],
    from: 'alice.martin@bank.example',
  },
  'room-renamed': {
    subject: '[Symphony] Rates Desk Europe (room event)',
    sentence: `Room renamed from "Rates Desk EMEA" to "Rates Desk Europe" by ${BOB}.`,
    text: ['- Previous name: Rates Desk EMEA\n- Name: Rates Desk Europe'],
    from: 'bob.chen@bank.example',
  },
  'room-deactivated': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `Room deactivated by ${ALICE}.`,
    from: 'alice.martin@bank.example',
  },
  'room-reactivated': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `Room reactivated by ${ALICE}.`,
    from: 'alice.martin@bank.example',
  },
  'user-joined': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `${ALICE} added ${BOB} to the room.`,
    text: [`Event: USERJOINEDROOM\nMember: ${BOB}`],
    from: 'alice.martin@bank.example',
  },
  'user-left': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `${BOB} left the room.`,
    from: 'bob.chen@bank.example',
  },
  'member-promoted': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `${ALICE} made Zoë Ångström <zoe.angstrom@bank.example> an owner of the room.`,
    from: 'alice.martin@bank.example',
  },
  'member-demoted': {
    subject: '[Symphony] Rates Desk EMEA (room event)',
    sentence: `${ALICE} removed Carol Ng <user-68719476737@symphony.invalid> as an owner of the room.`,
    from: 'alice.martin@bank.example',
  },
  'im-created': {
    subject: '[Symphony] Chat: Alice Martin, Bob Chen (chat event)',
    sentence: `${BOB} started a chat with ${ALICE}.`,
    text: ['Conversation: Chat: Alice Martin, Bob Chen (IM)', '- External: yes\n- Cross-pod: no'],
    from: 'bob.chen@bank.example',
  },
  hostile: {
    subject: '[Symphony] Ops X-Injected: 1 room (room event)',
    sentence:
      'Room renamed from "Ops" to "Ops X-Injected: 1 room" by Mallory Bcc: eve@evil.examplegpj.exe ' +
      '<user-555@symphony.invalid>.',
    text: ['- Description: <script>alert(1)</script><img src=x onerror=alert(1)>', '- Keywords: <b>k</b>: "v"&'],
    from: 'user-555@symphony.invalid',
    warnings: ['email of user 555 is not a plain address; using user-555@symphony.invalid'],
  },
  'message-suppressed': {
    subject: '[Symphony] Rates Desk EMEA (removed)',
    sentence:
      'Message QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA was removed (suppressed) in Symphony by Compliance Officer ' +
      '<compliance@bank.example> at 2017-04-25T14:47:09.382Z.',
    from: 'compliance@bank.example',
    itemType: 'suppression',
    threadedUnder: 'QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA',
  },
  'elements-action': {
    subject: '[Symphony] Rates Desk EMEA (form response)',
    sentence: 'Response to Symphony Elements form "test" (form message t2AFSQooaBvh_OrDrNDR53___nGF6NqybQ):',
    text: [
      'Button pressed: Create Alert',
      'userIds: Alice Martin (7215545078461); streamIds: fy0RUFUt6pkiiV3nPZVr5X///nJeKqjMdA==, ' +
        '5fXylrRrqEb1vH4bvBMWNn///nWQegjtdA==',
      'Select the chats where the alert will be sent.',
    ],
    from: 'bob.chen@bank.example',
    itemType: 'form-response',
    threadedUnder: 't2AFSQooaBvh_OrDrNDR53___nGF6NqybQ',
  },
};

describe('event items round trip through mailparser', () => {
  it('has an expectation for every fixture', () => {
    assert.deepEqual(
      names.filter((n) => !(n in EXPECT)),
      [],
    );
  });

  for (const name of names) {
    it(name, async () => {
      const { fixture, input } = load(name);
      const expect = EXPECT[name]!;
      const item: ConvertedItem = await converter.convert(input);
      const mail = await simpleParser(item.raw);
      assert.deepEqual(item.warnings, expect.warnings ?? []);
      for (const h of ['from', 'date', 'message-id', 'subject', 'to', 'mime-version']) {
        assert.equal(countHeader(item.raw, h), 1, `${h} once`);
      }
      for (const h of ['bcc', 'cc', 'x-injected']) assert.equal(countHeader(item.raw, h), 0, `no ${h}`);
      if (expect.threadedUnder === undefined) {
        assert.equal(countHeader(item.raw, 'in-reply-to'), 0, 'a room event is threaded under nothing');
        assert.equal(countHeader(item.raw, 'references'), 0, 'a room event is threaded under nothing');
      } else {
        const parent = `<${messageIdFor(expect.threadedUnder, OPTIONS.messageIdDomain)}>`;
        assert.equal(mail.inReplyTo, parent);
        assert.deepEqual([mail.references ?? []].flat(), [parent]);
      }
      assert.equal(mail.subject, expect.subject);
      assert.deepEqual(
        addresses(mail.from).map((a) => a.address),
        [expect.from],
      );
      assert.equal(mail.date?.getTime(), Math.floor(fixture.event.timestamp / 1000) * 1000);
      assert.equal(mail.headers.get('x-symphony-item-type'), expect.itemType ?? 'room-event');
      if (expect.itemType === undefined) assert.equal(mail.headers.get('x-symphony-event-type'), fixture.event.type);
      assert.equal(mail.headers.get('x-symphony-stream-id'), canonicalId(fixture.conversation.id));
      const symphonyId = fixture.event.messageId ?? input.message.messageId;
      assert.equal(mail.headers.get('x-symphony-message-id'), symphonyId);
      assert.equal(mail.messageId, `<${messageIdFor(symphonyId, OPTIONS.messageIdDomain)}>`);

      const text = mail.text ?? '';
      for (const t of [expect.sentence, ...(expect.text ?? [])]) {
        assert.ok(text.includes(t), `text has ${JSON.stringify(t)}:\n${text}`);
      }
      const html = typeof mail.html === 'string' ? mail.html : '';
      assert.equal(unsafeHtml(html), undefined);
      assert.ok(!item.raw.toString('utf8').includes('\u202e'), 'no bidi override anywhere');

      assert.deepEqual(
        mail.attachments.map((a) => a.filename),
        [SOURCE_ATTACHMENT_NAME],
      );
      const source = JSON.parse(mail.attachments[0]!.content.toString('utf8')) as {
        event: string;
        roomEvent?: { v4Event: unknown };
        suppression?: { v4Event: unknown };
        elementsAction?: { v4Event: unknown };
        message: unknown;
      };
      assert.equal(source.event, fixture.event.type);
      const kept = source.roomEvent ?? source.suppression ?? source.elementsAction;
      assert.deepEqual(kept?.v4Event, fixture.event, 'the V4Event is kept verbatim');
      assert.deepEqual(source.message, input.message);
    });
  }

  it('names the affected member in a header of its own', async () => {
    const mail = await simpleParser((await converter.convert(load('member-promoted').input)).raw);
    assert.equal(mail.headers.get('x-symphony-affected-user-id'), '13056700579891');
    assert.equal(mail.headers.get('x-symphony-sender-id'), '7215545078461');
  });

  it('decodes the RFC 2047 names and keeps the source JSON in UTF-8', async () => {
    const mail = await simpleParser((await converter.convert(load('member-promoted').input)).raw);
    assert.ok(
      addresses(mail.to).some((a) => a.name === 'Zoë Ångström'),
      JSON.stringify(addresses(mail.to)),
    );
    assert.match(mail.attachments[0]!.content.toString('utf8'), /"displayName": "Zoë Ångström"/);
  });
});
