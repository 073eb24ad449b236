import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import type { AppError } from '../../../src/core/errors.ts';
import { isAppError } from '../../../src/core/errors.ts';
import type { V4Message } from '../../../src/source/symphony/api-types.ts';
import { backoffDelay, parseRetryAfter } from '../../../src/source/symphony/retry.ts';
import { botKeys, collect, collectPages, sourceFor, startFake, type FakeServer } from './helpers.ts';

const STREAM = 'RUkxW4x40aB74g0UWpaMw3___ozLPsapdA';
const servers: FakeServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function fake(...args: Parameters<typeof startFake>): Promise<FakeServer> {
  const server = await startFake(...args);
  servers.push(server);
  return server;
}

function message(id: string, timestamp: number): V4Message {
  return { messageId: id, timestamp, user: { userId: 1 }, stream: { streamId: STREAM, streamType: 'ROOM' } };
}

async function rejectsWith(promise: Promise<unknown>, code: AppError['code']): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isAppError(err, code), `expected ${code}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

describe('retry helpers', () => {
  it('parses Retry-After as seconds or HTTP-date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
    assert.equal(parseRetryAfter('999999', now), 600_000);
  });

  it('backs off exponentially with full jitter under the cap', () => {
    assert.equal(
      backoffDelay(0, 500, 30_000, () => 0.999),
      499,
    );
    assert.equal(
      backoffDelay(3, 500, 30_000, () => 0.5),
      2000,
    );
    assert.equal(
      backoffDelay(20, 500, 30_000, () => 0.999),
      29_970,
    );
    assert.equal(
      backoffDelay(5, 500, 30_000, () => 0),
      0,
    );
  });
});

describe('configuration', () => {
  it('refuses plain http to a non-loopback host', () => {
    for (const podUrl of ['http://acme.symphony.com', 'http://10.0.0.1:8443', 'ftp://127.0.0.1']) {
      assert.throws(
        () => sourceFor('https://ok.example', { podUrl }),
        (err) => isAppError(err, 'ERR_CONFIG_INVALID'),
      );
    }
    for (const podUrl of ['http://127.0.0.1:1', 'http://localhost:1', 'http://[::1]:1', 'https://acme.symphony.com/']) {
      assert.doesNotThrow(() => sourceFor('https://ok.example', { podUrl }));
    }
  });

  it('refuses an unreadable key without quoting it', () => {
    const privateKeyPem = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----';
    assert.throws(
      () => sourceFor('https://ok.example', { privateKeyPem }),
      (err) => isAppError(err, 'ERR_CONFIG_INVALID') && !err.message.includes('c2VjcmV0'),
    );
  });

  it('refuses out-of-range page sizes', () => {
    assert.throws(
      () => sourceFor('https://ok.example', { pageSize: 501 }),
      (e) => isAppError(e, 'ERR_CONFIG_INVALID'),
    );
    assert.throws(
      () => sourceFor('https://ok.example', { streamPageSize: 0 }),
      (e) => isAppError(e, 'ERR_CONFIG_INVALID'),
    );
  });
});

describe('authentication', () => {
  it('logs in lazily with an RS512 JWT and sends the right tokens to pod and agent', async () => {
    const jwts: string[] = [];
    const server = await fake((req) => {
      if (req.path.endsWith('/pubkey/authenticate')) jwts.push((req.body as { token: string }).token);
      if (req.path === '/pod/v2/sessioninfo') return { body: { id: 1 } };
      if (req.path.startsWith('/agent/')) return { status: 204 };
      return undefined;
    });
    const source = sourceFor(server.url, { privateKeyPem: botKeys().pkcs1PrivateKeyPem });
    assert.equal(server.requests.length, 0);
    await source.check();
    await collectPages(source.messages(STREAM, { ts: 0, count: 0 }));
    assert.equal(jwts.length, 2);
    const key = await importSPKI(botKeys().publicKeyPem, 'RS512');
    for (const jwt of jwts) {
      await jwtVerify(jwt, key, { algorithms: ['RS512'], subject: 'archiver-bot' });
      assert.deepEqual(decodeProtectedHeader(jwt), { alg: 'RS512' });
      const exp = decodeJwt(jwt).exp ?? 0;
      assert.ok(exp > Date.now() / 1000 + 200 && exp <= Date.now() / 1000 + 241);
    }
    const pod = server.requests.find((r) => r.path === '/pod/v2/sessioninfo');
    assert.equal(pod?.headers.sessiontoken, 'session-1');
    assert.equal(pod?.headers.keymanagertoken, undefined);
    const agent = server.requests.find((r) => r.path.startsWith('/agent/'));
    assert.equal(agent?.headers.sessiontoken, 'session-1');
    assert.equal(agent?.headers.keymanagertoken, 'km-1');
  });

  it('a login 401 is ERR_SOURCE_AUTH, not retried, and leaks no JWT', async () => {
    const server = await fake((req) => {
      if (req.path === '/login/pubkey/authenticate')
        return { status: 401, body: { code: 401, message: 'Invalid JWT' } };
      return undefined;
    });
    const source = sourceFor(server.url);
    const err = await rejectsWith(source.check(), 'ERR_SOURCE_AUTH');
    assert.equal(err.retryable, false);
    assert.equal(server.requests.filter((r) => r.path === '/login/pubkey/authenticate').length, 1);
    assert.doesNotMatch(err.message, /eyJ/);
    assert.match(err.message, /POST \/login\/pubkey\/authenticate/);
  });

  it('re-authenticates once on a 401 and retries the request', async () => {
    let calls = 0;
    const server = await fake((req) => {
      if (req.path !== '/pod/v2/sessioninfo') return undefined;
      calls += 1;
      return req.headers.sessiontoken === 'session-1'
        ? { status: 401, body: { message: 'Invalid session' } }
        : { body: {} };
    });
    const source = sourceFor(server.url);
    await source.check();
    assert.equal(calls, 2);
    assert.equal(server.logins, 2);
    assert.equal(source.stats().reauthentications, 1);
  });

  it('a second 401 after re-authenticating is ERR_SOURCE_AUTH', async () => {
    const server = await fake((req) =>
      req.path.startsWith('/pod/') ? { status: 401, body: { message: 'Invalid session' } } : undefined,
    );
    const source = sourceFor(server.url);
    const err = await rejectsWith(source.check(), 'ERR_SOURCE_AUTH');
    assert.equal(server.logins, 2);
    assert.doesNotMatch(err.message, /session-\d/);
  });

  it('concurrent 401s share one re-authentication', async () => {
    const server = await fake((req, s) => {
      if (req.path !== '/pod/v3/users') return undefined;
      if (req.headers.sessiontoken === 'session-1') return { status: 401, body: { message: 'Invalid session' } };
      assert.ok(s.logins >= 2);
      return { body: { users: [{ id: Number(req.query.get('uid')) }] } };
    });
    const source = sourceFor(server.url);
    await source.check().catch(() => undefined);
    const ids = Array.from({ length: 8 }, (_, i) => String(1000 + i));
    const results = await Promise.all(ids.map((id) => source.users([id])));
    assert.deepEqual(
      results.map((m) => [...m.keys()]),
      ids.map((id) => [id]),
    );
    assert.equal(server.logins, 2);
  });

  it('403 is ERR_SOURCE_FORBIDDEN with Symphony’s message', async () => {
    const server = await fake((req) =>
      req.path.startsWith('/pod/')
        ? { status: 403, body: { code: 403, message: 'Missing role USER_PROVISIONING' } }
        : undefined,
    );
    const err = await rejectsWith(collect(sourceFor(server.url).conversations()), 'ERR_SOURCE_FORBIDDEN');
    assert.equal(err.status, 403);
    assert.match(err.message, /POST \/pod\/v2\/admin\/streams\/list\?skip=0&limit=100 → 403: Missing role/);
  });
});

describe('retries', () => {
  it('honours Retry-After given as an HTTP-date and counts throttling', async () => {
    let n = 0;
    const server = await fake((req) => {
      if (req.path !== '/pod/v2/sessioninfo') return undefined;
      n += 1;
      if (n === 1) return { status: 429, headers: { 'retry-after': new Date(Date.now() - 1000).toUTCString() } };
      if (n === 2) return { status: 429, headers: { 'retry-after': '0' } };
      return { body: {} };
    });
    const source = sourceFor(server.url);
    await source.check();
    assert.deepEqual(source.stats(), { requests: 5, retries: 2, reauthentications: 0, throttled: 2 });
  });

  it('gives up after maxRetries with a retryable ERR_SOURCE_THROTTLED carrying retryAfterMs', async () => {
    const server = await fake((req) =>
      req.path.startsWith('/pod/') ? { status: 429, headers: { 'retry-after': '0' } } : undefined,
    );
    const source = sourceFor(server.url, { maxRetries: 2 });
    const err = await rejectsWith(source.check(), 'ERR_SOURCE_THROTTLED');
    assert.equal(err.retryable, true);
    assert.equal(err.retryAfterMs, 0);
    assert.equal(source.stats().throttled, 3);
  });

  it('retries 5xx with backoff, then ERR_SOURCE_UNAVAILABLE', async () => {
    let n = 0;
    const server = await fake((req) => {
      if (!req.path.startsWith('/pod/')) return undefined;
      n += 1;
      return n <= 2 ? { status: 503, raw: '<html>gateway</html>' } : { body: {} };
    });
    const source = sourceFor(server.url);
    await source.check();
    assert.equal(source.stats().retries, 2);
    const down = await fake((req) =>
      req.path.startsWith('/pod/') ? { status: 500, body: { message: 'boom' } } : undefined,
    );
    const err = await rejectsWith(sourceFor(down.url, { maxRetries: 1 }).check(), 'ERR_SOURCE_UNAVAILABLE');
    assert.equal(err.retryable, true);
    assert.equal(err.status, 500);
  });

  it('treats malformed JSON as a retryable protocol error, never an empty page', async () => {
    let n = 0;
    const server = await fake((req) => {
      if (!req.path.startsWith('/agent/')) return undefined;
      n += 1;
      return n === 1 ? { raw: '[{"messageId":"a","timest' } : { body: [message('a', 5)] };
    });
    const source = sourceFor(server.url);
    const pages = await collectPages(source.messages(STREAM, { ts: 0, count: 0 }));
    assert.deepEqual(
      pages.flat().map((m) => m.id),
      ['a'],
    );
    const broken = await fake((req) => (req.path.startsWith('/agent/') ? { raw: '[{"messageId"' } : undefined));
    const err = await rejectsWith(
      collectPages(sourceFor(broken.url, { maxRetries: 1 }).messages(STREAM, { ts: 0, count: 0 })),
      'ERR_SOURCE_PROTOCOL',
    );
    assert.equal(err.retryable, true);
  });

  it('times out a request that never answers', async () => {
    const server = await fake((req) => (req.path.startsWith('/pod/') ? { hang: true } : undefined));
    const source = sourceFor(server.url, { requestTimeoutMs: 100, maxRetries: 1 });
    const err = await rejectsWith(source.check(), 'ERR_SOURCE_UNAVAILABLE');
    assert.match(err.message, /timed out after 100 ms/);
    assert.equal(err.retryable, true);
  });

  it('follows the caller’s abort signal', async () => {
    const server = await fake((req) => (req.path.startsWith('/pod/') ? { hang: true } : undefined));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await rejectsWith(sourceFor(server.url).check(controller.signal), 'ERR_ABORTED');
    await rejectsWith(sourceFor(server.url).check(AbortSignal.abort()), 'ERR_ABORTED');
  });

  it('close() cancels a pending backoff', async () => {
    const server = await fake((req) =>
      req.path.startsWith('/pod/') ? { status: 429, headers: { 'retry-after': '60' } } : undefined,
    );
    const source = sourceFor(server.url);
    const pending = source.check();
    setTimeout(() => void source.close(), 50);
    await rejectsWith(pending, 'ERR_ABORTED');
  });
});

describe('messages', () => {
  it('pages with since/skip across a same-millisecond burst', async () => {
    const all = [
      message('m1', 10),
      message('m2', 20),
      message('m3', 20),
      message('m4', 20),
      message('m5', 20),
      message('m6', 30),
    ];
    const server = await fake((req) => {
      if (!req.path.startsWith('/agent/v4/stream/')) return undefined;
      const since = Number(req.query.get('since'));
      const skip = Number(req.query.get('skip'));
      const limit = Number(req.query.get('limit'));
      const page = all.filter((m) => m.timestamp >= since).slice(skip, skip + limit);
      return page.length ? { body: page } : { status: 204 };
    });
    const source = sourceFor(server.url, { pageSize: 2 });
    const pages = await collectPages(source.messages(STREAM, { ts: 0, count: 0 }));
    assert.deepEqual(
      pages.map((p) => p.map((m) => m.id)),
      [
        ['m1', 'm2'],
        ['m3', 'm4'],
        ['m5', 'm6'],
      ],
    );
    const queries = server.requests.filter((r) => r.path.startsWith('/agent/')).map((r) => r.query.toString());
    assert.deepEqual(queries, [
      'since=0&skip=0&limit=2',
      'since=20&skip=1&limit=2',
      'since=20&skip=3&limit=2',
      'since=30&skip=1&limit=2',
    ]);
    // A resumed read backs off one position (half the page here) at the cursor's millisecond: m3 is read again.
    const resumed = await collectPages(source.messages(STREAM, { ts: 20, count: 2 }));
    assert.deepEqual(
      resumed.flat().map((m) => m.id),
      ['m3', 'm4', 'm5', 'm6'],
    );
    const first = pages[0]?.[0];
    assert.equal(first?.streamId, STREAM);
    assert.deepEqual(first?.raw, all[0]);
  });

  it('does not skip a message when one already read at the cursor millisecond was removed since', async () => {
    let all = Array.from({ length: 8 }, (_, i) => message(`m${i}`, 20));
    const server = await fake((req) => {
      if (!req.path.startsWith('/agent/v4/stream/')) return undefined;
      const since = Number(req.query.get('since'));
      const skip = Number(req.query.get('skip'));
      const limit = Number(req.query.get('limit'));
      const page = all.filter((m) => m.timestamp >= since).slice(skip, skip + limit);
      return page.length ? { body: page } : { status: 204 };
    });
    const source = sourceFor(server.url, { pageSize: 100 });
    const first = (await collectPages(source.messages(STREAM, { ts: 0, count: 0 }))).flat();
    assert.equal(first.length, 8);
    // Two of the eight are suppressed, and two more arrive in the same millisecond (symphony-api.md §2.8).
    all = [...all.filter((m) => m.messageId !== 'm1' && m.messageId !== 'm6'), message('m8', 20), message('m9', 20)];
    const again = (await collectPages(source.messages(STREAM, { ts: 20, count: 8 }))).flat().map((m) => m.id);
    assert.ok(again.includes('m8') && again.includes('m9'), `both new messages are read: ${again.join(',')}`);
  });

  it('reports records it cannot key as malformed, keeps their place in the sequence, and reads on', async () => {
    const noId = { timestamp: 15, user: { userId: 1 }, stream: { streamId: STREAM } };
    const noTs = { messageId: 'x', timestamp: 'soon', user: { userId: 1 }, stream: { streamId: STREAM } };
    const server = await fake((req) =>
      req.path.startsWith('/agent/') ? { body: [message('m1', 10), noId, noTs, message('m4', 20)] } : undefined,
    );
    const pages = await collect(sourceFor(server.url).messages(STREAM, { ts: 0, count: 0 }));
    assert.equal(pages.length, 1);
    const page = pages[0]!;
    assert.deepEqual(
      page.messages.map((m) => m.id),
      ['m1', 'm4'],
    );
    assert.deepEqual(
      page.malformed.map((r) => [r.key, r.reason, r.timestamp]),
      [
        [`malformed.${STREAM}.0.0.1`, 'no messageId', 15],
        [`malformed.${STREAM}.0.0.2`, 'no numeric timestamp', undefined],
      ],
    );
    assert.deepEqual(page.malformed[0]?.record, noId);
    // The record with a timestamp counts in since/skip; the one without cannot.
    assert.deepEqual(page.next, { ts: 20, count: 1 });
  });

  it('a page of nothing but malformed records is still yielded, so the cursor moves past it', async () => {
    const server = await fake((req) =>
      req.path.startsWith('/agent/') ? { body: [{ timestamp: 7 }, null] } : undefined,
    );
    const pages = await collect(sourceFor(server.url).messages(STREAM, { ts: 0, count: 0 }));
    assert.deepEqual(pages[0]?.messages, []);
    assert.deepEqual(
      pages[0]?.malformed.map((r) => r.reason),
      ['no messageId', 'not an object'],
    );
    assert.deepEqual(pages[0]?.next, { ts: 7, count: 1 });
  });

  it('canonicalises stream and message ids', async () => {
    const padded = 'RUkxW4x40aB74g0UWpaMw3///ozLPsapdA==';
    const server = await fake((req) =>
      req.path.startsWith('/agent/')
        ? { body: [{ ...message('kWpOSc30hEJtOoT89gLinH///ouMyhHwdA==', 1) }] }
        : undefined,
    );
    const pages = await collectPages(sourceFor(server.url).messages(padded, { ts: 0, count: 0 }));
    assert.equal(pages[0]?.[0]?.id, 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA');
    assert.equal(pages[0]?.[0]?.streamId, STREAM);
    assert.equal(server.requests.at(-1)?.path, `/agent/v4/stream/${STREAM}/message`);
  });
});

describe('pod listings', () => {
  it('pages conversations, maps them and drops repeats', async () => {
    const info = (id: string, extra: object = {}) => ({
      id,
      type: 'ROOM',
      isActive: true,
      attributes: { roomName: id },
      ...extra,
    });
    const server = await fake((req) => {
      if (req.path !== '/pod/v2/admin/streams/list') return undefined;
      const skip = Number(req.query.get('skip'));
      const pages = [
        [info('a+b/'), info('c', { origin: 'EXTERNAL', crossPod: true })],
        [info('a-b_'), info('d', { type: 'IM', attributes: { lastMessageDate: 7, groupChat: false } })],
        [info('e', { isExternal: true, isActive: false })],
      ];
      return { body: { count: 5, skip, limit: 2, streams: pages[skip / 2] ?? [] } };
    });
    const source = sourceFor(server.url, { streamPageSize: 2 });
    const conversations = await collect(source.conversations());
    assert.deepEqual(conversations, [
      { id: 'a-b_', type: 'ROOM', name: 'a+b/', external: false, active: true },
      { id: 'c', type: 'ROOM', name: 'c', external: true, crossPod: true, active: true },
      { id: 'd', type: 'IM', groupChat: false, external: false, active: true, lastMessageDate: 7 },
      { id: 'e', type: 'ROOM', name: 'e', external: true, active: false },
    ]);
    const list = server.requests.filter((r) => r.path === '/pod/v2/admin/streams/list');
    assert.equal(list.length, 3);
    assert.deepEqual(list[0]?.body, {
      streamTypes: [{ type: 'IM' }, { type: 'MIM' }, { type: 'ROOM' }, { type: 'POST' }],
    });
  });

  it('pages members at 1000 and maps them, with join dates and past members for a room', async () => {
    const server = await fake((req) => {
      if (req.path.startsWith('/pod/v1/admin/room/')) {
        assert.equal(req.query.get('includePastMembers'), 'true');
        return {
          body: [
            { id: 7001, owner: false, joinDate: 5000 },
            { id: 9000, owner: false, joinDate: 100 },
          ],
        };
      }
      if (req.path === '/pod/v3/users') {
        return { body: { users: [{ id: 9000, emailAddress: 'gone@acme.com', displayName: 'Gone' }] } };
      }
      if (!req.path.includes('/membership/list')) return undefined;
      const skip = Number(req.query.get('skip'));
      const count = 1500;
      const members = Array.from({ length: Math.min(1000, count - skip) }, (_, i) => ({
        user: {
          userId: 7000 + skip + i,
          email: `u${skip + i}@acme.com`,
          displayName: 'U',
          isExternal: false,
          company: 'Acme',
        },
      }));
      return { body: { count, skip, limit: 1000, members } };
    });
    const members = await sourceFor(server.url).members({ id: STREAM, type: 'ROOM' });
    assert.equal(members.length, 1501);
    assert.deepEqual(members[1499], {
      person: { userId: '8499', email: 'u1499@acme.com', displayName: 'U', company: 'Acme', external: false },
      current: true,
    });
    assert.deepEqual(members[1], { person: members[1]!.person, joinedAt: 5000, current: true });
    assert.deepEqual(members[1500], {
      person: { userId: '9000', email: 'gone@acme.com', displayName: 'Gone' },
      joinedAt: 100,
      current: false,
    });
    assert.deepEqual(
      server.requests.filter((r) => r.path.includes('/admin/stream/')).map((r) => r.query.get('skip')),
      ['0', '1000'],
    );
    const im = await sourceFor(server.url).members({ id: STREAM, type: 'IM' });
    assert.ok(
      im.every((m) => m.joinedAt === undefined && m.current),
      'IM membership is fixed',
    );
  });

  it('looks users up in batches of 100 and caches hits and misses', async () => {
    const server = await fake((req) => {
      if (req.path !== '/pod/v3/users') return undefined;
      assert.equal(req.query.get('local'), 'false');
      const ids = (req.query.get('uid') ?? '').split(',').map(Number);
      const users = ids
        .filter((id) => id % 2 === 0)
        .map((id) => ({ id, emailAddress: `${id}@acme.com`, username: `u${id}` }));
      return users.length ? { body: { users, errors: null } } : { status: 204 };
    });
    const source = sourceFor(server.url);
    const ids = Array.from({ length: 250 }, (_, i) => String(i + 1));
    const found = await source.users([...ids, '12', 'not-a-number']);
    assert.equal(found.size, 125);
    assert.deepEqual(found.get('12'), { userId: '12', email: '12@acme.com', username: 'u12' });
    const batches = server.requests.filter((r) => r.path === '/pod/v3/users');
    assert.deepEqual(
      batches.map((r) => (r.query.get('uid') ?? '').split(',').length),
      [100, 100, 50],
    );
    const again = await source.users(['1', '2', '251']);
    assert.deepEqual([...again.keys()], ['2']);
    assert.equal(server.requests.filter((r) => r.path === '/pod/v3/users').length, 4);
    assert.equal(server.requests.at(-1)?.query.get('uid'), '251');
  });
});

describe('attachments', () => {
  it('percent-encodes the file id and decodes the base64 body', async () => {
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
    const fileId = 'internal_14362370637825/T2vTuh+gWTtZFQtI/HDXYg==';
    let rawUrl = '';
    const server = await fake((req) => {
      if (!req.path.endsWith('/attachment')) return undefined;
      rawUrl = req.query.toString();
      assert.equal(req.query.get('fileId'), fileId);
      return { raw: bytes.toString('base64'), headers: { 'content-type': 'application/octet-stream' } };
    });
    const content = await sourceFor(server.url).attachment(STREAM, 'm1', { id: fileId }, async (b) =>
      Buffer.concat(await collect(b)),
    );
    assert.deepEqual(content, bytes);
    assert.match(rawUrl, /fileId=internal_14362370637825%2FT2vTuh%2BgWTtZFQtI%2FHDXYg%3D%3D&messageId=m1/);
  });

  it('failures become ERR_SOURCE_ATTACHMENT with status and retryability kept', async () => {
    const server = await fake((req) => {
      if (req.query.get('messageId') === 'gone') return { status: 404, body: { message: 'not found' } };
      if (req.query.get('messageId') === 'html') return { raw: '<html>oops</html>' };
      if (req.path.endsWith('/attachment')) return { status: 500 };
      return undefined;
    });
    const source = sourceFor(server.url, { maxRetries: 1 });
    const down = await rejectsWith(
      source.attachment(STREAM, 'm1', { id: 'f' }, async (b) => Buffer.concat(await collect(b))),
      'ERR_SOURCE_ATTACHMENT',
    );
    assert.equal(down.status, 500);
    assert.equal(down.retryable, true);
    const gone = await rejectsWith(
      source.attachment(STREAM, 'gone', { id: 'f' }, async (b) => Buffer.concat(await collect(b))),
      'ERR_SOURCE_ATTACHMENT',
    );
    assert.equal(gone.status, 404);
    assert.equal(gone.retryable, false);
    await rejectsWith(
      source.attachment(STREAM, 'html', { id: 'f' }, async (b) => Buffer.concat(await collect(b))),
      'ERR_SOURCE_ATTACHMENT',
    );
  });
});

describe('real-time feeds', () => {
  it('reads the datahose with its tag and event types, acknowledging the batch before', async () => {
    const acks: unknown[] = [];
    const server = await fake((req) => {
      if (req.path !== '/agent/v5/events/read') return undefined;
      const body = req.body as { type: string; tag: string; eventTypes: string[]; ackId: string };
      assert.equal(body.type, 'datahose');
      assert.ok(body.eventTypes.includes('MESSAGESUPPRESSED') && body.eventTypes.includes('USERLEFTROOM'));
      acks.push(body.ackId);
      return { body: { events: [{ id: String(acks.length) }], ackId: `ack${acks.length}` } };
    });
    const source = sourceFor(server.url, { feedTag: 'archiver-1' });
    const first = await source.readFeed('datahose', undefined);
    const second = await source.readFeed('datahose', first.position);
    assert.deepEqual(acks, ['', 'ack1']);
    assert.deepEqual(second.position, { kind: 'datahose', ackId: 'ack2' });
    assert.equal(second.restarted, false);
    const reads = server.requests.filter((r) => r.path === '/agent/v5/events/read');
    assert.ok(reads.every((r) => (r.body as { tag: string }).tag === 'archiver-1'));
  });

  it('starts a new datafeed when the old one is gone (400), and says so', async () => {
    const server = await fake((req) => {
      if (req.method === 'GET' && req.path === '/agent/v5/datafeeds') return { body: [] };
      if (req.method === 'POST' && req.path === '/agent/v5/datafeeds')
        return { status: 201, body: { id: 'feed2', type: 'fanout' } };
      if (req.method === 'DELETE') return { status: 204 };
      if (req.path === '/agent/v5/datafeeds/feed1/read') {
        return { status: 400, body: { code: 400, message: 'the feed no longer exists' } };
      }
      if (req.path === '/agent/v5/datafeeds/feed2/read') return { body: { events: [], ackId: 'a1' } };
      return undefined;
    });
    const source = sourceFor(server.url);
    const batch = await source.readFeed('datafeed', { kind: 'datafeed', feedId: 'feed1', ackId: 'old' });
    assert.equal(batch.restarted, true);
    assert.deepEqual(batch.position, { kind: 'datafeed', feedId: 'feed2', ackId: 'a1' });
    const calls = server.requests.filter((r) => r.path.startsWith('/agent/')).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(calls, [
      'POST /agent/v5/datafeeds/feed1/read',
      'DELETE /agent/v5/datafeeds/feed1',
      'GET /agent/v5/datafeeds',
      'POST /agent/v5/datafeeds',
      'POST /agent/v5/datafeeds/feed2/read',
    ]);
  });
});
