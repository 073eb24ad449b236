import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MembershipTimeline } from '../../src/core/membership.ts';
import type { Membership } from '../../src/core/types.ts';

const person = (userId: string) => ({ userId, email: `${userId}@bank.example` });
const ids = (t: MembershipTimeline, ts: number) =>
  t
    .at(ts)
    .map((p) => p.userId)
    .sort();

describe('membership timeline', () => {
  it('takes a member from their join (inclusive); fixed members are always in', () => {
    const t = new MembershipTimeline([
      { person: person('1'), current: true },
      { person: person('2'), joinedAt: 100, current: true },
    ]);
    assert.deepEqual(ids(t, 99), ['1']);
    assert.deepEqual(ids(t, 100), ['1', '2']);
  });

  it('ends a membership at a leave from a feed (exclusive) and honours a rejoin', () => {
    const members: Membership[] = [{ person: person('2'), joinedAt: 300, current: true }];
    const t = new MembershipTimeline(members, [
      { streamId: 's', userId: '2', ts: 100, kind: 'join' },
      { streamId: 's', userId: '2', ts: 200, kind: 'leave' },
    ]);
    assert.deepEqual(ids(t, 99), []);
    assert.deepEqual(ids(t, 100), ['2']);
    assert.deepEqual(ids(t, 199), ['2']);
    assert.deepEqual(ids(t, 200), []);
    assert.deepEqual(ids(t, 300), ['2']);
    assert.deepEqual(t.unknownLeaves, []);
  });

  it('keeps a past member whose leave was never seen, and says so', () => {
    const t = new MembershipTimeline([{ person: person('3'), joinedAt: 100, current: false }]);
    assert.deepEqual(ids(t, 1_000_000), ['3']);
    assert.deepEqual(
      t.unknownLeaves.map((p) => p.userId),
      ['3'],
    );
  });

  it('a leave with no join before it means the member was in from the start', () => {
    const t = new MembershipTimeline(
      [{ person: person('4'), joinedAt: 500, current: false }],
      [
        { streamId: 's', userId: '4', ts: 50, kind: 'leave' },
        { streamId: 's', userId: '4', ts: 900, kind: 'leave' },
      ],
    );
    assert.deepEqual(ids(t, 10), ['4']);
    assert.deepEqual(ids(t, 60), []);
    assert.deepEqual(ids(t, 600), ['4']);
    assert.deepEqual(ids(t, 900), []);
    assert.deepEqual(t.unknownLeaves, []);
  });

  it('applies changes seen later, learning the person from the event', () => {
    const t = new MembershipTimeline([]);
    t.apply({ streamId: 's', userId: '5', ts: 10, kind: 'join' }, person('5'));
    t.apply({ streamId: 's', userId: '5', ts: 10, kind: 'join' });
    t.apply({ streamId: 's', userId: '5', ts: 20, kind: 'leave' });
    assert.deepEqual(ids(t, 15), ['5']);
    assert.deepEqual(ids(t, 20), []);
    assert.equal(t.person('5')?.email, '5@bank.example');
  });
});
