import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyEvents } from '../../src/core/feed-events.ts';

const STREAM = 'IEj12WoWsfTkiqOBkATdUn___pFXhN9OdA';
const user = (userId: number, email?: string) => ({
  userId,
  displayName: `User ${userId}`,
  ...(email ? { email } : {}),
});

function sent(id: string, ts: number, messageId = `msg${id}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`.slice(0, 34)) {
  return {
    id,
    messageId,
    timestamp: ts,
    type: 'MESSAGESENT',
    initiator: { user: user(1) },
    payload: {
      messageSent: {
        message: {
          messageId,
          timestamp: ts,
          message: '<div data-format="PresentationML" data-version="2.0"><p>hi</p></div>',
          user: user(1),
          stream: { streamId: STREAM, streamType: 'ROOM', roomName: 'Rates' },
        },
      },
    },
  };
}

function membership(id: string, type: 'USERJOINEDROOM' | 'USERLEFTROOM', ts: number, userId: number) {
  const key = type === 'USERJOINEDROOM' ? 'userJoinedRoom' : 'userLeftRoom';
  return {
    id,
    messageId: `ev${id}BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB`.slice(0, 34),
    timestamp: ts,
    type,
    initiator: { user: user(1) },
    payload: {
      [key]: {
        stream: { streamId: STREAM, streamType: 'ROOM' },
        affectedUser: user(userId, `u${userId}@bank.example`),
      },
    },
  };
}

describe('feed events', () => {
  it('groups messages and membership changes by stream, in time order, dropping repeats', () => {
    const batch = classifyEvents(
      [sent('b', 200), membership('j', 'USERJOINEDROOM', 200, 7), sent('a', 100), sent('b', 200)],
      { roomEvents: false },
    );
    assert.equal(batch.repeats, 1);
    const g = batch.streams.get(STREAM)!;
    assert.deepEqual(
      g.items.map((i) => i.timestamp),
      [100, 200],
    );
    assert.deepEqual(
      g.changes.map((c) => c.change),
      [{ streamId: STREAM, userId: '7', ts: 200, kind: 'join' }],
    );
    assert.equal(g.changes[0]!.person?.email, 'u7@bank.example');
    assert.equal(g.conversation.name, 'Rates');
  });

  it('makes an item of a room event when asked, addressed to the affected user too', () => {
    const batch = classifyEvents([membership('l', 'USERLEFTROOM', 300, 8)], { roomEvents: true });
    const g = batch.streams.get(STREAM)!;
    assert.equal(g.items.length, 1);
    assert.equal(g.items[0]!.affected?.userId, '8');
    assert.ok(g.items[0]!.record, 'the event is kept for a retry');
  });

  it('rejects what it cannot use, with the reason, and keeps the rest', () => {
    const broken = sent('x', 400);
    delete (broken.payload.messageSent.message as { messageId?: string }).messageId;
    const batch = classifyEvents(
      [
        null,
        { id: 'n', type: 'MESSAGESENT' },
        broken,
        { ...membership('m', 'USERJOINEDROOM', 5, 9), payload: {} },
        sent('ok', 500),
      ],
      { roomEvents: true },
    );
    assert.deepEqual(
      batch.rejected.map((r) => [r.key, r.recoverable, r.reason]),
      [
        ['position-0', false, 'not an object'],
        ['n', false, 'no numeric timestamp'],
        ['m', false, 'USERJOINEDROOM event: no stream id'],
        ['x', true, 'MESSAGESENT event: no messageId'],
      ],
    );
    assert.equal(batch.streams.get(STREAM)!.items.length, 1);
  });
});
