/**
 * Behaviour of the Symphony emulator seen over HTTP: determinism, RSA login rules, token checks, limits,
 * the since/skip paging contract, the ground truth of a pod that is not live against what it serves, and the
 * fault options.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import {
  startSymphonyEmulator,
  type FaultOptions,
  type GroundTruth,
  type SymphonyEmulator,
} from '../../../src/emulator/symphony/index.ts';
import type { V2AdminStreamInfo, V4Message } from '../../../src/source/symphony/api-types.ts';
import { botKeys, otherKeys } from '../../source/symphony/helpers.ts';
import {
  directory,
  expectStatus,
  expectedTruth,
  readAll,
  sweep,
  type Member as SweepMember,
  type Sweep,
} from './archiver.ts';
import { agentHeaders, call, login, loginJwt, podHeaders, qs, type Response, type Tokens } from './http.ts';

const POD = { seed: 11, users: 12, streams: 10, messages: 300 };

function start(options: { seed?: number; faults?: FaultOptions } = {}): Promise<SymphonyEmulator> {
  return startSymphonyEmulator({ ...POD, ...options, botPublicKeyPem: botKeys().publicKeyPem });
}

interface Member {
  user: { userId: number; email?: string; isExternal: boolean };
  isOwner: boolean;
  joinDate: number;
}

/** Everything the pod serves, read through the API. */
interface Snapshot {
  streams: V2AdminStreamInfo[];
  members: Map<string, Member[]>;
  messages: Map<string, V4Message[]>;
}

async function snapshot(emu: SymphonyEmulator, tokens: Tokens): Promise<Snapshot> {
  const streams: V2AdminStreamInfo[] = [];
  for (let skip = 0; ; skip += 100) {
    const res = await call(emu.url, `/pod/v2/admin/streams/list${qs({ skip, limit: 100 })}`, {
      method: 'POST',
      headers: podHeaders(tokens),
      body: {},
    });
    expectStatus(res, 200);
    const page = (res.body as { streams: V2AdminStreamInfo[] }).streams;
    streams.push(...page);
    if (page.length < 100) break;
  }
  const members = new Map<string, Member[]>();
  const messages = new Map<string, V4Message[]>();
  for (const s of streams) {
    const m = await call(emu.url, `/pod/v1/admin/stream/${s.id}/membership/list?limit=1000`, {
      headers: podHeaders(tokens),
    });
    expectStatus(m, 200);
    members.set(s.id, (m.body as { members: Member[] }).members);
    messages.set(s.id, await readAll(emu.url, tokens, s.id, 500));
  }
  return { streams, members, messages };
}

async function messagePages(emu: SymphonyEmulator, tokens: Tokens): Promise<unknown[]> {
  const list = await call(emu.url, '/pod/v2/admin/streams/list', {
    method: 'POST',
    headers: podHeaders(tokens),
    body: {},
  });
  const pages: unknown[] = [list.body];
  for (const s of (list.body as { streams: V2AdminStreamInfo[] }).streams) {
    const res = await call(emu.url, `/agent/v4/stream/${s.id}/message?since=0&limit=37`, {
      headers: agentHeaders(tokens),
    });
    pages.push(res.status, res.body);
  }
  return pages;
}

function authenticate(emu: SymphonyEmulator, path: string, token: unknown): Promise<Response> {
  return call(emu.url, path, { method: 'POST', body: token === undefined ? {} : { token } });
}

describe('Symphony emulator', () => {
  let emu: SymphonyEmulator;
  let tokens: Tokens;
  let pod: Snapshot;
  let truth: GroundTruth;

  before(async () => {
    emu = await start();
    tokens = await login(emu.url, botKeys().privateKeyPem);
    pod = await snapshot(emu, tokens);
    truth = emu.groundTruth();
  });
  after(() => emu.close());

  describe('determinism', () => {
    it('the same seed gives the same ground truth and the same message pages', async () => {
      const twin = await start();
      try {
        assert.deepEqual(twin.groundTruth(), truth);
        const twinTokens = await login(twin.url, botKeys().privateKeyPem);
        assert.deepEqual(await messagePages(twin, twinTokens), await messagePages(emu, tokens));
      } finally {
        await twin.close();
      }
    });

    it('a different seed gives a different pod', async () => {
      const other = await start({ seed: POD.seed + 1 });
      try {
        const otherTruth = other.groundTruth();
        assert.notDeepEqual(otherTruth.mailboxes, truth.mailboxes);
        const ours = new Set(Object.values(truth.mailboxes).flat());
        assert.ok(
          !Object.values(otherTruth.mailboxes)
            .flat()
            .some((id) => ours.has(id)),
          'no shared message id',
        );
        const otherTokens = await login(other.url, botKeys().privateKeyPem);
        assert.notDeepEqual(await messagePages(other, otherTokens), await messagePages(emu, tokens));
      } finally {
        await other.close();
      }
    });
  });

  describe('RSA login (/login and /relay)', () => {
    const paths = ['/login/pubkey/authenticate', '/relay/pubkey/authenticate'];
    const privateKeyPem = botKeys().privateKeyPem;

    it('accepts an RS512 JWT with exp up to 5 minutes away', async () => {
      for (const path of paths) {
        expectStatus(await authenticate(emu, path, await loginJwt({ privateKeyPem, expiresIn: 300 })), 200);
        expectStatus(await authenticate(emu, path, await loginJwt({ privateKeyPem, expiresIn: 30 })), 200);
      }
    });

    const rejected: [string, () => Promise<unknown>][] = [
      ['a JWT signed with another key', () => loginJwt({ privateKeyPem: otherKeys().privateKeyPem })],
      ['an expired JWT', () => loginJwt({ privateKeyPem, expiresIn: -10 })],
      ['a JWT valid for more than 5 minutes', () => loginJwt({ privateKeyPem, expiresIn: 600 })],
      ['a JWT for another user', () => loginJwt({ privateKeyPem, sub: 'someone-else' })],
      ['an RS256 JWT', () => loginJwt({ privateKeyPem, alg: 'RS256' })],
      [
        'a JWT without exp',
        () =>
          new SignJWT({})
            .setProtectedHeader({ alg: 'RS512' })
            .setSubject('archiver-bot')
            .sign(createPrivateKey(privateKeyPem)),
      ],
      ['garbage', () => Promise.resolve('not.a.jwt')],
      ['no token', () => Promise.resolve(undefined)],
    ];
    for (const [what, make] of rejected) {
      it(`rejects ${what} with 401`, async () => {
        for (const path of paths) {
          const res = await authenticate(emu, path, await make());
          expectStatus(res, 401);
          assert.equal((res.body as { code: number }).code, 401);
        }
      });
    }
  });

  describe('tokens', () => {
    const sid = (): string => pod.streams[0]?.id as string;

    it('pod calls need a valid session token', async () => {
      expectStatus(await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) }), 200);
      const rejected: Record<string, string>[] = [
        {},
        { sessionToken: 'emu-session-forged' },
        { sessionToken: tokens.keyManagerToken },
        { keyManagerToken: tokens.keyManagerToken },
      ];
      for (const headers of rejected) {
        const res = await call(emu.url, '/pod/v2/sessioninfo', { headers });
        expectStatus(res, 401);
        assert.deepEqual(res.body, { code: 401, message: 'Invalid session' });
      }
    });

    it('agent calls need both tokens', async () => {
      const path = `/agent/v4/stream/${sid()}/message?since=0&limit=1`;
      expectStatus(await call(emu.url, path, { headers: agentHeaders(tokens) }), 200);
      const rejected: Record<string, string>[] = [
        { sessionToken: tokens.sessionToken },
        { keyManagerToken: tokens.keyManagerToken },
        { sessionToken: tokens.sessionToken, keyManagerToken: tokens.sessionToken },
        { sessionToken: tokens.sessionToken, keyManagerToken: '0100' + 'ab'.repeat(64) },
      ];
      for (const headers of rejected) {
        expectStatus(await call(emu.url, path, { headers }), 401);
      }
    });

    it('a new login does not end the earlier session', async () => {
      const again = await login(emu.url, botKeys().privateKeyPem);
      assert.notEqual(again.sessionToken, tokens.sessionToken);
      expectStatus(await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) }), 200);
      expectStatus(await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(again) }), 200);
    });
  });

  describe('user directory (/pod/v3/users)', () => {
    const lookup = (params: Record<string, string>) =>
      call(emu.url, `/pod/v3/users${qs(params)}`, { headers: podHeaders(tokens) });
    const members = () => [...pod.members.values()].flat();

    it('finds users by email regardless of case, and by username only with local=true', async () => {
      const m = members().find((x) => x.user.email && !x.user.isExternal) as Member;
      const email = m.user.email as string;
      for (const variant of [email, email.toUpperCase(), email.toLowerCase()]) {
        const res = await lookup({ email: variant });
        expectStatus(res, 200);
        assert.deepEqual(
          (res.body as { users: { id: number }[] }).users.map((u) => u.id),
          [m.user.userId],
        );
      }
      const user = (await lookup({ uid: String(m.user.userId) })).body as { users: { username: string }[] };
      const username = user.users[0]?.username as string;
      assert.ok(username);
      expectStatus(await lookup({ username, local: 'true' }), 200);
      expectStatus(await lookup({ username }), 400);
    });

    it('a local search leaves out external users', async () => {
      const external = members().find((x) => x.user.isExternal) as Member;
      const internal = members().find((x) => !x.user.isExternal) as Member;
      const uid = `${external.user.userId},${internal.user.userId}`;
      const ids = async (params: Record<string, string>) =>
        ((await lookup(params)).body as { users: { id: number }[] }).users.map((u) => u.id).sort();
      assert.deepEqual(await ids({ uid }), [external.user.userId, internal.user.userId].sort());
      assert.deepEqual(await ids({ uid, local: 'true' }), [internal.user.userId]);
      expectStatus(await lookup({ uid: String(external.user.userId), local: 'true' }), 204);
    });
  });

  describe('limits', () => {
    it('answers 400 above each documented maximum and accepts the maximum', async () => {
      const sid = pod.streams[0]?.id as string;
      const cases: [string, 'GET' | 'POST', number, number][] = [
        ['/pod/v2/admin/streams/list?limit=', 'POST', 100, 101],
        [`/pod/v1/admin/stream/${sid}/membership/list?limit=`, 'GET', 1000, 1001],
        [`/agent/v4/stream/${sid}/message?since=0&limit=`, 'GET', 500, 501],
      ];
      for (const [path, method, max, over] of cases) {
        const headers = path.startsWith('/agent') ? agentHeaders(tokens) : podHeaders(tokens);
        const body = method === 'POST' ? {} : undefined;
        expectStatus(await call(emu.url, path + max, { method, headers, body }), 200);
        expectStatus(await call(emu.url, path + over, { method, headers, body }), 400);
      }
      const ids = (n: number): string => Array.from({ length: n }, (_, i) => String(i + 1)).join(',');
      // 100 unknown ids is a valid query that finds nobody (204); 101 is refused.
      expectStatus(await call(emu.url, `/pod/v3/users?uid=${ids(100)}`, { headers: podHeaders(tokens) }), 204);
      expectStatus(await call(emu.url, `/pod/v3/users?uid=${ids(101)}`, { headers: podHeaders(tokens) }), 400);
    });
  });

  describe('message paging', () => {
    /** The largest run of messages sharing one millisecond, with its stream. */
    function biggestBurst(): { sid: string; timestamp: number; size: number; list: V4Message[] } {
      let best = { sid: '', timestamp: 0, size: 0, list: [] as V4Message[] };
      for (const [sid, list] of pod.messages) {
        const counts = new Map<number, number>();
        for (const m of list) counts.set(m.timestamp, (counts.get(m.timestamp) ?? 0) + 1);
        for (const [timestamp, size] of counts) if (size > best.size) best = { sid, timestamp, size, list };
      }
      return best;
    }

    it('the pod has a burst of several messages in one millisecond', () => {
      assert.ok(biggestBurst().size >= 7, `largest burst: ${biggestBurst().size}`);
    });

    it('messages come back ascending by timestamp, and since is inclusive', async () => {
      const { sid, timestamp, size, list } = biggestBurst();
      for (let i = 1; i < list.length; i++) {
        assert.ok((list[i] as V4Message).timestamp >= (list[i - 1] as V4Message).timestamp);
      }
      const res = await call(emu.url, `/agent/v4/stream/${sid}/message${qs({ since: timestamp, limit: size })}`, {
        headers: agentHeaders(tokens),
      });
      expectStatus(res, 200);
      const page = res.body as V4Message[];
      assert.equal(page.length, size);
      assert.ok(page.every((m) => m.timestamp === timestamp));
    });

    it('skip counts the messages at `since` already seen', async () => {
      const { sid, timestamp, list } = biggestBurst();
      const burst = list.filter((m) => m.timestamp === timestamp);
      const res = await call(emu.url, `/agent/v4/stream/${sid}/message${qs({ since: timestamp, skip: 3, limit: 2 })}`, {
        headers: agentHeaders(tokens),
      });
      expectStatus(res, 200);
      assert.deepEqual(
        (res.body as V4Message[]).map((m) => m.messageId),
        burst.slice(3, 5).map((m) => m.messageId),
      );
    });

    for (const limit of [1, 2, 3, 5]) {
      it(`since/skip paging with limit ${limit} yields every message once, across the burst`, async () => {
        const { sid, list } = biggestBurst();
        const paged = await readAll(emu.url, tokens, sid, limit);
        assert.deepEqual(
          paged.map((m) => m.messageId),
          list.map((m) => m.messageId),
        );
      });
    }

    it('paging every stream with a small limit gives the same messages as one big page', async () => {
      for (const [sid, list] of pod.messages) {
        const paged = await readAll(emu.url, tokens, sid, 4);
        assert.deepEqual(
          paged.map((m) => m.messageId),
          list.map((m) => m.messageId),
          sid,
        );
      }
    });
  });

  describe('ground truth (a pod that is not live: capture "history")', () => {
    const allMessages = (): V4Message[] => [...pod.messages.values()].flat();
    let served: Sweep;
    before(async () => {
      served = await sweep(emu.url, tokens);
    });

    it('counts what the pod serves, suppressed messages left out', async () => {
      assert.equal(truth.capture, 'history');
      assert.deepEqual(truth.events, {});
      assert.equal(truth.streams, pod.streams.length);
      assert.equal(truth.messages, allMessages().length);
      assert.ok(truth.suppressed.length > 0, 'some messages are suppressed');
      assert.equal(truth.messages + truth.suppressed.length, POD.messages);
      assert.equal(new Set(allMessages().map((m) => m.messageId)).size, truth.messages, 'message ids are unique');
      for (const id of truth.suppressed) {
        const res = await call(emu.url, `/agent/v1/message/${id}`, { headers: agentHeaders(tokens) });
        expectStatus(res, 204);
      }
    });

    it('files each message to the members at its timestamp and its sender, by current email', async () => {
      const users = new Set<number>();
      for (const list of served.members.values()) for (const m of list) users.add(m.userId);
      for (const list of served.messages.values()) for (const m of list) users.add(Number(m.user.userId));
      const expected = expectedTruth({ events: [], end: served }, await directory(emu.url, tokens, users));
      assert.equal(truth.messages, expected.messages);
      assert.deepEqual(Object.keys(truth.mailboxes).sort(), [...expected.mailboxes.keys()].sort());
      for (const [email, ids] of Object.entries(truth.mailboxes)) {
        assert.equal(email, email.toLowerCase());
        assert.equal(new Set(ids).size, ids.length, `${email}: no duplicates`);
        assert.deepEqual(new Set(ids), expected.mailboxes.get(email), email);
      }
      assert.ok(expected.unmapped.length > 0, 'the pod has recipients without an email');
      assert.deepEqual(truth.unmapped.map((u) => `${u.userId}/${u.messageId}`).sort(), expected.unmapped.sort());
    });

    it('late joiners do not get what was said before they joined', () => {
      let late = 0;
      for (const [sid, list] of served.members) {
        const stream = served.streams.find((s) => s.id === sid) as V2AdminStreamInfo;
        const created = stream.attributes?.createdDate ?? 0;
        for (const m of list.filter((x: SweepMember) => x.joinDate > created + 60_000)) {
          const before = (served.messages.get(sid) ?? []).filter(
            (msg) => msg.timestamp < m.joinDate && Number(msg.user.userId) !== m.userId,
          );
          if (before.length === 0) continue;
          late++;
          const email = Object.entries(truth.mailboxes).find(([, ids]) => ids.includes(before[0]?.messageId ?? ''));
          assert.ok(email, 'the earlier message is filed somewhere');
        }
      }
      assert.ok(late > 0, 'the pod has late joiners with earlier messages');
      assert.ok(
        [...served.members.values()].flat().every((m) => m.current),
        'nobody leaves in a pod that is not live',
      );
    });

    it('users without an email have no emailAddress in the directory either', async () => {
      const ids = [...new Set(truth.unmapped.map((u) => u.userId))];
      const res = await call(emu.url, `/pod/v3/users${qs({ uid: ids.join(',') })}`, { headers: podHeaders(tokens) });
      expectStatus(res, 200);
      const users = (res.body as { users: { id: number; emailAddress?: string }[] }).users;
      assert.deepEqual(users.map((u) => String(u.id)).sort(), ids.sort());
      for (const u of users) assert.equal(u.emailAddress, undefined);
    });

    it('lists the malformed messages, and they exist', () => {
      const byId = new Map(allMessages().map((m) => [m.messageId, m]));
      assert.ok(truth.malformedMessages.length > 0);
      for (const id of truth.malformedMessages) {
        const m = byId.get(id);
        assert.ok(m, id);
        assert.match(m.message ?? '', /&nbsp;|<br>/);
      }
    });
  });

  describe('pod content', () => {
    const allMessages = (): V4Message[] => [...pod.messages.values()].flat();
    const entities = (m: V4Message): { type?: string; id?: { type?: string }[] }[] =>
      m.data ? Object.values(JSON.parse(m.data) as Record<string, { type?: string; id?: { type?: string }[] }>) : [];
    const hasEntityId = (type: string) => (m: V4Message) =>
      entities(m).some((e) => (e.id ?? []).some((i) => i.type === type));

    it('has IMs, MIMs, group chats, rooms, walls and an inactive stream', () => {
      const types = pod.streams.map((s) => s.type);
      assert.ok(types.includes('IM'));
      assert.ok(types.includes('MIM'));
      assert.ok(types.includes('POST'));
      for (const s of pod.streams.filter((x) => x.type === 'POST')) assert.equal(s.attributes?.members?.length, 1);
      assert.ok(pod.streams.some((s) => s.type === 'ROOM' && s.attributes?.groupChat === true));
      assert.ok(pod.streams.some((s) => s.type === 'ROOM' && s.attributes?.groupChat === false));
      assert.ok(pod.streams.some((s) => s.isActive === false));
      for (const s of pod.streams.filter((x) => x.type === 'IM')) assert.equal(s.attributes?.members?.length, 2);
    });

    it('has external users, with and without email, in external streams', () => {
      const members = [...pod.members.values()].flat();
      assert.ok(
        members.some((m) => m.user.isExternal && m.user.email),
        'an external user with an email',
      );
      assert.ok(
        members.some((m) => m.user.isExternal && !m.user.email),
        'an external user without an email',
      );
      assert.ok(
        members.some((m) => !m.user.isExternal && m.user.email),
        'an internal user',
      );
      const external = pod.streams.filter((s) => s.isExternal);
      assert.ok(external.length > 0);
      for (const s of external)
        assert.ok(
          pod.members.get(s.id)?.some((m) => m.user.isExternal),
          s.id,
        );
      assert.ok(
        external.some((s) => s.type === 'IM'),
        'an external IM',
      );
    });

    it('messages carry mentions, hashtags, cashtags and tables', () => {
      const all = allMessages();
      const mentions = all.filter(hasEntityId('com.symphony.user.userId'));
      assert.ok(mentions.length > 0, 'mentions');
      for (const m of all) {
        // Every entity span points at an EntityJSON key and every key has its span (symphony-api.md §4.3).
        const spans = [...(m.message ?? '').matchAll(/<span class="entity" data-entity-id="([^"]+)">/g)].map(
          (x) => x[1],
        );
        const keys = m.data ? Object.keys(JSON.parse(m.data) as object) : [];
        assert.deepEqual(spans.sort(), keys.sort(), m.messageId);
      }
      assert.ok(
        mentions.every((m) => /data-entity-id="[^"]+">@/.test(m.message ?? '')),
        'mention spans start with @',
      );
      assert.ok(all.some(hasEntityId('org.symphonyoss.taxonomy.hashtag')), 'hashtags');
      assert.ok(all.some(hasEntityId('org.symphonyoss.fin.security.id.ticker')), 'cashtags');
      assert.ok(
        all.some((m) => m.message?.includes('<table>')),
        'tables',
      );
      for (const m of all) assert.match(m.message ?? '', /^<div data-format="PresentationML" data-version="2.0"/);
    });

    it('messages carry attachments with ids that need percent-encoding', () => {
      const withAttachments = allMessages().filter((m) => (m.attachments ?? []).length > 0);
      assert.ok(withAttachments.length > 0);
      for (const m of withAttachments) {
        for (const a of m.attachments ?? []) {
          assert.match(a.id, /[/+]/);
          assert.ok(a.size > 0 && a.name.length > 0);
        }
      }
    });

    it('has replies to earlier messages of the same stream and forwards from another', async () => {
      let replies = 0;
      let forwards = 0;
      for (const list of pod.messages.values()) {
        const ids = new Set(list.map((m) => m.messageId));
        for (const m of list.filter((x) => x.parentMessageId)) {
          if (ids.has(m.parentMessageId as string)) {
            replies++;
            continue;
          }
          forwards++;
          const parent = await call(emu.url, `/agent/v1/message/${m.parentMessageId}`, {
            headers: agentHeaders(tokens),
          });
          // The parent may have been suppressed since; otherwise it is an earlier message of another stream.
          if (parent.status === 204) continue;
          expectStatus(parent, 200);
          const p = parent.body as V4Message;
          assert.notEqual(p.stream.streamId, m.stream.streamId);
          assert.ok(p.timestamp < m.timestamp);
        }
      }
      assert.ok(replies > 0, 'replies');
      assert.ok(forwards > 0, 'forwards');
    });

    it('has edits linked both ways to the message they replace', () => {
      const byId = new Map(allMessages().map((m) => [m.messageId, m]));
      // Either side of an edit may have been suppressed since; the rest must hold together.
      const gone = new Set(truth.suppressed);
      const edits = allMessages().filter((m) => m.replacing);
      assert.ok(edits.length > 0, 'edits');
      for (const edit of edits) {
        const old = byId.get(edit.replacing as string);
        if (!old) {
          assert.ok(gone.has(edit.replacing as string), 'the replaced message exists or was suppressed');
          continue;
        }
        assert.equal(old.replacedBy, edit.messageId);
        assert.equal(old.stream.streamId, edit.stream.streamId);
        assert.equal(old.user.userId, edit.user.userId, 'only the author edits');
        assert.ok(old.timestamp < edit.timestamp, 'the edit is later');
        const initial = byId.get(edit.initialMessageId as string);
        if (!initial) {
          assert.ok(gone.has(edit.initialMessageId as string), 'initialMessageId points at a message');
          continue;
        }
        assert.equal(edit.initialTimestamp, initial.timestamp);
        assert.equal(initial.replacing, undefined, 'the chain starts at an original');
      }
      for (const m of allMessages().filter((x) => x.replacedBy)) {
        const edit = byId.get(m.replacedBy as string);
        assert.ok(edit ? edit.replacing === m.messageId : gone.has(m.replacedBy as string), 'replacedBy points back');
      }
    });

    it('every message names its stream and an author who is a member at its timestamp', () => {
      for (const [sid, list] of pod.messages) {
        const members = pod.members.get(sid) ?? [];
        for (const m of list) {
          assert.equal(m.stream.streamId, sid);
          const author = members.find((x) => x.user.userId === Number(m.user.userId));
          assert.ok(author && author.joinDate <= m.timestamp, `${m.messageId} author is a member`);
        }
      }
    });

    it('attachments download as base64 of the advertised size, also through a standard-base64 stream id', async () => {
      const m = allMessages().find((x) => (x.attachments ?? []).length > 0) as V4Message;
      const a = m.attachments?.[0] as { id: string; size: number };
      const standard = m.stream.streamId.replace(/-/g, '+').replace(/_/g, '/') + '==';
      const paths = [m.stream.streamId, encodeURIComponent(standard)].map(
        (sid) => `/agent/v1/stream/${sid}/attachment${qs({ fileId: a.id, messageId: m.messageId })}`,
      );
      const bodies: string[] = [];
      for (const path of paths) {
        const res = await call(emu.url, path, { headers: agentHeaders(tokens) });
        expectStatus(res, 200);
        bodies.push(res.body as string);
      }
      assert.equal(bodies[0], bodies[1]);
      assert.equal(Buffer.from(bodies[0] as string, 'base64').length, a.size);
    });
  });
});

describe('Symphony emulator fault injection', () => {
  it('rate429 answers 429 with Retry-After, repeatably for a seed', async () => {
    const runs: number[][] = [];
    for (let run = 0; run < 2; run++) {
      const emu = await start({ faults: { rate429: 0.5, retryAfterSeconds: 3 } });
      try {
        const tokens = await login(emu.url, botKeys().privateKeyPem);
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) {
          const res = await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) });
          statuses.push(res.status);
          if (res.status === 429) {
            assert.equal(res.headers.get('retry-after'), '3');
            assert.equal((res.body as { code: number }).code, 429);
          }
        }
        runs.push(statuses);
      } finally {
        await emu.close();
      }
    }
    const [first, second] = runs as [number[], number[]];
    assert.ok(first.includes(429) && first.includes(200), first.join(','));
    assert.deepEqual(new Set(first), new Set([200, 429]));
    assert.deepEqual(second, first, 'the same seed throttles the same calls');
  });

  it('Retry-After defaults to 1 second', async () => {
    const emu = await start({ faults: { rate429: 1 } });
    try {
      const tokens = await login(emu.url, botKeys().privateKeyPem);
      const res = await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) });
      expectStatus(res, 429);
      assert.equal(res.headers.get('retry-after'), '1');
    } finally {
      await emu.close();
    }
  });

  it('rate500 answers 500', async () => {
    const emu = await start({ faults: { rate500: 1 } });
    try {
      const tokens = await login(emu.url, botKeys().privateKeyPem);
      expectStatus(await call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) }), 500);
    } finally {
      await emu.close();
    }
  });

  it('sessionExpiryEvery invalidates both tokens after every N authenticated calls', async () => {
    const emu = await start({ faults: { sessionExpiryEvery: 3 } });
    try {
      const first = await login(emu.url, botKeys().privateKeyPem);
      const info = (headers: Record<string, string>) => call(emu.url, '/pod/v2/sessioninfo', { headers });
      const list = await call(emu.url, '/pod/v2/admin/streams/list', {
        method: 'POST',
        headers: podHeaders(first),
        body: {},
      });
      expectStatus(list, 200);
      const sid = (list.body as { streams: { id: string }[] }).streams[0]?.id as string;
      const messages = (t: Tokens) =>
        call(emu.url, `/agent/v4/stream/${sid}/message?since=0&limit=1`, { headers: agentHeaders(t) });
      // Calls 2 and 3 are still served; the third ends the session.
      expectStatus(await messages(first), 200);
      expectStatus(await info(podHeaders(first)), 200);
      expectStatus(await info(podHeaders(first)), 401);
      expectStatus(await messages(first), 401);

      const second = await login(emu.url, botKeys().privateKeyPem);
      // The old key manager token expired along with the session token.
      expectStatus(await messages({ ...second, keyManagerToken: first.keyManagerToken }), 401);
      // Rejected calls do not count towards the next expiry: three more served calls are allowed.
      for (let i = 0; i < 5; i++) expectStatus(await info({}), 401);
      expectStatus(await messages(second), 200);
      expectStatus(await info(podHeaders(second)), 200);
      expectStatus(await messages(second), 200);
      expectStatus(await messages(second), 401);
      expectStatus(await info(podHeaders(second)), 401);

      const third = await login(emu.url, botKeys().privateKeyPem);
      expectStatus(await messages(third), 200);
    } finally {
      await emu.close();
    }
  });

  it('brokenAttachments makes the listed attachments answer 500, the others 200', async () => {
    const emu = await start({ faults: { brokenAttachments: true } });
    try {
      const tokens = await login(emu.url, botKeys().privateKeyPem);
      const truth = emu.groundTruth();
      assert.ok(truth.brokenAttachments.length > 0 && truth.brokenAttachments.length <= 3);
      const broken = new Set(truth.brokenAttachments.map((b) => `${b.messageId}\n${b.attachmentId}`));
      const pod = await snapshot(emu, tokens);
      let ok = 0;
      let failed = 0;
      for (const m of [...pod.messages.values()].flat()) {
        for (const a of m.attachments ?? []) {
          const res = await call(
            emu.url,
            `/agent/v1/stream/${m.stream.streamId}/attachment${qs({ fileId: a.id, messageId: m.messageId })}`,
            { headers: agentHeaders(tokens) },
          );
          if (broken.has(`${m.messageId}\n${a.id}`)) {
            expectStatus(res, 500);
            failed++;
          } else {
            expectStatus(res, 200);
            ok++;
          }
        }
      }
      assert.equal(failed, truth.brokenAttachments.length, 'every listed attachment exists and fails');
      assert.ok(ok > 0);
    } finally {
      await emu.close();
    }
  });
});
