/**
 * The generated pod: speed, determinism, the >500-message burst and its paging, and the content kinds an
 * archive must cope with, seen over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generatePod } from '../../../src/emulator/symphony/generate.ts';
import { startSymphonyEmulator, type SymphonyEmulator } from '../../../src/emulator/symphony/index.ts';
import type { V4Message } from '../../../src/source/symphony/api-types.ts';
import { botKeys } from '../../source/symphony/helpers.ts';
import { directory, expectStatus, FeedReader, readAll, sweep, type Sweep } from './archiver.ts';
import { agentHeaders, call, login, podHeaders, qs, type Tokens } from './http.ts';

const BIG = { users: 400, streams: 220, messages: 20_000, botUsername: 'archiver-bot' };

describe('generation', () => {
  it('builds a 20,000-message pod in 200+ streams well under 2 s', () => {
    // Other test files running alongside inflate wall time, GC threads inflate CPU time: the smaller of the two
    // is what generation itself costs.
    const timed = (run: () => void): { cpu: number; wall: number } => {
      const cpu0 = process.cpuUsage();
      const wall0 = performance.now();
      run();
      const cpu = process.cpuUsage(cpu0);
      return { cpu: (cpu.user + cpu.system) / 1000, wall: performance.now() - wall0 };
    };
    let streams = 0;
    let messages = 0;
    const plain = timed(() => {
      const pod = generatePod({ ...BIG, seed: 5, brokenAttachments: true, unknownStreamType: true });
      streams = pod.streams.length;
      messages = pod.streams.reduce((n, s) => n + s.messages.length, 0);
    });
    const live = timed(() => {
      generatePod({
        ...BIG,
        seed: 6,
        brokenAttachments: false,
        unknownStreamType: false,
        live: { startFraction: 0.5, capture: 'datahose' },
      });
    });
    process.stdout.write(
      `# 20,000 messages: ${plain.cpu.toFixed(0)} ms CPU (${plain.wall.toFixed(0)} ms wall), ` +
        `live ${live.cpu.toFixed(0)} ms CPU (${live.wall.toFixed(0)} ms wall)\n`,
    );
    assert.equal(streams, 220);
    assert.equal(messages, 20_000);
    assert.ok(Math.min(plain.cpu, plain.wall) < 1_000, `${plain.wall.toFixed(0)} ms`);
    assert.ok(Math.min(live.cpu, live.wall) < 1_000, `${live.wall.toFixed(0)} ms with a live part`);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const options = {
      users: 30,
      streams: 20,
      messages: 800,
      botUsername: 'b',
      brokenAttachments: false,
      unknownStreamType: false,
    };
    const live = { startFraction: 0.4, capture: 'datafeed' as const };
    const a = generatePod({ ...options, seed: 9, live });
    const b = generatePod({ ...options, seed: 9, live });
    assert.deepEqual(a.groundTruth, b.groundTruth);
    assert.deepEqual(
      a.events.map((e) => [e.id, e.messageId, e.timestamp, e.type]),
      b.events.map((e) => [e.id, e.messageId, e.timestamp, e.type]),
    );
    assert.notDeepEqual(generatePod({ ...options, seed: 10, live }).groundTruth.mailboxes, a.groundTruth.mailboxes);
  });

  it('never puts a message, suppression or form answer at the millisecond of a join or leave in its stream', () => {
    const pod = generatePod({
      ...BIG,
      seed: 7,
      messages: 6_000,
      brokenAttachments: false,
      unknownStreamType: false,
      live: { startFraction: 0.3, capture: 'datahose' },
    });
    let changes = 0;
    for (const s of pod.streams) {
      const times = new Set(s.spans.flatMap((x) => (x.leave === undefined ? [x.join] : [x.join, x.leave])));
      changes += times.size;
      for (const t of s.timestamps) assert.ok(!times.has(t), `message at a membership change in ${s.id}`);
      for (const m of s.messages) {
        const at = pod.suppressedAt.get(m.messageId);
        assert.ok(at === undefined || !times.has(at), 'suppression at a membership change');
      }
    }
    for (const e of pod.events) {
      if (e.type !== 'SYMPHONYELEMENTSACTION' && e.type !== 'MESSAGESUPPRESSED') continue;
      const s = e.stream;
      assert.ok(
        !s.spans.some((x) => x.join === e.timestamp || x.leave === e.timestamp),
        `${e.type} at a membership change`,
      );
    }
    assert.ok(changes > 0, 'membership changes');
    const liveStart = pod.timeline.liveStart as number;
    for (const s of pod.streams) {
      for (const x of s.spans)
        assert.ok(x.leave === undefined || x.leave > liveStart, 'leaves only after the live start');
      if (s.kind !== 'ROOM')
        assert.ok(
          s.spans.every((x) => x.join === s.createdDate && x.leave === undefined),
          'IM, MIM and walls are fixed',
        );
    }
  });

  it('a pod that is not live has joins after creation but no leaves', () => {
    const pod = generatePod({ ...BIG, seed: 8, messages: 3_000, brokenAttachments: false, unknownStreamType: false });
    const spans = pod.streams.flatMap((s) => s.spans.map((x) => ({ s, x })));
    assert.ok(
      spans.every(({ x }) => x.leave === undefined),
      'no leaves',
    );
    assert.ok(
      spans.some(({ s, x }) => x.join > s.createdDate + 60_000),
      'late joiners',
    );
  });
});

describe('a burst of more than one page at one millisecond', () => {
  let emu: SymphonyEmulator;
  let tokens: Tokens;
  before(async () => {
    emu = await startSymphonyEmulator({
      seed: 3,
      users: 60,
      streams: 40,
      messages: 5_000,
      botPublicKeyPem: botKeys().publicKeyPem,
    });
    tokens = await login(emu.url, botKeys().privateKeyPem);
  });
  after(() => emu.close());

  it('is paged with since and skip: every message once, the second page continuing inside the burst', async () => {
    const s = await sweep(emu.url, tokens);
    let found: { sid: string; ts: number; size: number } | undefined;
    for (const [sid, list] of s.messages) {
      const counts = new Map<number, number>();
      for (const m of list) counts.set(m.timestamp, (counts.get(m.timestamp) ?? 0) + 1);
      for (const [ts, size] of counts) if (size > 500) found = { sid, ts, size };
    }
    assert.ok(found, 'a burst of more than 500 messages');
    const first = await call(emu.url, `/agent/v4/stream/${found.sid}/message${qs({ since: found.ts, limit: 500 })}`, {
      headers: agentHeaders(tokens),
    });
    expectStatus(first, 200);
    assert.ok(
      (first.body as V4Message[]).every((m) => m.timestamp === found?.ts),
      'the first page is all burst',
    );
    const second = await call(
      emu.url,
      `/agent/v4/stream/${found.sid}/message${qs({ since: found.ts, skip: 500, limit: 500 })}`,
      { headers: agentHeaders(tokens) },
    );
    expectStatus(second, 200);
    const rest = (second.body as V4Message[]).filter((m) => m.timestamp === found?.ts);
    assert.equal(rest.length, found.size - 500);
    const all = s.messages.get(found.sid) ?? [];
    for (const limit of [500, 137]) {
      const paged = await readAll(emu.url, tokens, found.sid, limit);
      assert.deepEqual(
        paged.map((m) => m.messageId),
        all.map((m) => m.messageId),
        `limit ${limit}`,
      );
    }
  });
});

describe('generated content', () => {
  let emu: SymphonyEmulator;
  let tokens: Tokens;
  let pod: Sweep;
  let all: V4Message[];
  let botId: number;
  before(async () => {
    emu = await startSymphonyEmulator({
      seed: 5,
      users: 40,
      streams: 30,
      messages: 1500,
      botPublicKeyPem: botKeys().publicKeyPem,
      live: { startFraction: 0.5 },
      longPollMs: 20,
    });
    tokens = await login(emu.url, botKeys().privateKeyPem);
    emu.releaseAll();
    pod = await sweep(emu.url, tokens);
    all = [...pod.messages.values()].flat();
    botId = ((await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) })).body as { id: number }).id;
  });
  after(() => emu.close());

  it('has chimes, Elements forms from the bot, disclaimers', () => {
    const chimes = all.filter((m) =>
      m.message?.includes('<audio src="https://asset.symphony.com/symphony/audio/chime.mp3"'),
    );
    assert.ok(chimes.length > 0, 'chimes');
    for (const c of chimes) assert.doesNotMatch(c.message ?? '', /<p>|<span/, 'a chime has no other content');
    const forms = all.filter((m) => /<form id="[^"]+">/.test(m.message ?? ''));
    assert.ok(forms.length > 0, 'forms');
    for (const f of forms) assert.equal(Number(f.user.userId), botId, 'the bot sends the forms');
    assert.ok(
      all.some((m) => typeof m.disclaimer === 'string' && m.disclaimer.length > 0),
      'disclaimers',
    );
  });

  it('walls: the owner alone, each post sharing an earlier room message', () => {
    const walls = pod.streams.filter((s) => s.type === 'POST');
    assert.ok(walls.length > 0, 'walls');
    let shared = 0;
    for (const w of walls) {
      const members = pod.members.get(w.id) ?? [];
      assert.equal(members.length, 1);
      for (const m of pod.messages.get(w.id) ?? []) {
        assert.equal(Number(m.user.userId), members[0]?.userId, 'the owner posts');
        const original = m.sharedMessage;
        if (!original) continue;
        shared++;
        assert.equal(original.stream.streamType, 'ROOM');
        assert.ok(original.timestamp < m.timestamp, 'shared after it was sent');
        const room = pod.members.get(original.stream.streamId) ?? [];
        assert.ok(
          room.some((x) => x.userId === members[0]?.userId),
          'the owner is in that room',
        );
      }
    }
    assert.ok(shared > 0, 'shared posts');
  });

  it('attachments with previews: the preview ids download too but are not attachments', async () => {
    const withPreviews = all.filter((m) => (m.attachments ?? []).some((a) => (a.images ?? []).length > 0));
    assert.ok(withPreviews.length > 0, 'previews');
    const m = withPreviews[0] as V4Message;
    const att = (m.attachments ?? []).find((a) => (a.images ?? []).length > 0);
    const preview = att?.images?.[0]?.id as string;
    assert.ok(!(m.attachments ?? []).some((a) => a.id === preview), 'a preview is not an attachment');
    const res = await call(
      emu.url,
      `/agent/v1/stream/${m.stream.streamId}/attachment${qs({ fileId: preview, messageId: m.messageId })}`,
      { headers: agentHeaders(tokens) },
    );
    expectStatus(res, 200);
  });

  it('users whose email changed: old messages carry the old address, the directory the new one', async () => {
    const users = new Set(all.map((m) => Number(m.user.userId)));
    const current = await directory(emu.url, tokens, users);
    const changed = all.filter(
      (m) => m.user.email && m.user.email.toLowerCase() !== current.get(Number(m.user.userId)),
    );
    assert.ok(changed.length > 0, 'messages with an old address');
    for (const m of changed) {
      assert.match(m.user.email ?? '', /@old\.bank\.example$/);
      const later = all.filter((x) => x.user.userId === m.user.userId && x.user.email !== m.user.email);
      assert.ok(
        later.every((x) => x.timestamp > m.timestamp),
        'the new address only on later messages',
      );
    }
  });

  it('the bot is a member of some rooms and IMs', () => {
    const withBot = pod.streams.filter((s) => (pod.members.get(s.id) ?? []).some((m) => m.userId === botId));
    assert.ok(
      withBot.some((s) => s.type === 'ROOM'),
      'a room',
    );
    assert.ok(
      withBot.some((s) => s.type === 'IM'),
      'an IM',
    );
  });

  it('some event payloads carry standard base64 ids', async () => {
    const live = await startSymphonyEmulator({
      seed: 5,
      users: 40,
      streams: 30,
      messages: 1500,
      botPublicKeyPem: botKeys().publicKeyPem,
      live: { startFraction: 0.5 },
      longPollMs: 20,
    });
    try {
      const t = await login(live.url, botKeys().privateKeyPem);
      const reader = new FeedReader(live.url, t, 'datahose');
      await reader.drain();
      live.releaseAll();
      const events = await reader.drain();
      const standard = events.filter((e) => {
        const inner = Object.values(e.payload)[0] as { stream?: { streamId?: string } };
        return /[+/=]/.test(inner.stream?.streamId ?? '') && /[+/=]/.test(e.messageId);
      });
      assert.ok(standard.length > 0, 'standard base64 in payloads');
      for (const e of events.filter((x) => x.type === 'MESSAGESENT')) {
        const m = (e.payload.messageSent as { message: V4Message }).message;
        assert.equal(e.messageId, m.messageId, 'MESSAGESENT is keyed by its message');
      }
    } finally {
      await live.close();
    }
  });
});
