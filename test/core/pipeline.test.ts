import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isComplete } from '../../src/core/reconcile.ts';
import type { LedgerRow } from '../../src/store/state-store.ts';
import { startArchiveHarness, type ArchiveHarness } from '../helpers/archive.ts';

function expectedCopies(h: ArchiveHarness): number {
  return Object.values(h.emulator.groundTruth().mailboxes).reduce((n, ids) => n + ids.length, 0);
}

describe('archive cycle: emulator → convert → Maildir', () => {
  let h: ArchiveHarness;
  before(async () => {
    h = await startArchiveHarness({ seed: 7, users: 30, streams: 20, messages: 800 });
  });
  after(() => h.close());

  it('files every expected item exactly once, records the unmapped, and a second cycle files nothing new', async () => {
    const truth = h.emulator.groundTruth();
    const first = await h.cycle();
    assert.equal(first.run.status, 'succeeded', first.run.error ?? '');
    assert.equal(first.run.streams, truth.streams);
    assert.equal(first.run.messages, truth.messages);
    assert.equal(first.run.delivered, expectedCopies(h));
    assert.equal(first.run.unmapped, truth.unmapped.length);
    assert.equal(first.run.failed + first.run.quarantined, 0);
    const r = await h.reconcile();
    assert.ok(isComplete(r), JSON.stringify({ ...r, missing: r.missing.slice(0, 3) }));
    assert.equal(r.present, expectedCopies(h));

    const ledger = await h.withStore((s) => s.runLedger(first.run.id));
    const unmapped = ledger.filter((row) => row.status === 'unmapped');
    assert.deepEqual(
      unmapped.map((row) => `${row.userId} ${row.messageId}`).sort(),
      truth.unmapped.map((u) => `${u.userId} ${u.messageId}`).sort(),
    );
    for (const row of unmapped) assert.match(row.reason ?? '', /no email address/);

    const requestsBefore = h.emulator.requestCount();
    const second = await h.cycle();
    assert.equal(second.run.status, 'succeeded');
    assert.equal(second.run.delivered, 0);
    assert.equal(second.run.messages, 0);
    assert.equal(second.run.unmapped, 0);
    // Nothing new: one login pair, the session check, the stream listing; no per-stream reads.
    assert.ok(
      h.emulator.requestCount() - requestsBefore <= 6,
      `${h.emulator.requestCount() - requestsBefore} requests`,
    );
    assert.ok(isComplete(await h.reconcile()));
  });
});

describe('archive cycle with bad input', () => {
  let h: ArchiveHarness;
  before(async () => {
    h = await startArchiveHarness(
      {
        seed: 11,
        users: 24,
        streams: 16,
        messages: 600,
        faults: { brokenAttachments: true, unknownStreamType: true },
      },
      // The broken downloads fail on every try; keep the retries short.
      { source: { maxRetries: 1, backoffBaseMs: 10 } },
    );
  });
  after(() => h.close());

  it('records each defect with its reason and archives everything else', async () => {
    const truth = h.emulator.groundTruth();
    assert.ok(truth.brokenAttachments.length > 0 && truth.malformedMessages.length > 0);
    assert.ok(truth.unknownStreamTypes.length > 0 && truth.unmapped.length > 0);
    const report = await h.cycle();
    assert.equal(report.run.status, 'succeeded', report.run.error ?? '');
    const { quarantine, events, ledger } = await h.withStore(async (s) => ({
      quarantine: await s.quarantined('test'),
      events: await s.events(report.run.id),
      ledger: await s.runLedger(report.run.id),
    }));

    // A failed attachment download quarantines its message, with the reason, for the next cycle.
    const broken = new Set(truth.brokenAttachments.map((b) => b.messageId));
    assert.deepEqual(quarantine.map((q) => q.messageId).sort(), [...broken].sort());
    for (const q of quarantine) {
      assert.match(q.reason, /attachment/i);
      assert.ok(JSON.parse(q.raw).messageId, 'the raw message is kept');
    }
    assert.equal(report.run.quarantined, broken.size);

    // Malformed PresentationML is rendered leniently, with a warning naming the message.
    const warned = (kind: string) => new Set(events.filter((e) => e.kind === kind).map((e) => e.itemId));
    const removed = new Set(truth.suppressed);
    for (const id of truth.malformedMessages) {
      if (!broken.has(id) && !removed.has(id)) assert.ok(warned('conversion').has(id), `warning for malformed ${id}`);
    }
    assert.ok(events.some((e) => e.kind === 'conversion' && /not well-formed/.test(e.reason)));
    // The stream of an unknown type is archived, each message carrying the warning.
    assert.ok(events.some((e) => e.kind === 'conversion' && /stream type "[^"]+" is not known/.test(e.reason)));
    // A participant without an email: a ledger row with the reason per message, one event per user.
    const unmappedUsers = new Set(truth.unmapped.map((u) => u.userId));
    assert.deepEqual(warned('unmapped-user'), unmappedUsers);
    assert.ok(ledger.filter((r: LedgerRow) => r.status === 'unmapped').every((r) => /no email/.test(r.reason ?? '')));

    // Everything but the quarantined messages' copies is there, exactly once.
    const r = await h.reconcile();
    assert.deepEqual(r.duplicated, []);
    assert.deepEqual(r.unexpected, []);
    assert.ok(r.missing.length > 0);
    assert.ok(r.missing.every((m) => broken.has(m.messageId)));
    assert.equal(r.present + r.missing.length, expectedCopies(h));

    // The next cycle retries the quarantined messages and still delivers nothing twice.
    const again = await h.cycle();
    assert.equal(again.run.delivered, 0);
    assert.equal(again.run.quarantined, broken.size, 'each run reports what is still in quarantine');
    const still = await h.withStore((s) => s.quarantined('test'));
    assert.equal(still.length, broken.size);
    assert.ok(
      still.every((q) => q.attempts >= 2),
      'each retry is counted',
    );
    assert.deepEqual((await h.reconcile()).duplicated, []);
  });
});
