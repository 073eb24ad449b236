/**
 * Datafeed v5 and Datahose semantics (symphony-api.md §2.9, §2.10): what a feed receives, batches and
 * ackIds, re-delivery, long-poll, expiry, the feed limit, and the feed fault options.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  startSymphonyEmulator,
  type EmulatorOptions,
  type SymphonyEmulator,
} from '../../../src/emulator/symphony/index.ts';
import { botKeys } from '../../source/symphony/helpers.ts';
import { ALL_EVENT_TYPES, expectStatus, FeedReader, type FeedEvent } from './archiver.ts';
import { agentHeaders, call, login, podHeaders, type Response, type Tokens } from './http.ts';

const POD = { seed: 11, users: 12, streams: 10, messages: 300 };
const HOUR = 3_600_000;

async function withPod(
  options: Partial<Omit<EmulatorOptions, 'botPublicKeyPem'>>,
  run: (emu: SymphonyEmulator, tokens: Tokens) => Promise<void>,
): Promise<void> {
  const emu = await startSymphonyEmulator({
    ...POD,
    live: { startFraction: 0.3 },
    longPollMs: 20,
    ...options,
    botPublicKeyPem: botKeys().publicKeyPem,
  });
  try {
    await run(emu, await login(emu.url, botKeys().privateKeyPem));
  } finally {
    await emu.close();
  }
}

function hoseRead(emu: SymphonyEmulator, tokens: Tokens, ackId: string, tag = 'feeds-test'): Promise<Response> {
  return call(emu.url, '/agent/v5/events/read', {
    method: 'POST',
    headers: agentHeaders(tokens),
    body: { type: 'datahose', tag, eventTypes: ALL_EVENT_TYPES, ackId },
  });
}

function batch(res: Response): { events: FeedEvent[]; ackId: string } {
  expectStatus(res, 200);
  return res.body as { events: FeedEvent[]; ackId: string };
}

const ids = (events: FeedEvent[]): string[] => events.map((e) => e.id);

describe('feeds', () => {
  it('a feed only receives events released after it was created', async () => {
    await withPod({}, async (emu, tokens) => {
      const early = new FeedReader(emu.url, tokens, 'datahose', 'early');
      assert.deepEqual(await early.drain(), []);
      const created = emu.now();
      emu.advance(24 * HOUR);
      const late = new FeedReader(emu.url, tokens, 'datahose', 'late');
      assert.deepEqual(await late.drain(), [], 'nothing released since the late feed was created');
      const lateCreated = emu.now();
      emu.advance(24 * HOUR);
      const earlyEvents = await early.drain();
      const lateEvents = await late.drain();
      assert.ok(earlyEvents.length > lateEvents.length && lateEvents.length > 0, 'both feeds got events');
      assert.ok(
        earlyEvents.every((e) => e.timestamp > created && e.timestamp <= emu.now()),
        'early window',
      );
      assert.ok(
        lateEvents.every((e) => e.timestamp > lateCreated),
        'late window',
      );
      const earlyIds = new Set(ids(earlyEvents));
      assert.ok(
        lateEvents.every((e) => earlyIds.has(e.id)),
        'the same events, with the same ids',
      );
    });
  });

  it('a datafeed sees the bot’s conversations only, a datahose the whole pod', async () => {
    await withPod({}, async (emu, tokens) => {
      const feed = new FeedReader(emu.url, tokens, 'datafeed');
      const hose = new FeedReader(emu.url, tokens, 'datahose');
      await feed.drain();
      await hose.drain();
      emu.releaseAll();
      const fromFeed = await feed.drain();
      const fromHose = await hose.drain();
      const hoseIds = new Set(ids(fromHose));
      assert.ok(fromFeed.length > 0 && fromFeed.length < fromHose.length, `${fromFeed.length} < ${fromHose.length}`);
      assert.ok(
        fromFeed.every((e) => hoseIds.has(e.id)),
        'datafeed events are datahose events',
      );
    });
  });

  it('reads return up to 100 events with a new ackId; passing it acknowledges the batch', async () => {
    await withPod({}, async (emu, tokens) => {
      let ackId = batch(await hoseRead(emu, tokens, '')).ackId;
      emu.releaseAll();
      const seen: FeedEvent[] = [];
      const ackIds = new Set<string>([ackId]);
      for (;;) {
        const b = batch(await hoseRead(emu, tokens, ackId));
        assert.ok(b.events.length <= 100, `${b.events.length} events`);
        assert.ok(!ackIds.has(b.ackId), 'a new ackId each time');
        ackIds.add(b.ackId);
        ackId = b.ackId;
        if (b.events.length === 0) break;
        seen.push(...b.events);
      }
      assert.ok(seen.length > 200, `${seen.length} events in several batches`);
      assert.equal(new Set(ids(seen)).size, seen.length, 'nothing acknowledged comes again');
      assert.ok(
        seen.every((e, i) => i === 0 || (seen[i - 1] as FeedEvent).timestamp <= e.timestamp),
        'in release order without the reorder fault',
      );
    });
  });

  it('an empty or older ackId gets the unacknowledged batch again', async () => {
    await withPod({}, async (emu, tokens) => {
      const a0 = batch(await hoseRead(emu, tokens, '')).ackId;
      emu.releaseAll();
      const first = batch(await hoseRead(emu, tokens, a0));
      const again = batch(await hoseRead(emu, tokens, ''));
      assert.deepEqual(ids(again.events), ids(first.events), 'an empty ackId acknowledges nothing');
      const second = batch(await hoseRead(emu, tokens, again.ackId));
      assert.notDeepEqual(ids(second.events), ids(first.events));
      const older = batch(await hoseRead(emu, tokens, again.ackId));
      assert.deepEqual(ids(older.events), ids(second.events), 'an older ackId acknowledges nothing');
      const third = batch(await hoseRead(emu, tokens, older.ackId));
      assert.ok(
        third.events.every((e) => !ids(second.events).includes(e.id)),
        'the latest ackId acknowledges',
      );
      expectStatus(await hoseRead(emu, tokens, 'not-an-ack-id'), 400);
    });
  });

  it('a batch not acknowledged within ackTimeoutMs comes again, even with the right ackId', async () => {
    await withPod({ ackTimeoutMs: 40 }, async (emu, tokens) => {
      const a0 = batch(await hoseRead(emu, tokens, '')).ackId;
      emu.releaseAll();
      const first = batch(await hoseRead(emu, tokens, a0));
      await new Promise((r) => setTimeout(r, 80));
      const again = batch(await hoseRead(emu, tokens, first.ackId));
      assert.deepEqual(ids(again.events), ids(first.events));
      const next = batch(await hoseRead(emu, tokens, again.ackId));
      assert.notDeepEqual(ids(next.events), ids(first.events), 'acknowledged in time this time');
    });
  });

  it('long-polls: waits longPollMs when idle, and answers as soon as events are released', async () => {
    await withPod({ longPollMs: 150 }, async (emu, tokens) => {
      const ack = batch(await hoseRead(emu, tokens, '')).ackId;
      let t0 = Date.now();
      const idle = batch(await hoseRead(emu, tokens, ack));
      assert.deepEqual(idle.events, []);
      assert.equal(typeof idle.ackId, 'string');
      assert.ok(Date.now() - t0 >= 140, `${Date.now() - t0} ms`);

      await withPod({ longPollMs: 5_000 }, async (emu2, tokens2) => {
        const created = await call(emu2.url, '/agent/v5/datafeeds', { method: 'POST', headers: agentHeaders(tokens2) });
        const id = (created.body as { id: string }).id;
        t0 = Date.now();
        const pending = call(emu2.url, `/agent/v5/datafeeds/${id}/read`, {
          method: 'POST',
          headers: agentHeaders(tokens2),
        });
        setTimeout(() => emu2.releaseAll(), 50);
        const woken = batch(await pending);
        assert.ok(woken.events.length > 0, 'woken by the release');
        assert.ok(Date.now() - t0 < 2_000, `${Date.now() - t0} ms`);
      });
    });
  });

  it('closing the emulator does not wait for a long-poll or a slow answer', async () => {
    const emu = await startSymphonyEmulator({
      ...POD,
      live: { startFraction: 0.3 },
      longPollMs: 10_000,
      faults: { slowResponseRate: 0.5, slowResponseMs: 10_000 },
      botPublicKeyPem: botKeys().publicKeyPem,
    });
    const tokens = await login(emu.url, botKeys().privateKeyPem);
    const pending = [0, 1, 2, 3].map(() => hoseRead(emu, tokens, '').catch(() => undefined));
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await emu.close();
    await Promise.all(pending);
    assert.ok(Date.now() - t0 < 1_000, `${Date.now() - t0} ms`);
  });

  it('a feed not read for feedTtlMs is gone (400); a datahose read with an empty ackId starts a new one', async () => {
    await withPod({ feedTtlMs: 60 }, async (emu, tokens) => {
      const created = await call(emu.url, '/agent/v5/datafeeds', { method: 'POST', headers: agentHeaders(tokens) });
      expectStatus(created, 201);
      const id = (created.body as { id: string }).id;
      const read = () =>
        call(emu.url, `/agent/v5/datafeeds/${id}/read`, { method: 'POST', headers: agentHeaders(tokens) });
      expectStatus(await read(), 200);
      const ack = batch(await hoseRead(emu, tokens, '')).ackId;
      await new Promise((r) => setTimeout(r, 120));
      const gone = await read();
      expectStatus(gone, 400);
      assert.match((gone.body as { message: string }).message, /feed no longer exists/);
      const listed = await call(emu.url, '/agent/v5/datafeeds', { headers: agentHeaders(tokens) });
      assert.deepEqual(listed.body, []);
      expectStatus(await hoseRead(emu, tokens, ack), 400);
      expectStatus(await hoseRead(emu, tokens, ''), 200);
    });
  });

  it('more than 20 datafeeds are refused with 403 until one is deleted', async () => {
    await withPod({}, async (emu, tokens) => {
      const create = (tag: string) =>
        call(emu.url, '/agent/v5/datafeeds', { method: 'POST', headers: agentHeaders(tokens), body: { tag } });
      for (let i = 0; i < 20; i++) expectStatus(await create(`f${i}`), 201);
      expectStatus(await create('f20'), 403);
      expectStatus(await create('f3'), 201);
      const del = await call(emu.url, '/agent/v5/datafeeds/f3', { method: 'DELETE', headers: agentHeaders(tokens) });
      expectStatus(del, 204);
      expectStatus(await create('f20'), 201);
    });
  });
});

describe('feed faults', () => {
  it('feedExpiryEvery: every Nth feed read answers 400 and the queued events are lost', async () => {
    await withPod({ faults: { feedExpiryEvery: 3 } }, async (emu, tokens) => {
      let ack = batch(await hoseRead(emu, tokens, '')).ackId;
      emu.advance(24 * HOUR);
      const got = batch(await hoseRead(emu, tokens, ack));
      ack = got.ackId;
      assert.ok(got.events.length > 0, 'events before the expiry');
      expectStatus(await hoseRead(emu, tokens, ack), 400);
      const fresh = batch(await hoseRead(emu, tokens, ''));
      assert.deepEqual(fresh.events, [], 'a new feed starts empty: what was queued is lost');
      const datafeed = await call(emu.url, '/agent/v5/datafeeds', { method: 'POST', headers: agentHeaders(tokens) });
      const id = (datafeed.body as { id: string }).id;
      const read = () =>
        call(emu.url, `/agent/v5/datafeeds/${id}/read`, { method: 'POST', headers: agentHeaders(tokens) });
      expectStatus(await read(), 200);
      expectStatus(await read(), 400);
      expectStatus(await read(), 400);
    });
  });

  it('duplicateEventRate: an event of a batch comes again in a later batch, repeatably', async () => {
    const runs: string[][] = [];
    for (let run = 0; run < 2; run++) {
      await withPod({ faults: { duplicateEventRate: 0.5 } }, async (emu, tokens) => {
        const reader = new FeedReader(emu.url, tokens, 'datahose');
        await reader.drain();
        emu.releaseAll();
        const batches: string[][] = [];
        for (;;) {
          const { events } = await reader.read();
          if (events.length === 0) break;
          batches.push(ids(events));
        }
        const all = batches.flat();
        assert.ok(all.length > new Set(all).size, 'some events are delivered twice');
        for (const b of batches) assert.equal(new Set(b).size, b.length, 'never twice in one batch');
        runs.push(all);
      });
    }
    assert.deepEqual(runs[1], runs[0], 'the same seed duplicates the same events');
  });

  it('reorderEvents: batches hold the same events in another order', async () => {
    const read = async (reorder: boolean): Promise<string[][]> => {
      const out: string[][] = [];
      await withPod({ faults: { reorderEvents: reorder } }, async (emu, tokens) => {
        const reader = new FeedReader(emu.url, tokens, 'datahose');
        await reader.drain();
        emu.releaseAll();
        for (;;) {
          const { events } = await reader.read();
          if (events.length === 0) break;
          out.push(ids(events));
        }
      });
      return out;
    };
    const ordered = await read(false);
    const shuffled = await read(true);
    assert.equal(shuffled.length, ordered.length);
    assert.notDeepEqual(shuffled, ordered);
    shuffled.forEach((b, i) => assert.deepEqual([...b].sort(), [...(ordered[i] ?? [])].sort(), `batch ${i}`));
  });

  it('slowResponseRate: answers come after slowResponseMs', async () => {
    await withPod({ faults: { slowResponseRate: 1, slowResponseMs: 120 } }, async (emu, tokens) => {
      const t0 = Date.now();
      expectStatus(await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) }), 200);
      assert.ok(Date.now() - t0 >= 110, `${Date.now() - t0} ms`);
    });
    await withPod({ faults: { slowResponseRate: 0.5, slowResponseMs: 60 } }, async (emu, tokens) => {
      const times: number[] = [];
      for (let i = 0; i < 12; i++) {
        const t0 = Date.now();
        expectStatus(await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) }), 200);
        times.push(Date.now() - t0);
      }
      assert.ok(times.some((t) => t >= 55) && times.some((t) => t < 55), times.join(','));
    });
  });
});
