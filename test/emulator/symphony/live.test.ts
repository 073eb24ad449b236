/**
 * A live pod: the clock that releases the timeline to the REST views, and the ground truth of a live capture
 * (datahose or datafeed) recomputed from what a perfect archiver reads over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { canonicalId } from '../../../src/core/ids.ts';
import {
  startSymphonyEmulator,
  type EmulatorOptions,
  type SymphonyEmulator,
} from '../../../src/emulator/symphony/index.ts';
import type { V4Message } from '../../../src/source/symphony/api-types.ts';
import { botKeys } from '../../source/symphony/helpers.ts';
import {
  captureLive,
  directory,
  expectStatus,
  expectedTruth,
  listStreams,
  readAll,
  sweep,
  type Sweep,
} from './archiver.ts';
import { agentHeaders, call, login, podHeaders, type Tokens } from './http.ts';

const POD = { seed: 11, users: 12, streams: 10, messages: 300 };
const HOUR = 3_600_000;

function startLive(options: Partial<EmulatorOptions> & { live: EmulatorOptions['live'] }): Promise<SymphonyEmulator> {
  return startSymphonyEmulator({ ...POD, longPollMs: 20, ...options, botPublicKeyPem: botKeys().publicKeyPem });
}

describe('the live clock', () => {
  let emu: SymphonyEmulator;
  let tokens: Tokens;
  let start: number;
  before(async () => {
    emu = await startLive({ live: { startFraction: 0.3 } });
    tokens = await login(emu.url, botKeys().privateKeyPem);
    start = emu.now();
  });
  after(() => emu.close());

  it('starts at the given fraction of the message period and never goes back', async () => {
    const other = await startLive({ live: { startFraction: 0.6 } });
    try {
      assert.ok(other.now() > start, 'a later fraction starts later');
    } finally {
      await other.close();
    }
    const clock = await call(emu.url, '/emulator/clock');
    assert.deepEqual(clock.body, { now: start });
    emu.advanceTo(start - HOUR);
    assert.equal(emu.now(), start);
    assert.throws(() => emu.advance(-1), RangeError);
    await assert.rejects(startLive({ live: { startFraction: 1.5 } }), RangeError);
  });

  it('every REST view shows pod-now, and advancing releases the rest', async () => {
    const first = await sweep(emu.url, tokens);
    let previous = first;
    const seen = new Set<string>();
    let grewStreams = false;
    let renamed = false;
    let dropped = 0;
    let replacedLater = 0;
    for (let step = 0; step < 11; step++) {
      const now = emu.now();
      const current = await sweep(emu.url, tokens);
      for (const s of current.streams) {
        assert.ok((s.attributes?.createdDate ?? 0) <= now, 'no stream from the future');
        const list = current.messages.get(s.id) ?? [];
        for (const m of list) {
          assert.ok(m.timestamp <= now, 'no message from the future');
          if (m.replacedBy) {
            const edit = await call(emu.url, `/agent/v1/message/${m.replacedBy}`, { headers: agentHeaders(tokens) });
            // The edit is there, unless it was itself suppressed since.
            if (edit.status === 200) assert.ok((edit.body as V4Message).timestamp <= now, 'the edit is released');
          }
          seen.add(m.messageId);
        }
        const last = list.at(-1)?.timestamp;
        assert.equal(s.attributes?.lastMessageDate, last, 'lastMessageDate follows the visible messages');
        for (const m of current.members.get(s.id) ?? []) assert.ok(m.joinDate <= now, 'no join from the future');
        const before = previous.streams.find((x) => x.id === s.id);
        if (before && before.attributes?.roomName !== s.attributes?.roomName) renamed = true;
        const earlier = new Map((previous.messages.get(s.id) ?? []).map((m) => [m.messageId, m]));
        for (const id of earlier.keys()) if (!list.some((m) => m.messageId === id)) dropped++;
        for (const m of list)
          if (m.replacedBy && !earlier.get(m.messageId)?.replacedBy && earlier.has(m.messageId)) replacedLater++;
      }
      if (current.streams.length > previous.streams.length) grewStreams = true;
      previous = current;
      emu.advance(12 * HOUR);
    }
    assert.ok(grewStreams, 'streams are created after the live start');
    assert.ok(renamed, 'a room is renamed after the live start');
    assert.ok(dropped > 0, 'a message visible earlier disappears once suppressed');
    assert.ok(replacedLater > 0, 'replacedBy appears once the edit is sent');
    emu.releaseAll();
    const end = await sweep(emu.url, tokens);
    const count = (s: Sweep) => [...s.messages.values()].flat().length;
    assert.ok(count(end) > count(first), 'more messages at the end than at the start');
    assert.ok(seen.size > count(first), 'messages were released step by step');
  });

  it('a pod that is not live shows everything from the start and never moves', async () => {
    const still = await startSymphonyEmulator({ ...POD, botPublicKeyPem: botKeys().publicKeyPem });
    try {
      const t = await login(still.url, botKeys().privateKeyPem);
      const before = await listStreams(still.url, t);
      const now = still.now();
      still.advance(HOUR);
      still.releaseAll();
      assert.equal(still.now(), now + HOUR);
      assert.deepEqual(await listStreams(still.url, t), before);
    } finally {
      await still.close();
    }
  });

  it('live.speed moves pod time with wall time', async () => {
    const fast = await startLive({ live: { startFraction: 0.5, speed: 60_000 } });
    try {
      const t0 = fast.now();
      await new Promise((r) => setTimeout(r, 150));
      assert.ok(fast.now() - t0 >= 60_000 * 50, `${fast.now() - t0} ms of pod time`);
    } finally {
      await fast.close();
    }
  });
});

for (const [capture, seed] of [
  ['datahose', 11],
  ['datahose', 4],
  ['datafeed', 11],
  ['datafeed', 23],
] as const) {
  describe(`ground truth of a live capture through the ${capture} (seed ${seed})`, () => {
    let emu: SymphonyEmulator;
    let tokens: Tokens;
    let captured: Awaited<ReturnType<typeof captureLive>>;
    before(async () => {
      emu = await startLive({ seed, live: { startFraction: 0.35, capture } });
      tokens = await login(emu.url, botKeys().privateKeyPem);
      captured = await captureLive(emu, tokens, capture);
    });
    after(() => emu.close());

    it('equals what a perfect archiver files from the sweeps and the feed', async () => {
      const truth = emu.groundTruth();
      assert.equal(truth.capture, capture);
      const users = new Set<number>();
      for (const s of [captured.start, captured.end]) {
        for (const list of s.members.values()) for (const m of list) users.add(m.userId);
        for (const list of s.messages.values()) for (const m of list) users.add(Number(m.user.userId));
      }
      for (const e of captured.events) {
        users.add(e.initiator.user.userId);
        const inner = Object.values(e.payload)[0] as { affectedUser?: { userId: number }; message?: V4Message };
        if (inner.affectedUser) users.add(inner.affectedUser.userId);
        if (inner.message) users.add(Number(inner.message.user.userId));
      }
      const expected = expectedTruth(captured, await directory(emu.url, tokens, users));
      assert.equal(truth.messages, expected.messages);
      assert.deepEqual(truth.events, expected.events);
      assert.deepEqual(Object.keys(truth.mailboxes).sort(), [...expected.mailboxes.keys()].sort());
      for (const [email, ids] of Object.entries(truth.mailboxes)) {
        assert.equal(new Set(ids).size, ids.length, `${email}: no duplicates`);
        assert.deepEqual(new Set(ids), expected.mailboxes.get(email), email);
      }
      assert.deepEqual(truth.unmapped.map((u) => `${u.userId}/${u.messageId}`).sort(), expected.unmapped.sort());
    });

    it('has live room events of every kind the ground truth files', () => {
      const truth = emu.groundTruth();
      const kinds = ['USERJOINEDROOM', 'USERLEFTROOM', 'ROOMUPDATED', 'MESSAGESUPPRESSED', 'SYMPHONYELEMENTSACTION'];
      for (const k of kinds) assert.ok((truth.events[k as keyof typeof truth.events] ?? 0) > 0, k);
      if (capture === 'datahose') {
        for (const k of ['ROOMCREATED', 'INSTANTMESSAGECREATED', 'SHAREDPOST']) {
          assert.ok((truth.events[k as keyof typeof truth.events] ?? 0) > 0, k);
        }
      }
    });

    it('lists as suppressed exactly the messages neither sweep nor the feed showed', async () => {
      const truth = emu.groundTruth();
      const seen = new Set<string>();
      for (const s of [captured.start, captured.end])
        for (const l of s.messages.values()) for (const m of l) seen.add(m.messageId);
      for (const e of captured.events) {
        const inner = Object.values(e.payload)[0] as { message?: V4Message };
        if (e.type === 'MESSAGESENT' || e.type === 'SHAREDPOST') seen.add((inner.message as V4Message).messageId);
      }
      for (const id of truth.suppressed) {
        assert.ok(!seen.has(id), id);
        expectStatus(await call(emu.url, `/agent/v1/message/${id}`, { headers: agentHeaders(tokens) }), 204);
      }
      // Suppressed after the live start: filed (seen before), and its MESSAGESUPPRESSED filed too.
      const later = captured.events.filter((e) => e.type === 'MESSAGESUPPRESSED');
      assert.ok(later.length > 0, 'suppressions after the live start');
      const filed = new Set(Object.values(truth.mailboxes).flat());
      for (const e of later) {
        const target = canonicalId((e.payload.messageSuppressed as { messageId: string }).messageId);
        assert.ok(filed.has(target) || truth.unmapped.some((u) => u.messageId === target), target);
        assert.ok(filed.has(canonicalId(e.messageId)), 'the suppression is an item');
      }
    });

    if (capture === 'datafeed') {
      it('only carries events of conversations the bot is in', async () => {
        const bot = (await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) })).body as {
          id: number;
        };
        for (const e of captured.events) {
          const inner = Object.values(e.payload)[0] as { stream?: { streamId: string }; message?: V4Message };
          const sid = canonicalId(inner.stream?.streamId ?? inner.message?.stream.streamId ?? '');
          const members = captured.end.members.get(sid) ?? [];
          assert.ok(
            members.some((m) => m.userId === bot.id),
            `${e.type} in ${sid}`,
          );
        }
      });
    }
  });
}

describe('paging through a suppression inside a burst', () => {
  it('a client counting skip across reads steps over a message that is still there', async () => {
    const emu = await startLive({ seed: 11, live: { startFraction: 0.5 } });
    try {
      const tokens = await login(emu.url, botKeys().privateKeyPem);
      const page = (sid: string, since: number, skip: number, limit: number) =>
        call(emu.url, `/agent/v4/stream/${sid}/message?since=${since}&skip=${skip}&limit=${limit}`, {
          headers: agentHeaders(tokens),
        });
      const atTs = (res: Awaited<ReturnType<typeof page>>, ts: number): string[] =>
        (res.status === 200 ? (res.body as V4Message[]) : []).filter((m) => m.timestamp === ts).map((m) => m.messageId);
      // Every burst visible at the live start, read up to its last message.
      const bursts: { sid: string; ts: number; size: number; read: string[] }[] = [];
      for (const s of await listStreams(emu.url, tokens)) {
        const counts = new Map<number, number>();
        for (const m of await readAll(emu.url, tokens, s.id, 500))
          counts.set(m.timestamp, (counts.get(m.timestamp) ?? 0) + 1);
        for (const [ts, size] of counts) {
          if (size < 3) continue;
          bursts.push({ sid: s.id, ts, size, read: atTs(await page(s.id, ts, 0, size - 1), ts) });
        }
      }
      assert.ok(bursts.length > 0, 'bursts before the live start');
      emu.releaseAll();
      let missed = 0;
      for (const b of bursts) {
        const rest = atTs(await page(b.sid, b.ts, b.size - 1, 500), b.ts);
        const now = atTs(await page(b.sid, b.ts, 0, 500), b.ts);
        missed += now.filter((id) => !b.read.includes(id) && !rest.includes(id)).length;
      }
      assert.ok(missed > 0, 'skip counted a suppressed message and stepped over one still there');
    } finally {
      await emu.close();
    }
  });
});
