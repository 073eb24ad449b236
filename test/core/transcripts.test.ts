import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planTranscripts } from '../../src/core/transcripts.ts';
import type { TranscriptEntryRow, TranscriptRow } from '../../src/store/state-store.ts';

const DAY = { streamId: 'stream1', day: '2026-11-25' };
const ZONE = 'Europe/London';

function entry(itemId: string, ts: number, mailboxes: string[]): TranscriptEntryRow {
  return { ...DAY, itemId, ts, mailboxes, entry: '{}' };
}

function built(plan: ReturnType<typeof planTranscripts>[number]): TranscriptRow {
  return {
    ...DAY,
    itemId: plan.itemId,
    revision: plan.revision,
    messageId: `mid-${plan.itemId}`,
    entries: plan.entries.map((e) => e.itemId),
    mailboxes: plan.mailboxes,
  };
}

describe('planTranscripts', () => {
  it('gives each mailbox the items it was entitled to: one transcript per distinct set', () => {
    // Carol joined after m1; Alice and Bob saw the whole day.
    const entries = [entry('m1', 1, ['alice', 'bob']), entry('m2', 2, ['alice', 'bob', 'carol'])];
    const plans = planTranscripts(DAY, ZONE, entries, []);
    assert.equal(plans.length, 2);
    const whole = plans.find((p) => p.mailboxes.includes('alice'))!;
    const part = plans.find((p) => p.mailboxes.includes('carol'))!;
    assert.deepEqual(whole.mailboxes, ['alice', 'bob']);
    assert.deepEqual(
      whole.entries.map((e) => e.itemId),
      ['m1', 'm2'],
    );
    assert.deepEqual(
      part.entries.map((e) => e.itemId),
      ['m2'],
    );
    assert.ok(plans.every((p) => p.revision === 1 && p.supersedes.length === 0 && p.added.length === 0));
    assert.notEqual(whole.itemId, part.itemId);
  });

  it('is complete once built, and a late item makes revision 2 of exactly the mailboxes it reaches', () => {
    const entries = [entry('m1', 1, ['alice', 'bob']), entry('m2', 2, ['alice', 'bob'])];
    const [first] = planTranscripts(DAY, ZONE, entries, []);
    const done = [built(first!)];
    assert.deepEqual(planTranscripts(DAY, ZONE, entries, done), []);

    const late = [...entries, entry('m0', 0, ['alice'])];
    const plans = planTranscripts(DAY, ZONE, late, done);
    assert.equal(plans.length, 1);
    const [revision] = plans;
    assert.deepEqual(revision!.mailboxes, ['alice']);
    assert.equal(revision!.revision, 2);
    assert.deepEqual(revision!.supersedes, [`mid-${first!.itemId}`]);
    assert.deepEqual(revision!.added, ['m0']);
    assert.match(revision!.itemId, /\.r2\./);
  });

  it('gives a newly mapped mailbox the transcript already filed for others, not a new one', () => {
    const entries = [entry('m1', 1, ['alice'])];
    const [first] = planTranscripts(DAY, ZONE, entries, []);
    const remapped = [entry('m1', 1, ['alice', 'bob'])];
    const plans = planTranscripts(DAY, ZONE, remapped, [built(first!)]);
    assert.equal(plans.length, 1);
    assert.equal(plans[0]!.itemId, first!.itemId);
    assert.deepEqual(plans[0]!.mailboxes, ['alice', 'bob']);
  });

  it('names the same items under another zone differently', () => {
    const entries = [entry('m1', 1, ['alice'])];
    const [london] = planTranscripts(DAY, ZONE, entries, []);
    const [tokyo] = planTranscripts(DAY, 'Asia/Tokyo', entries, []);
    assert.notEqual(london!.itemId, tokyo!.itemId);
  });
});
