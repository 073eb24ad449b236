import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { isComplete } from '../../src/core/reconcile.ts';
import { startArchiveHarness, type ArchiveHarness } from '../helpers/archive.ts';

/**
 * The completeness test of the capture issue: a live pod of 20,000 messages in 220 streams (edits, removals,
 * joins and leaves, same-millisecond bursts, attachments, room events, form answers) archived through a Datahose
 * feed plus history sweeps while the emulator throttles 5 % of calls, fails 1 % and expires the session every
 * 500 calls. The result must equal the emulator's ground truth exactly: every (item, mailbox) once, nothing else.
 */
describe('capture through faults', { timeout: 300_000 }, () => {
  let h: ArchiveHarness;
  before(async () => {
    h = await startArchiveHarness(
      {
        seed: 20_000,
        users: 300,
        streams: 220,
        messages: 20_000,
        live: { startFraction: 0.6, capture: 'datahose' },
        longPollMs: 20,
        faults: { rate429: 0.05, retryAfterSeconds: 1, rate500: 0.01, sessionExpiryEvery: 500 },
      },
      { source: { capture: 'datahose', backoffBaseMs: 20, maxRetries: 12, streamConcurrency: 8 } },
    );
  });
  after(() => h?.close());

  it('archives every item into every mailbox exactly once, nothing extra', async (t) => {
    const started = performance.now();
    const runs = [await h.cycle()];
    // The rest of the pod's life, released in four steps, each followed by the connector's run: the feed read up
    // to now, then a history sweep.
    const truthAtEnd = () => h.emulator.groundTruth();
    for (let step = 0; step < 4; step++) {
      const before = h.emulator.now();
      if (step === 3) h.emulator.releaseAll();
      else h.emulator.advance(Math.max(1, Math.floor((endOf(h) - before) / (4 - step))));
      runs.push(await h.cycle());
    }
    const seconds = (performance.now() - started) / 1000;
    const truth = truthAtEnd();
    const r = await h.reconcile();
    const detail = JSON.stringify({
      missing: r.missing.slice(0, 5),
      duplicated: r.duplicated.slice(0, 5),
      unexpected: r.unexpected.slice(0, 5),
      counts: [r.missing.length, r.duplicated.length, r.unexpected.length],
    });
    assert.ok(isComplete(r), detail);
    assert.ok(r.expected > 20_000, `a realistic fan-out: ${r.expected} items`);
    // Nothing in a mailbox the ground truth does not name.
    const mailboxes = (await readdir(h.mailRoot)).sort();
    assert.deepEqual(mailboxes, Object.keys(truth.mailboxes).sort());
    // Participants without a mailbox are recorded, one ledger row per (item, person).
    const unmapped = await h.withStore(async (store) => {
      const rows = new Set<string>();
      for (const run of await store.runs('test', 1000)) {
        for (const row of await store.runLedger(run.id)) {
          if (row.status === 'unmapped') rows.add(`${row.userId} ${row.messageId}`);
        }
      }
      return rows;
    });
    assert.deepEqual(
      [...unmapped].sort(),
      [...new Set(truth.unmapped.map((u) => `${u.userId} ${u.messageId}`))].sort(),
    );
    const all = await h.withStore((store) => store.runs('test', 1000));
    for (const run of all) assert.equal(run.status, 'succeeded', run.error ?? '');
    const requests = h.emulator.requestCount();
    const throttled = runs.reduce((n, run) => n + run.source.throttled, 0);
    const reauth = runs.reduce((n, run) => n + run.source.reauthentications, 0);
    assert.ok(throttled > 0 && reauth > 0, 'the faults did happen');
    t.diagnostic(
      `capture through faults: ${r.expected} items in ${r.mailboxes} mailboxes, ${truth.messages} messages, ` +
        `${seconds.toFixed(1)} s, ${requests} requests (${throttled} throttled, ${reauth} re-logins)`,
    );
  });
});

function endOf(h: ArchiveHarness): number {
  return h.emulator.timelineEnd();
}
