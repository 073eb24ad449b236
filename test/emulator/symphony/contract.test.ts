/**
 * Contract test: every endpoint the emulator serves answers with a status and body that the official
 * Symphony spec (`spec/symphony/`) declares for that operation. Statuses the spec does not declare for an
 * operation (404, 429) are checked against the API's error schema instead.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { startSymphonyEmulator, type SymphonyEmulator } from '../../../src/emulator/symphony/index.ts';
import type { V2AdminStreamInfo, V4Message } from '../../../src/source/symphony/api-types.ts';
import { botKeys, otherKeys } from '../../source/symphony/helpers.ts';
import { ALL_EVENT_TYPES } from './archiver.ts';
import { agentHeaders, call, login, loginJwt, podHeaders, qs, type Response, type Tokens } from './http.ts';
import { OpenApiValidator, type ApiName } from './openapi.ts';

const validator = OpenApiValidator.load();

const POD = { seed: 11, users: 12, streams: 10, messages: 400 };

const STREAMS_LIST = ['pod', 'post', '/v2/admin/streams/list'] as const;
const MEMBERSHIP = ['pod', 'get', '/v1/admin/stream/{id}/membership/list'] as const;
const ROOM_MEMBERSHIP = ['pod', 'get', '/v1/admin/room/{id}/membership/list'] as const;
const MESSAGE = ['agent', 'get', '/v1/message/{id}'] as const;
const DATAFEEDS = ['agent', 'get', '/v5/datafeeds'] as const;
const CREATE_DATAFEED = ['agent', 'post', '/v5/datafeeds'] as const;
const DELETE_DATAFEED = ['agent', 'delete', '/v5/datafeeds/{datafeedId}'] as const;
const READ_DATAFEED = ['agent', 'post', '/v5/datafeeds/{datafeedId}/read'] as const;
const READ_DATAHOSE = ['agent', 'post', '/v5/events/read'] as const;
const USERS = ['pod', 'get', '/v3/users'] as const;
const SESSION_INFO = ['pod', 'get', '/v2/sessioninfo'] as const;
const MESSAGES = ['agent', 'get', '/v4/stream/{sid}/message'] as const;
const ATTACHMENT = ['agent', 'get', '/v1/stream/{sid}/attachment'] as const;
/** The relay (Key Manager) has its own spec that was not copied; it answers the same `Token` as `/login`. */
const LOGIN = ['login', 'post', '/pubkey/authenticate'] as const;

type Operation = readonly [ApiName, string, string];

/**
 * Asserts the status, then that the spec declares it for the operation, that the body matches, and that
 * the body has no property the spec does not list.
 */
function conforms(op: Operation, res: Response, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  validator.assertResponse(op[0], op[1], op[2], res);
  assert.deepEqual(validator.undocumentedProperties(op[0], op[1], op[2], res), [], 'undocumented properties');
}

/** For statuses the spec leaves out: it must really be undeclared, and the body must still be the API's error shape. */
function undeclaredError(op: Operation, res: Response, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  assert.deepEqual(validator.validateResponse(op[0], op[1], op[2], res), [
    `status ${status} is not declared for ${op[1].toUpperCase()} ${op[2]}`,
  ]);
  // The agent's V2Error requires code and message; the pod's Error has no required fields, so check them here.
  validator.assertSchema(op[0], op[0] === 'agent' ? 'V2Error' : 'Error', res.body);
  assert.equal((res.body as { code?: unknown }).code, status);
  assert.equal(typeof (res.body as { message?: unknown }).message, 'string');
}

describe('emulator responses conform to the official Symphony spec', () => {
  let emu: SymphonyEmulator;
  let tokens: Tokens;
  let streams: V2AdminStreamInfo[];
  const messages = new Map<string, V4Message[]>();

  const pod = (path: string, options: { method?: 'GET' | 'POST'; body?: unknown } = {}) =>
    call(emu.url, path, { ...options, headers: podHeaders(tokens) });
  const agent = (path: string) => call(emu.url, path, { headers: agentHeaders(tokens) });

  before(async () => {
    emu = await startSymphonyEmulator({ ...POD, botPublicKeyPem: botKeys().publicKeyPem });
    tokens = await login(emu.url, botKeys().privateKeyPem);
    const res = await pod('/pod/v2/admin/streams/list?limit=100', { method: 'POST', body: {} });
    streams = (res.body as { streams: V2AdminStreamInfo[] }).streams;
    for (const s of streams) {
      const page = await agent(`/agent/v4/stream/${s.id}/message?since=0&limit=500`);
      messages.set(s.id, page.status === 200 ? (page.body as V4Message[]) : []);
    }
  });
  after(() => emu.close());

  describe('the validator', () => {
    it('rejects a V4Message whose timestamp is an object', async () => {
      const res = await agent(`/agent/v4/stream/${streams[0]?.id}/message?since=0&limit=3`);
      conforms(MESSAGES, res, 200);
      const broken = structuredClone(res.body) as Record<string, unknown>[];
      (broken[0] as Record<string, unknown>).timestamp = { epochMillis: 1 };
      const errors = validator.validateResponse(...MESSAGES, { ...res, body: broken });
      assert.deepEqual(errors, ['/0/timestamp must be integer']);
      assert.throws(() => validator.assertResponse(...MESSAGES, { ...res, body: broken }), /violates the spec/);
    });

    it('follows $refs into nested schemas', () => {
      const msg = structuredClone(messages.get(streams[0]?.id ?? '')?.[0]) as unknown as Record<string, unknown>;
      assert.ok(msg, 'a message to mutate');
      msg.user = { userId: 'not-a-number' };
      msg.attachments = [{ id: 'only-an-id' }];
      const errors = validator.validateSchema('agent', 'V4Message', msg);
      assert.ok(errors.includes('/user/userId must be integer'), errors.join('; '));
      assert.ok(errors.includes("/attachments/0 must have required property 'size'"), errors.join('; '));
    });

    it('finds properties the spec does not list, also inside $refs and arrays', () => {
      const list = messages.get(streams[0]?.id ?? '') ?? [];
      const res = { status: 200, contentType: 'application/json', body: structuredClone(list.slice(0, 2)) };
      assert.deepEqual(validator.undocumentedProperties(...MESSAGES, res), []);
      const [a, b] = res.body as unknown as Record<string, Record<string, unknown>>[];
      (a as Record<string, Record<string, unknown>>).user = { ...a?.user, emailAdress: 'typo@bank.example' };
      (b as Record<string, unknown>).threadId = 'x';
      assert.deepEqual(validator.undocumentedProperties(...MESSAGES, res), ['/0/user/emailAdress', '/1/threadId']);
      // Extra properties are legal per the spec, so the schema check itself still passes.
      assert.deepEqual(validator.validateResponse(...MESSAGES, res), []);
    });

    it('checks the formats the specs use', () => {
      assert.deepEqual(validator.validateSchema('agent', 'V4Message', { data: '{not json' }), [
        '/data must match format "JSON"',
      ]);
      assert.ok(validator.validateSchema('pod', 'UserV2', { emailAddress: 'nobody' }).length > 0);
      assert.ok(validator.validateSchema('pod', 'UserV2', { accountType: 'ROBOT' }).length > 0);
      assert.deepEqual(validator.validateSchema('agent', 'V2Error', { code: 500 }), [
        "/ must have required property 'message'",
      ]);
    });

    it('rejects a wrong body, an unexpected body and an undeclared status', () => {
      assert.ok(validator.validateResponse(...STREAMS_LIST, { status: 200, body: { streams: 'none' } }).length > 0);
      assert.ok(validator.validateResponse(...ATTACHMENT, { status: 200, body: 'not base64 at all!' }).length > 0);
      assert.deepEqual(validator.validateResponse(...MESSAGES, { status: 204, body: '[]' }), [
        'status 204 declares no body but one was sent',
      ]);
      assert.deepEqual(validator.validateResponse(...SESSION_INFO, { status: 418, body: {} }), [
        'status 418 is not declared for GET /v2/sessioninfo',
      ]);
      assert.throws(() => validator.validateResponse('pod', 'get', '/v9/nothing', { status: 200, body: {} }));
    });
  });

  describe('login and relay', () => {
    it('issue a Token for a valid RS512 JWT', async () => {
      for (const [path, name] of [
        ['/login/pubkey/authenticate', 'sessionToken'],
        ['/relay/pubkey/authenticate', 'keyManagerToken'],
      ] as const) {
        const token = await loginJwt({ privateKeyPem: botKeys().privateKeyPem });
        const res = await call(emu.url, path, { method: 'POST', body: { token } });
        conforms(LOGIN, res, 200);
        assert.equal((res.body as { name: string }).name, name);
        assert.match(res.contentType ?? '', /^application\/json/);
      }
    });

    it('answer 401 with an Error for a JWT signed by another key', async () => {
      for (const path of ['/login/pubkey/authenticate', '/relay/pubkey/authenticate']) {
        const token = await loginJwt({ privateKeyPem: otherKeys().privateKeyPem });
        conforms(LOGIN, await call(emu.url, path, { method: 'POST', body: { token } }), 401);
      }
    });
  });

  describe('GET /pod/v2/sessioninfo', () => {
    it('returns the bot as UserV2', async () => {
      const res = await pod('/pod/v2/sessioninfo');
      conforms(SESSION_INFO, res, 200);
      assert.equal((res.body as { username?: string }).username, 'archiver-bot');
    });

    it('answers 401 without a session token', async () => {
      conforms(SESSION_INFO, await call(emu.url, '/pod/v2/sessioninfo'), 401);
    });
  });

  describe('POST /pod/v2/admin/streams/list', () => {
    it('lists every stream, also page by page', async () => {
      const all = await pod('/pod/v2/admin/streams/list', { method: 'POST', body: {} });
      conforms(STREAMS_LIST, all, 200);
      const body = all.body as { count: number; skip: number; limit: number; streams: V2AdminStreamInfo[] };
      assert.equal(body.count, POD.streams);
      assert.equal(body.limit, 50, 'default limit');
      const paged: string[] = [];
      for (let skip = 0; skip < body.count; skip += 3) {
        const res = await pod(`/pod/v2/admin/streams/list${qs({ skip, limit: 3 })}`, { method: 'POST', body: {} });
        conforms(STREAMS_LIST, res, 200);
        const page = res.body as { count: number; skip: number; limit: number; streams: V2AdminStreamInfo[] };
        assert.deepEqual([page.count, page.skip, page.limit], [POD.streams, skip, 3]);
        paged.push(...page.streams.map((s) => s.id));
      }
      assert.deepEqual(
        paged,
        body.streams.map((s) => s.id),
      );
    });

    it('returns an empty page past the end and accepts the maximum limit', async () => {
      const past = await pod(`/pod/v2/admin/streams/list${qs({ skip: POD.streams })}`, { method: 'POST', body: {} });
      conforms(STREAMS_LIST, past, 200);
      assert.deepEqual((past.body as { streams: unknown[] }).streams, []);
      conforms(STREAMS_LIST, await pod('/pod/v2/admin/streams/list?limit=100', { method: 'POST', body: {} }), 200);
    });

    it('applies a stream filter and echoes it', async () => {
      const filter = { streamTypes: [{ type: 'IM' }, { type: 'MIM' }], status: 'ACTIVE' };
      const res = await pod('/pod/v2/admin/streams/list', { method: 'POST', body: filter });
      conforms(STREAMS_LIST, res, 200);
      const body = res.body as { filter: unknown; streams: V2AdminStreamInfo[] };
      assert.deepEqual(body.filter, filter);
      assert.ok(body.streams.length > 0);
      for (const s of body.streams) assert.ok(s.type === 'IM' || s.type === 'MIM', s.type);
    });

    it('answers 400 above the maximum limit, for a bad skip and a non-JSON body', async () => {
      conforms(STREAMS_LIST, await pod('/pod/v2/admin/streams/list?limit=101', { method: 'POST', body: {} }), 400);
      conforms(STREAMS_LIST, await pod('/pod/v2/admin/streams/list?skip=-1', { method: 'POST', body: {} }), 400);
      const res = await fetch(`${emu.url}/pod/v2/admin/streams/list`, {
        method: 'POST',
        headers: { ...podHeaders(tokens), 'content-type': 'application/json' },
        body: '{"streamTypes":',
      });
      conforms(STREAMS_LIST, { status: res.status, headers: res.headers, body: await res.json() }, 400);
    });

    it('answers 401 with a wrong session token', async () => {
      const res = await call(emu.url, '/pod/v2/admin/streams/list', {
        method: 'POST',
        headers: { sessionToken: 'nope' },
        body: {},
      });
      conforms(STREAMS_LIST, res, 401);
    });
  });

  describe('GET /pod/v1/admin/stream/{id}/membership/list', () => {
    it('lists the members of every stream type', async () => {
      for (const s of streams) {
        const res = await pod(`/pod/v1/admin/stream/${s.id}/membership/list`);
        conforms(MEMBERSHIP, res, 200);
        const body = res.body as { count: number; members: unknown[] };
        assert.equal(body.count, s.attributes?.membersCount);
        assert.equal(body.members.length, body.count);
      }
    });

    it('pages with skip and limit up to 1000', async () => {
      const s = streams.find((x) => (x.attributes?.membersCount ?? 0) >= 3) as V2AdminStreamInfo;
      const page = await pod(`/pod/v1/admin/stream/${s.id}/membership/list${qs({ skip: 1, limit: 1 })}`);
      conforms(MEMBERSHIP, page, 200);
      assert.equal((page.body as { members: unknown[] }).members.length, 1);
      conforms(MEMBERSHIP, await pod(`/pod/v1/admin/stream/${s.id}/membership/list?limit=1000`), 200);
      conforms(MEMBERSHIP, await pod(`/pod/v1/admin/stream/${s.id}/membership/list?limit=1001`), 400);
    });

    it('answers 401 without a token and 404 for an unknown stream', async () => {
      const s = streams[0] as V2AdminStreamInfo;
      conforms(MEMBERSHIP, await call(emu.url, `/pod/v1/admin/stream/${s.id}/membership/list`), 401);
      undeclaredError(MEMBERSHIP, await pod(`/pod/v1/admin/stream/${'A'.repeat(34)}/membership/list`), 404);
    });
  });

  describe('GET /pod/v3/users', () => {
    it('looks up users by uid, email and username', async () => {
      const ids = new Set<number>();
      for (const s of streams) {
        const res = await pod(`/pod/v1/admin/stream/${s.id}/membership/list`);
        for (const m of (res.body as { members: { user: { userId: number } }[] }).members) ids.add(m.user.userId);
      }
      const byUid = await pod(`/pod/v3/users${qs({ uid: [...ids].join(',') })}`);
      conforms(USERS, byUid, 200);
      const users = (byUid.body as { users: { id: number; emailAddress?: string; username?: string }[] }).users;
      assert.equal(users.length, ids.size);
      const withEmail = users.find((u) => u.emailAddress && u.username) as { emailAddress: string; username: string };
      const byEmail = await pod(`/pod/v3/users${qs({ email: withEmail.emailAddress.toUpperCase() })}`);
      conforms(USERS, byEmail, 200);
      const byName = await pod(`/pod/v3/users${qs({ username: withEmail.username, local: 'true' })}`);
      conforms(USERS, byName, 200);
      // "for username search, the local flag must be true" (spec, parameter `local`).
      conforms(USERS, await pod(`/pod/v3/users${qs({ username: withEmail.username })}`), 400);
    });

    it('reports malformed ids in errors and answers 204 when nothing matches', async () => {
      const me = (await pod('/pod/v2/sessioninfo')).body as { id: number };
      const mixed = await pod(`/pod/v3/users${qs({ uid: `${me.id},abc` })}`);
      conforms(USERS, mixed, 200);
      assert.deepEqual((mixed.body as { errors: unknown[] }).errors, [{ error: 'invalid.format', id: 'abc' }]);
      const none = await pod(`/pod/v3/users${qs({ uid: '1' })}`);
      conforms(USERS, none, 204);
      assert.equal(none.body, undefined);
    });

    it('answers 400 for more than 100 ids or two lists at once, 401 without a token', async () => {
      const ids = Array.from({ length: 101 }, (_, i) => String(i + 1)).join(',');
      conforms(USERS, await pod(`/pod/v3/users${qs({ uid: ids })}`), 400);
      conforms(USERS, await pod(`/pod/v3/users${qs({ uid: '1', email: 'a@b.example' })}`), 400);
      conforms(USERS, await call(emu.url, `/pod/v3/users${qs({ uid: '1' })}`), 401);
    });
  });

  describe('GET /agent/v4/stream/{sid}/message', () => {
    it('returns V4Messages for every stream', () => {
      // `messages` was filled in `before`; validate each full page here so a failure names the stream.
      let total = 0;
      for (const s of streams) {
        const list = messages.get(s.id) ?? [];
        const res = { status: 200, contentType: 'application/json', body: list };
        validator.assertResponse(...MESSAGES, res);
        assert.deepEqual(validator.undocumentedProperties(...MESSAGES, res), [], s.id);
        total += list.length;
      }
      assert.equal(total, emu.groundTruth().messages);
    });

    it('pages with the default limit, skip and until', async () => {
      const [sid, list] = [...messages].sort((a, b) => b[1].length - a[1].length)[0] as [string, V4Message[]];
      assert.ok(list.length > 50);
      const first = await agent(`/agent/v4/stream/${sid}/message?since=0`);
      conforms(MESSAGES, first, 200);
      assert.equal((first.body as V4Message[]).length, 50, 'default limit');
      const mid = list[10] as V4Message;
      const until = await agent(`/agent/v4/stream/${sid}/message${qs({ since: 0, until: mid.timestamp })}`);
      conforms(MESSAGES, until, 200);
      assert.ok((until.body as V4Message[]).every((m) => m.timestamp <= mid.timestamp));
      const limited = await agent(`/agent/v4/stream/${sid}/message${qs({ since: 0, skip: 3, limit: 500 })}`);
      conforms(MESSAGES, limited, 200);
      assert.equal((limited.body as V4Message[])[0]?.messageId, list[3]?.messageId);
    });

    it('answers 204 with no body when nothing is left', async () => {
      const [sid, list] = [...messages].find(([, l]) => l.length > 0) as [string, V4Message[]];
      const last = list.at(-1) as V4Message;
      const res = await agent(`/agent/v4/stream/${sid}/message${qs({ since: last.timestamp + 1 })}`);
      conforms(MESSAGES, res, 204);
      assert.equal(res.body, undefined);
    });

    it('answers 400 above 500, without since, and for a bad since', async () => {
      const sid = streams[0]?.id as string;
      conforms(MESSAGES, await agent(`/agent/v4/stream/${sid}/message?since=0&limit=501`), 400);
      conforms(MESSAGES, await agent(`/agent/v4/stream/${sid}/message`), 400);
      conforms(MESSAGES, await agent(`/agent/v4/stream/${sid}/message?since=yesterday`), 400);
    });

    it('answers 401 without the key manager token, 404 for an unknown stream', async () => {
      const sid = streams[0]?.id as string;
      const noKm = await call(emu.url, `/agent/v4/stream/${sid}/message?since=0`, { headers: podHeaders(tokens) });
      conforms(MESSAGES, noKm, 401);
      undeclaredError(MESSAGES, await agent(`/agent/v4/stream/${'A'.repeat(34)}/message?since=0`), 404);
    });
  });

  describe('GET /agent/v1/stream/{sid}/attachment', () => {
    const attachments = (): { sid: string; messageId: string; id: string; size: number }[] =>
      [...messages].flatMap(([sid, list]) =>
        list.flatMap((m) =>
          (m.attachments ?? []).map((a) => ({ sid, messageId: m.messageId, id: a.id, size: a.size })),
        ),
      );

    it('returns every attachment as base64 text', async () => {
      const all = attachments();
      assert.ok(all.length > 0, 'the pod has attachments');
      for (const a of all) {
        const res = await agent(`/agent/v1/stream/${a.sid}/attachment${qs({ fileId: a.id, messageId: a.messageId })}`);
        conforms(ATTACHMENT, res, 200);
        assert.equal(res.contentType, 'application/octet-stream');
        assert.equal(Buffer.from(res.body as string, 'base64').length, a.size);
      }
    });

    it('answers 400 without messageId, 401 without tokens, 404 for an unknown file', async () => {
      const a = attachments()[0] as { sid: string; messageId: string; id: string };
      conforms(ATTACHMENT, await agent(`/agent/v1/stream/${a.sid}/attachment${qs({ fileId: a.id })}`), 400);
      const url = `/agent/v1/stream/${a.sid}/attachment${qs({ fileId: a.id, messageId: a.messageId })}`;
      conforms(ATTACHMENT, await call(emu.url, url), 401);
      const unknown = `/agent/v1/stream/${a.sid}/attachment${qs({ fileId: 'internal_1/none', messageId: a.messageId })}`;
      // The attachment operation's errors use the agent's `Error`, which requires nothing: check it as V2Error.
      undeclaredError(ATTACHMENT, await agent(unknown), 404);
    });
  });

  describe('GET /pod/v1/admin/room/{id}/membership/list', () => {
    it('lists the members of every room, with and without past members', async () => {
      const rooms = streams.filter((s) => s.type === 'ROOM');
      assert.ok(rooms.length > 0, 'rooms');
      for (const s of rooms) {
        for (const query of ['', '?includePastMembers=false', '?includePastMembers=true']) {
          const res = await pod(`/pod/v1/admin/room/${s.id}/membership/list${query}`);
          conforms(ROOM_MEMBERSHIP, res, 200);
          assert.equal((res.body as unknown[]).length, s.attributes?.membersCount);
        }
      }
    });

    it('answers 400 for a stream that is not a room or a bad flag, 401 without a token, 404 for an unknown room', async () => {
      const im = streams.find((s) => s.type === 'IM') as V2AdminStreamInfo;
      const room = streams.find((s) => s.type === 'ROOM') as V2AdminStreamInfo;
      conforms(ROOM_MEMBERSHIP, await pod(`/pod/v1/admin/room/${im.id}/membership/list`), 400);
      conforms(ROOM_MEMBERSHIP, await pod(`/pod/v1/admin/room/${room.id}/membership/list?includePastMembers=yes`), 400);
      conforms(ROOM_MEMBERSHIP, await call(emu.url, `/pod/v1/admin/room/${room.id}/membership/list`), 401);
      undeclaredError(ROOM_MEMBERSHIP, await pod(`/pod/v1/admin/room/${'A'.repeat(34)}/membership/list`), 404);
    });
  });

  describe('GET /agent/v1/message/{id}', () => {
    it('returns the same V4Message as the stream listing, also through a standard-base64 id', async () => {
      const sample = [...messages.values()].flatMap((list) => list.slice(0, 3));
      assert.ok(sample.length > 0, 'messages');
      for (const m of sample) {
        const res = await agent(`/agent/v1/message/${m.messageId}`);
        conforms(MESSAGE, res, 200);
        assert.deepEqual(res.body, m);
      }
      const m = sample[0] as V4Message;
      const standard = m.messageId.replace(/-/g, '+').replace(/_/g, '/') + '==';
      const res = await agent(`/agent/v1/message/${encodeURIComponent(standard)}`);
      conforms(MESSAGE, res, 200);
      assert.equal((res.body as V4Message).messageId, m.messageId);
    });

    it('answers 204 for an unknown or a suppressed message, 401 without the key manager token', async () => {
      conforms(MESSAGE, await agent(`/agent/v1/message/${'A'.repeat(34)}`), 204);
      const suppressed = emu.groundTruth().suppressed[0] as string;
      conforms(MESSAGE, await agent(`/agent/v1/message/${suppressed}`), 204);
      const m = [...messages.values()].flat()[0] as V4Message;
      conforms(MESSAGE, await call(emu.url, `/agent/v1/message/${m.messageId}`, { headers: podHeaders(tokens) }), 401);
    });
  });

  it('GET /emulator/ground-truth serves the ground truth', async () => {
    const res = await call(emu.url, '/emulator/ground-truth');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, emu.groundTruth());
  });
});

describe('feeds and the room lists of a live pod conform to the spec', () => {
  let emu: SymphonyEmulator;
  let tokens: Tokens;
  const agentCall = (path: string, method: 'GET' | 'POST' | 'DELETE' = 'GET', body?: unknown) =>
    call(emu.url, path, { method, headers: agentHeaders(tokens), ...(body === undefined ? {} : { body }) });
  const datahose = (body: Record<string, unknown>) => agentCall('/agent/v5/events/read', 'POST', body);
  const hoseBody = { type: 'datahose', tag: 'contract', eventTypes: ['MESSAGESENT', 'USERLEFTROOM'] };

  // A fresh pod for each test: what a feed sees depends on when it was created.
  beforeEach(async () => {
    emu = await startSymphonyEmulator({
      ...POD,
      botPublicKeyPem: botKeys().publicKeyPem,
      live: { startFraction: 0.4 },
      longPollMs: 20,
    });
    tokens = await login(emu.url, botKeys().privateKeyPem);
  });
  afterEach(() => emu.close());

  it('datafeed: create (201), list, read, delete (204)', async () => {
    const created = await agentCall('/agent/v5/datafeeds', 'POST', { tag: 'contract-feed' });
    conforms(CREATE_DATAFEED, created, 201);
    const feed = created.body as { id: string; type: string; createdAt: number };
    assert.deepEqual(feed, { id: 'contract-feed', type: 'fanout', createdAt: emu.now() });
    const untagged = await agentCall('/agent/v5/datafeeds', 'POST');
    conforms(CREATE_DATAFEED, untagged, 201);
    assert.match((untagged.body as { id: string }).id, /^[^\s_]+_f$/, 'BDK recognises <id>_f');
    const listed = await agentCall('/agent/v5/datafeeds');
    conforms(DATAFEEDS, listed, 200);
    assert.equal((listed.body as unknown[]).length, 2);
    const byTag = await agentCall('/agent/v5/datafeeds?tag=contract-feed');
    conforms(DATAFEEDS, byTag, 200);
    assert.deepEqual(byTag.body, [feed]);

    emu.advance(24 * 3_600_000);
    const read = await agentCall('/agent/v5/datafeeds/contract-feed/read', 'POST', { ackId: '' });
    conforms(READ_DATAFEED, read, 200);
    assert.ok((read.body as { events: unknown[] }).events.length > 0, 'events');
    const empty = await agentCall(`/agent/v5/datafeeds/${(untagged.body as { id: string }).id}/read`, 'POST');
    conforms(READ_DATAFEED, empty, 200);

    for (const id of ['contract-feed', (untagged.body as { id: string }).id]) {
      conforms(DELETE_DATAFEED, await agentCall(`/agent/v5/datafeeds/${id}`, 'DELETE'), 204);
    }
    conforms(READ_DATAFEED, await agentCall('/agent/v5/datafeeds/contract-feed/read', 'POST'), 400);
    conforms(DELETE_DATAFEED, await agentCall('/agent/v5/datafeeds/contract-feed', 'DELETE'), 400);
    conforms(DATAFEEDS, await call(emu.url, '/agent/v5/datafeeds', { headers: podHeaders(tokens) }), 401);
    conforms(READ_DATAFEED, await agentCall('/agent/v5/datafeeds/x/read', 'POST', { ackId: 7 }), 400);
  });

  it('datafeed: the 21st active feed is refused with 403', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await agentCall('/agent/v5/datafeeds', 'POST', { tag: `limit-${i}` });
      conforms(CREATE_DATAFEED, res, 201);
      ids.push((res.body as { id: string }).id);
    }
    // The spec declares 403 ("20 active feeds") on the read, not the create; the emulator refuses the create.
    undeclaredError(CREATE_DATAFEED, await agentCall('/agent/v5/datafeeds', 'POST', { tag: 'limit-20' }), 403);
    for (const id of ids) conforms(DELETE_DATAFEED, await agentCall(`/agent/v5/datafeeds/${id}`, 'DELETE'), 204);
  });

  it('datahose: every event type matches V4Event, and bad bodies answer 400', async () => {
    const reads: Response[] = [];
    let ackId = '';
    const read = async () => {
      const res = await datahose({ type: 'datahose', tag: 'all', eventTypes: ALL_EVENT_TYPES, ackId });
      conforms(READ_DATAHOSE, res, 200);
      reads.push(res);
      ackId = (res.body as { ackId: string }).ackId;
      return (res.body as { events: unknown[] }).events.length;
    };
    await read();
    emu.releaseAll();
    while ((await read()) > 0);
    const events = reads.flatMap(
      (r) => (r.body as { events: { id: string; messageId: string; type: string }[] }).events,
    );
    assert.deepEqual(new Set(events.map((e) => e.type)), new Set(ALL_EVENT_TYPES));
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'event ids are unique');
    assert.ok(
      events.every((e) => typeof e.messageId === 'string' && e.messageId.length > 0),
      'every event has a messageId',
    );

    for (const bad of [
      {},
      { ...hoseBody, type: 'datafeed' },
      { ...hoseBody, tag: '' },
      { ...hoseBody, tag: 'x'.repeat(81) },
      { ...hoseBody, eventTypes: [] },
      { ...hoseBody, eventTypes: ['MESSAGE_SENT'] },
      { ...hoseBody, scopes: ['GALACTIC'] },
      { ...hoseBody, ackId: 'never-issued' },
    ]) {
      conforms(READ_DATAHOSE, await datahose(bad), 400);
    }
    conforms(READ_DATAHOSE, await call(emu.url, '/agent/v5/events/read', { method: 'POST', body: hoseBody }), 401);
  });

  it('the room list with past members shows who left, with a join date in the past', async () => {
    let past = 0;
    for (let step = 0; step < 12; step++) {
      emu.advance(6 * 3_600_000);
      const list = await call(emu.url, '/pod/v2/admin/streams/list?limit=100', {
        method: 'POST',
        headers: podHeaders(tokens),
        body: { streamTypes: [{ type: 'ROOM' }] },
      });
      for (const s of (list.body as { streams: V2AdminStreamInfo[] }).streams) {
        const path = `/pod/v1/admin/room/${s.id}/membership/list`;
        const current = await call(emu.url, path, { headers: podHeaders(tokens) });
        const all = await call(emu.url, `${path}?includePastMembers=true`, { headers: podHeaders(tokens) });
        conforms(ROOM_MEMBERSHIP, current, 200);
        conforms(ROOM_MEMBERSHIP, all, 200);
        const ids = new Set((current.body as { id: number }[]).map((m) => m.id));
        for (const m of all.body as { id: number; joinDate: number }[]) {
          if (ids.has(m.id)) continue;
          past++;
          assert.ok(m.joinDate <= emu.now(), 'joined in the past');
        }
      }
    }
    assert.ok(past > 0, 'some room has a past member at some point');
  });
});

describe('emulator faults conform to the spec', () => {
  it('a stream of unknown type and a broken attachment (500) still match the spec', async () => {
    const emu = await startSymphonyEmulator({
      ...POD,
      botPublicKeyPem: botKeys().publicKeyPem,
      faults: { brokenAttachments: true, unknownStreamType: true },
    });
    try {
      const tokens = await login(emu.url, botKeys().privateKeyPem);
      const truth = emu.groundTruth();
      assert.equal(truth.unknownStreamTypes.length, 1);
      const odd = truth.unknownStreamTypes[0] as string;
      const list = await call(emu.url, '/pod/v2/admin/streams/list', {
        method: 'POST',
        headers: podHeaders(tokens),
        body: {},
      });
      conforms(STREAMS_LIST, list, 200);
      const info = (list.body as { streams: V2AdminStreamInfo[] }).streams.find((s) => s.id === odd);
      assert.equal(info?.type, 'CHATROOM');
      const msgs = await call(emu.url, `/agent/v4/stream/${odd}/message?since=0&limit=500`, {
        headers: agentHeaders(tokens),
      });
      conforms(MESSAGES, msgs, 200);
      assert.equal((msgs.body as V4Message[])[0]?.stream.streamType, 'CHATROOM');

      assert.ok(truth.brokenAttachments.length > 0);
      for (const b of truth.brokenAttachments) {
        const res = await call(
          emu.url,
          `/agent/v1/stream/${b.streamId}/attachment${qs({ fileId: b.attachmentId, messageId: b.messageId })}`,
          { headers: agentHeaders(tokens) },
        );
        conforms(ATTACHMENT, res, 500);
        validator.assertSchema('agent', 'V2Error', res.body);
      }
    } finally {
      await emu.close();
    }
  });

  it('429 answers carry Retry-After and the error shape on every endpoint', async () => {
    const emu = await startSymphonyEmulator({
      ...POD,
      botPublicKeyPem: botKeys().publicKeyPem,
      faults: { rate429: 1, retryAfterSeconds: 2 },
    });
    try {
      const tokens = await login(emu.url, botKeys().privateKeyPem);
      // Throttling comes before the handler runs, so any well-formed stream id will do.
      const sid = 'A'.repeat(34);
      const cases: [Operation, Promise<Response>][] = [
        [SESSION_INFO, call(emu.url, '/pod/v2/sessioninfo', { headers: podHeaders(tokens) })],
        [
          STREAMS_LIST,
          call(emu.url, '/pod/v2/admin/streams/list', { method: 'POST', headers: podHeaders(tokens), body: {} }),
        ],
        [MEMBERSHIP, call(emu.url, `/pod/v1/admin/stream/${sid}/membership/list`, { headers: podHeaders(tokens) })],
        [USERS, call(emu.url, '/pod/v3/users?uid=1', { headers: podHeaders(tokens) })],
        [MESSAGES, call(emu.url, `/agent/v4/stream/${sid}/message?since=0`, { headers: agentHeaders(tokens) })],
        [
          ATTACHMENT,
          call(emu.url, `/agent/v1/stream/${sid}/attachment?fileId=x&messageId=y`, { headers: agentHeaders(tokens) }),
        ],
      ];
      for (const [op, pending] of cases) {
        const res = await pending;
        undeclaredError(op, res, 429);
        assert.equal(res.headers.get('retry-after'), '2', `${op[2]} Retry-After`);
      }
    } finally {
      await emu.close();
    }
  });
});
