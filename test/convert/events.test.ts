/**
 * `readV4Event` on good and bad V4Events (symphony-api.md §3, reliability.md §3 rows 9 and 10): every input
 * either yields the parts of an item or a skip reason, and nothing throws. The bytes of each room event item
 * are pinned in events-golden.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { simpleParser } from 'mailparser';
import {
  ITEM_EVENT_TYPES,
  ROOM_EVENT_TYPES,
  createSymphonyMimeConverter,
  fromV4Event,
  isRoomEvent,
  readV4Event,
  type EventInput,
  type EventReadResult,
} from '../../src/convert/index.ts';
import { OPTIONS, assertWireFormat, countHeader, propertyParams } from './helpers.ts';

const ROOM = 'Q2KYGm7JkljrgymMajYTJ3___qcLPr1UdA';
const ALICE = { userId: 7215545078461, displayName: 'Alice Martin', email: 'alice.martin@bank.example' };
const BOB = { userId: 344147139494862, displayName: 'Bob Chen', email: 'bob.chen@bank.example' };

/** The USERJOINEDROOM shape of symphony-api.md §3, filled in. */
function joined(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'ulPr8a',
    messageId: 'a5Y8wcLX06Tv3CqsSuOKjsvEU1roS23BRA',
    timestamp: 1718262060000,
    type: 'USERJOINEDROOM',
    initiator: { user: ALICE },
    payload: {
      userJoinedRoom: { stream: { streamId: ROOM, streamType: 'ROOM', roomName: 'Rates Desk' }, affectedUser: BOB },
    },
    ...overrides,
  };
}

function input(result: EventReadResult): EventInput {
  assert.ok('input' in result, JSON.stringify(result));
  return result.input;
}

function skipOf(result: EventReadResult): { skip: string; type: string; detail: string } {
  assert.ok('skip' in result, 'expected a skip');
  return result;
}

const converter = createSymphonyMimeConverter();

describe('room event types', () => {
  it('lists the nine room events and, with them, every type that becomes an item', () => {
    assert.equal(ROOM_EVENT_TYPES.length, 9);
    assert.deepEqual(
      [...ITEM_EVENT_TYPES].sort(),
      [...ROOM_EVENT_TYPES, 'MESSAGESUPPRESSED', 'SYMPHONYELEMENTSACTION'].sort(),
    );
    for (const t of ROOM_EVENT_TYPES) assert.equal(isRoomEvent(t), true, t);
  });

  it('isRoomEvent is exact and takes any value', () => {
    for (const t of ['MESSAGESENT', 'MESSAGESUPPRESSED', 'roomcreated', ' ROOMCREATED', '', '__proto__', 'toString']) {
      assert.equal(isRoomEvent(t), false, t);
    }
    for (const v of [undefined, null, 1, {}, ['ROOMCREATED']]) assert.equal(isRoomEvent(v), false);
  });
});

describe('readV4Event', () => {
  it('reads a member event: initiator as sender, affected user, stream, the event messageId', () => {
    const parts = input(readV4Event(joined()));
    assert.equal(parts.message.messageId, 'a5Y8wcLX06Tv3CqsSuOKjsvEU1roS23BRA');
    assert.equal(parts.message.timestamp, 1718262060000);
    assert.deepEqual(parts.sender, { userId: '7215545078461', displayName: 'Alice Martin', email: ALICE.email });
    assert.equal(parts.roomEvent?.type, 'USERJOINEDROOM');
    assert.deepEqual(parts.roomEvent?.affectedUser, {
      userId: '344147139494862',
      displayName: 'Bob Chen',
      email: BOB.email,
    });
    assert.equal(parts.message.stream.streamId, ROOM);
    assert.equal(parts.suppression, undefined);
    assert.equal(parts.elementsAction, undefined);
  });

  it('takes ids as numbers or decimal strings, and `userName` for `username`', () => {
    const parts = input(
      readV4Event(
        joined({
          timestamp: '1718262060000',
          initiator: { user: { userId: '7215545078461', userName: 'amartin' } },
          payload: { userJoinedRoom: { stream: { streamId: ROOM }, affectedUser: { userId: '344147139494862' } } },
        }),
      ),
    );
    assert.deepEqual(parts.sender, { userId: '7215545078461', username: 'amartin' });
    assert.equal(parts.roomEvent?.affectedUser?.userId, '344147139494862');
    assert.equal(parts.message.timestamp, 1718262060000);
  });

  it('fills a missing streamType from the event type (symphony-api.md §3 quirks)', () => {
    assert.equal(input(readV4Event(joined())).message.stream.streamType, 'ROOM');
    const noType = { userJoinedRoom: { stream: { streamId: ROOM }, affectedUser: BOB } };
    assert.equal(input(readV4Event(joined({ payload: noType }))).message.stream.streamType, 'ROOM');
    const im = {
      type: 'INSTANTMESSAGECREATED',
      payload: { instantMessageCreated: { stream: { streamId: ROOM, members: [ALICE, BOB, { userId: 'x' }] } } },
    };
    const parts = input(readV4Event(joined(im)));
    assert.equal(parts.message.stream.streamType, 'IM');
    assert.deepEqual(
      parts.roomEvent?.members?.map((m) => m.userId),
      ['7215545078461', '344147139494862'],
    );
    const mim = { instantMessageCreated: { stream: { streamId: ROOM, streamType: 'MIM' } } };
    assert.equal(input(readV4Event(joined({ ...im, payload: mim }))).message.stream.streamType, 'MIM');
  });

  it('derives the same id for a redelivered event without messageId, in either id encoding', () => {
    const bare = joined({ messageId: undefined });
    const a = input(readV4Event(bare)).message.messageId;
    assert.equal(a, `${ROOM}.USERJOINEDROOM.1718262060000.344147139494862`);
    const padded = {
      userJoinedRoom: { stream: { streamId: 'Q2KYGm7JkljrgymMajYTJ3///qcLPr1UdA==' }, affectedUser: BOB },
    };
    assert.equal(input(readV4Event(joined({ messageId: '', payload: padded }))).message.messageId, a);
    const other = { userJoinedRoom: { stream: { streamId: ROOM }, affectedUser: ALICE } };
    assert.notEqual(input(readV4Event(joined({ messageId: undefined, payload: other }))).message.messageId, a);
    const deactivated = {
      type: 'ROOMDEACTIVATED',
      messageId: 7,
      payload: { roomDeactivated: { stream: { streamId: ROOM } } },
    };
    assert.equal(input(readV4Event(joined(deactivated))).message.messageId, `${ROOM}.ROOMDEACTIVATED.1718262060000`);
  });

  it('keeps the room properties it understands and ignores ill-typed ones', () => {
    const parts = input(
      readV4Event(
        joined({
          type: 'ROOMCREATED',
          payload: {
            roomCreated: {
              stream: { streamId: ROOM },
              roomProperties: {
                name: 5,
                description: '  ',
                public: 'yes',
                external: false,
                createdDate: '1718262000000',
                creatorUser: { userId: 'not a number' },
                keywords: ['x', null, { key: 1, value: 'a' }, { key: 'tier', value: 1 }, { key: 'k', value: {} }],
              },
            },
          },
        }),
      ),
    );
    assert.deepEqual(parts.roomEvent?.properties, {
      external: false,
      createdDate: 1718262000000,
      keywords: [{ key: 'tier', value: '1' }],
    });
    const noProps = { roomUpdated: { stream: { streamId: ROOM }, newRoomProperties: 'x' } };
    assert.equal(
      input(readV4Event(joined({ type: 'ROOMUPDATED', payload: noProps }))).roomEvent?.properties,
      undefined,
    );
  });

  it('keeps the event verbatim for the source attachment', () => {
    const event = joined({ extra: { future: 'field' } });
    assert.equal(input(readV4Event(event)).roomEvent?.v4Event, event);
  });

  it('skips room events when roomEvents is false, and only them', () => {
    assert.deepEqual(readV4Event(joined(), { roomEvents: false }), {
      skip: 'disabled',
      type: 'USERJOINEDROOM',
      detail: 'room events are turned off',
    });
    assert.ok('input' in readV4Event(joined(), { roomEvents: true }));
    assert.ok('input' in readV4Event(joined(), {}));
    const suppressed = {
      type: 'MESSAGESUPPRESSED',
      payload: { messageSuppressed: { messageId: 'QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA', stream: { streamId: ROOM } } },
    };
    assert.ok(input(readV4Event(joined(suppressed), { roomEvents: false })).suppression);
  });

  it('says why a bad event makes no item, and never throws', () => {
    const cases: [unknown, string, RegExp][] = [
      [null, 'invalid', /not a V4Event/],
      [[joined()], 'invalid', /not a V4Event/],
      ['USERJOINEDROOM', 'invalid', /not a V4Event/],
      [joined({ type: undefined }), 'invalid', /no type/],
      [joined({ type: 'MESSAGESENT' }), 'unsupported', /not archived/],
      [joined({ type: 'CONNECTIONREQUESTED' }), 'unsupported', /not archived/],
      [joined({ type: '__proto__' }), 'unsupported', /not archived/],
      [joined({ timestamp: undefined }), 'invalid', /timestamp/],
      [joined({ timestamp: Number.NaN }), 'invalid', /timestamp/],
      [joined({ timestamp: 'yesterday' }), 'invalid', /timestamp/],
      [joined({ timestamp: 8.64e15 + 1 }), 'invalid', /timestamp/],
      [joined({ timestamp: '9999999999999999' }), 'invalid', /timestamp/],
      [joined({ initiator: undefined }), 'invalid', /initiator/],
      [joined({ initiator: { user: { userId: -1 } } }), 'invalid', /initiator/],
      [joined({ initiator: { user: { userId: '18446744073709551616' } } }), 'invalid', /initiator/],
      [joined({ initiator: { user: { userId: 1.5 } } }), 'invalid', /initiator/],
      [joined({ payload: undefined }), 'invalid', /no payload\.userJoinedRoom/],
      [joined({ payload: { roomCreated: {} } }), 'invalid', /no payload\.userJoinedRoom/],
      [joined({ payload: { userJoinedRoom: [] } }), 'invalid', /no payload\.userJoinedRoom/],
      [joined({ payload: { userJoinedRoom: { affectedUser: BOB } } }), 'invalid', /stream has no streamId/],
      [
        joined({ payload: { userJoinedRoom: { stream: { streamId: 42 }, affectedUser: BOB } } }),
        'invalid',
        /stream has no streamId/,
      ],
      [
        joined({ payload: { userJoinedRoom: { stream: { streamId: ' ' }, affectedUser: BOB } } }),
        'invalid',
        /stream has no streamId/,
      ],
      [
        joined({ payload: { userJoinedRoom: { stream: { streamId: ROOM } } } }),
        'invalid',
        /affectedUser has no userId/,
      ],
      [
        joined({ payload: { userJoinedRoom: { stream: { streamId: ROOM }, affectedUser: { displayName: 'Bob' } } } }),
        'invalid',
        /affectedUser has no userId/,
      ],
      [
        joined({ type: 'MESSAGESUPPRESSED', payload: { messageSuppressed: { messageId: 12 } } }),
        'invalid',
        /messageId is missing/,
      ],
      [
        joined({ type: 'SYMPHONYELEMENTSACTION', payload: { symphonyElementsAction: {} } }),
        'invalid',
        /formMessageId is missing/,
      ],
    ];
    for (const [event, reason, detail] of cases) {
      const result = skipOf(readV4Event(event));
      assert.equal(result.skip, reason, JSON.stringify(event));
      assert.match(result.detail, detail);
      assert.equal(fromV4Event(event), undefined);
    }
  });

  it('cleans the type it reports, so a log line cannot be forged', () => {
    const result = skipOf(readV4Event(joined({ type: 'X\r\nlevel=error msg=forged' + 'y'.repeat(100) })));
    assert.equal(result.type, ('X level=error msg=forged' + 'y'.repeat(100)).slice(0, 64));
  });

  it('fromV4Event returns the parts of a room event', () => {
    assert.equal(fromV4Event(joined())?.roomEvent?.type, 'USERJOINEDROOM');
  });
});

describe('room event items', () => {
  const conversation = { id: ROOM, type: 'ROOM', name: 'Rates Desk' };
  const participants = [
    { userId: '7215545078461', displayName: 'Alice Martin', email: ALICE.email },
    { userId: '344147139494862', displayName: 'Bob Chen', email: BOB.email },
  ];
  const convert = async (event: unknown, extra: Record<string, unknown> = {}) => {
    const parts = input(readV4Event(event));
    return converter.convert({
      ...parts,
      conversation,
      participants,
      attachments: [],
      options: { ...OPTIONS, ...extra },
    });
  };

  it('tells joining from being added, and leaving from being removed', async () => {
    const self = { userJoinedRoom: { stream: { streamId: ROOM }, affectedUser: ALICE } };
    assert.match(
      (await simpleParser((await convert(joined({ payload: self }))).raw)).text ?? '',
      /Alice Martin <alice\.martin@bank\.example> joined the room\./,
    );
    const removed = {
      type: 'USERLEFTROOM',
      payload: { userLeftRoom: { stream: { streamId: ROOM }, affectedUser: BOB } },
    };
    assert.match(
      (await simpleParser((await convert(joined(removed))).raw)).text ?? '',
      /Alice Martin <alice\.martin@bank\.example> removed Bob Chen <bob\.chen@bank\.example> from the room\./,
    );
  });

  it('shows a rename only when the previous name is known and differs', async () => {
    const event = joined({
      type: 'ROOMUPDATED',
      payload: { roomUpdated: { stream: { streamId: ROOM }, newRoomProperties: { name: 'Rates Desk' } } },
    });
    const text = async (previousName?: string) => {
      const parts = input(readV4Event(event));
      if (previousName !== undefined) parts.roomEvent!.previousName = previousName;
      const item = await converter.convert({ ...parts, conversation, participants, attachments: [], options: OPTIONS });
      return (await simpleParser(item.raw)).text ?? '';
    };
    assert.match(await text(), /Room properties updated by Alice Martin .*; the room is named "Rates Desk"\./);
    assert.match(await text('Rates Desk'), /Room properties updated by/);
    assert.match(await text('Rates'), /Room renamed from "Rates" to "Rates Desk" by Alice Martin/);
    const unnamed = joined({ type: 'ROOMUPDATED', payload: { roomUpdated: { stream: { streamId: ROOM } } } });
    const plain = (await simpleParser((await convert(unnamed)).raw)).text ?? '';
    assert.match(plain, /Room properties updated by Alice Martin <alice\.martin@bank\.example>\.\n/);
    assert.doesNotMatch(plain, /Properties as of this event/);
  });

  it('follows the subject template and has no thread headers', async () => {
    const item = await convert(joined(), { subjectTemplate: '{room}: {sender}{label}' });
    const mail = await simpleParser(item.raw);
    assert.equal(mail.subject, 'Rates Desk: Alice Martin (room event)');
    assert.equal(countHeader(item.raw, 'in-reply-to'), 0);
    assert.equal(countHeader(item.raw, 'references'), 0);
  });

  it('converts a room event it is given even when roomEvents is false: the caller decides', async () => {
    const item = await convert(joined(), { roomEvents: false });
    assert.equal((await simpleParser(item.raw)).headers.get('x-symphony-event-type'), 'USERJOINEDROOM');
  });

  it('gives the same bytes for a redelivered event', async () => {
    const a = await convert(joined({ messageId: undefined }));
    const b = await convert(joined({ messageId: undefined }));
    assert.ok(a.raw.equals(b.raw), 'a.raw.equals(b.raw)');
    assert.equal(a.messageId, b.messageId);
  });

  it('reads any mangled event of any type without throwing; whatever it accepts converts to one well-formed email', async () => {
    // One well-formed event per type that makes an item, then random edits to its fields ('$' is the payload key).
    const stream = { streamId: ROOM, streamType: 'ROOM', roomName: 'Rates Desk' };
    const payloads: Record<string, [string, Record<string, unknown>]> = {
      USERJOINEDROOM: ['userJoinedRoom', { stream, affectedUser: BOB }],
      ROOMUPDATED: [
        'roomUpdated',
        { stream, newRoomProperties: { name: 'Rates', keywords: [{ key: 'k', value: 'v' }] } },
      ],
      INSTANTMESSAGECREATED: ['instantMessageCreated', { stream: { streamId: ROOM, members: [ALICE, BOB] } }],
      MESSAGESUPPRESSED: ['messageSuppressed', { messageId: 'QasBvaApRVqAIGPcqUTOAn___qRaa6hwdA', stream }],
      SYMPHONYELEMENTSACTION: [
        'symphonyElementsAction',
        { stream, formMessageId: 'BFawdKkxmV0ZQmSuIzgfTX___oyR5yO2bQ', formId: 'f', formValues: { action: 'go' } },
      ],
    };
    const paths = [
      ['type'],
      ['messageId'],
      ['timestamp'],
      ['initiator'],
      ['initiator', 'user'],
      ['initiator', 'user', 'userId'],
      ['initiator', 'user', 'displayName'],
      ['payload'],
      ['payload', '$'],
      ['payload', '$', 'stream'],
      ['payload', '$', 'stream', 'streamId'],
      ['payload', '$', 'stream', 'streamType'],
      ['payload', '$', 'stream', 'members'],
      ['payload', '$', 'affectedUser'],
      ['payload', '$', 'affectedUser', 'userId'],
      ['payload', '$', 'affectedUser', 'email'],
      ['payload', '$', 'newRoomProperties'],
      ['payload', '$', 'newRoomProperties', 'keywords'],
      ['payload', '$', 'messageId'],
      ['payload', '$', 'formMessageId'],
      ['payload', '$', 'formValues'],
    ];
    const value = fc.oneof(
      fc.constant(undefined),
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(...ITEM_EVENT_TYPES),
      fc.string({ unit: 'binary', maxLength: 40 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(payloads)),
        fc.array(fc.tuple(fc.constantFrom(...paths), value), { maxLength: 4 }),
        async (type, edits) => {
          const [key, payload] = payloads[type]!;
          const event = structuredClone(joined({ type, payload: { [key]: payload } }));
          for (const [path, v] of edits) {
            let node: unknown = event;
            const keys = path.map((k) => (k === '$' ? key : k));
            for (const k of keys.slice(0, -1))
              node = node && typeof node === 'object' ? (node as Record<string, unknown>)[k] : undefined;
            if (node && typeof node === 'object') (node as Record<string, unknown>)[keys[keys.length - 1]!] = v;
          }
          const result = readV4Event(event);
          if ('skip' in result) return;
          const item = await converter.convert({
            ...result.input,
            conversation,
            participants,
            attachments: [],
            options: OPTIONS,
          });
          assert.equal(assertWireFormat(item.raw), undefined);
          for (const h of ['from', 'date', 'message-id', 'subject']) assert.equal(countHeader(item.raw, h), 1, h);
          const again = await converter.convert({
            ...result.input,
            conversation,
            participants,
            attachments: [],
            options: OPTIONS,
          });
          assert.ok(again.raw.equals(item.raw), 'same event, same bytes');
        },
      ),
      propertyParams(300, 20240613),
    );
  });
});
