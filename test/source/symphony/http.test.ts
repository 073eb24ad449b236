import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { inspect } from 'node:util';
import type { AppError } from '../../../src/core/errors.ts';
import { isAppError } from '../../../src/core/errors.ts';
import { createLogger, silentLogger } from '../../../src/core/logger.ts';
import type { SourceStats } from '../../../src/source/source.ts';
import { SymphonyHttp } from '../../../src/source/symphony/http.ts';
import { createSymphonySource } from '../../../src/source/symphony/index.ts';
import { botKeys, collect, collectPages, sourceFor, startFake, type FakeServer } from './helpers.ts';

const STREAM = 'RUkxW4x40aB74g0UWpaMw3___ozLPsapdA';
const OTHER_STREAM = 'cnGg4K6LqUHmhwYQ1z6cLX___oVLeWV0dA';
const servers: FakeServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function fake(...args: Parameters<typeof startFake>): Promise<FakeServer> {
  const server = await startFake(...args);
  servers.push(server);
  return server;
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

function agentCalls(server: FakeServer) {
  return server.requests
    .filter((r) => r.path.startsWith('/agent/'))
    .map((r) => `${r.headers.sessiontoken}/${r.headers.keymanagertoken}`);
}

function httpFor(allowedOrigins: string[]): SymphonyHttp {
  const stats: SourceStats = { requests: 0, retries: 0, reauthentications: 0, throttled: 0 };
  return new SymphonyHttp({
    allowedOrigins,
    logger: silentLogger(),
    requestTimeoutMs: 5000,
    maxRetries: 2,
    backoffBaseMs: 1,
    backoffCapMs: 5,
    stats,
    closeSignal: new AbortController().signal,
  });
}

describe('401: log in again, both tokens, then retry once', () => {
  it('an agent 401 renews the session token and the key manager token', async () => {
    const server = await fake((req) => {
      if (!req.path.startsWith('/agent/')) return undefined;
      return req.headers.keymanagertoken === 'km-1'
        ? { status: 401, body: { message: 'Invalid KM token' } }
        : { status: 204 };
    });
    const source = sourceFor(server.url);
    await collectPages(source.messages(STREAM, { ts: 0, count: 0 }));
    assert.equal(server.logins, 2);
    assert.equal(server.relayLogins, 2);
    assert.deepEqual(agentCalls(server), ['session-1/km-1', 'session-2/km-2']);
    assert.equal(source.stats().reauthentications, 1);
  });

  it('concurrent 401s from pod and agent calls share one login of both tokens', async () => {
    const server = await fake((req) => {
      if (req.path.startsWith('/agent/')) {
        return req.headers.sessiontoken === 'session-1' ? { status: 401 } : { status: 204 };
      }
      if (req.path === '/pod/v3/users') {
        return req.headers.sessiontoken === 'session-1' ? { status: 401 } : { body: { users: [] } };
      }
      return undefined;
    });
    const source = sourceFor(server.url);
    const streams = Array.from({ length: 6 }, (_, i) => `${STREAM.slice(0, -2)}${i}A`);
    await Promise.all([
      ...streams.map((id) => collectPages(source.messages(id, { ts: 0, count: 0 }))),
      ...['1', '2', '3'].map((id) => source.users([id])),
    ]);
    assert.equal(server.logins, 2);
    assert.equal(server.relayLogins, 2);
    assert.equal(agentCalls(server).filter((c) => c === 'session-2/km-2').length, streams.length);
    assert.equal(agentCalls(server).length, streams.length * 2);
  });

  it('a failed re-login of the key manager ends the request without a loop', async () => {
    const server = await fake((req, s) => {
      if (req.path === '/relay/pubkey/authenticate' && s.relayLogins >= 1) {
        return { status: 401, body: { message: 'Invalid JWT' } };
      }
      if (req.path.startsWith('/agent/')) return { status: 401 };
      return undefined;
    });
    const source = sourceFor(server.url);
    const err = await rejectsWith(collectPages(source.messages(OTHER_STREAM, { ts: 0, count: 0 })), 'ERR_SOURCE_AUTH');
    assert.match(err.message, /POST \/relay\/pubkey\/authenticate → 401/);
    assert.equal(server.requests.filter((r) => r.path === '/relay/pubkey/authenticate').length, 2);
    assert.equal(agentCalls(server).length, 1);
  });
});

describe('origins', () => {
  it('sends pod, agent and key manager calls each to its own configured origin', async () => {
    const pod = await fake((req) => (req.path === '/pod/v2/sessioninfo' ? { body: { id: 1 } } : undefined));
    const agent = await fake((req) => (req.path.startsWith('/agent/') ? { status: 204 } : undefined));
    const km = await fake(() => undefined);
    const source = sourceFor(pod.url, { agentUrl: agent.url, keyManagerUrl: km.url });
    await source.check();
    await collectPages(source.messages(STREAM, { ts: 0, count: 0 }));
    assert.deepEqual(
      pod.requests.map((r) => r.path),
      ['/login/pubkey/authenticate', '/pod/v2/sessioninfo'],
    );
    assert.deepEqual(
      km.requests.map((r) => r.path),
      ['/relay/pubkey/authenticate'],
    );
    assert.deepEqual(
      agent.requests.map((r) => r.path),
      [`/agent/v4/stream/${STREAM}/message`],
    );
  });

  it('refuses a URL outside the configured origins before sending it', async () => {
    const allowed = await fake(() => ({ body: {} }));
    const other = await fake(() => ({ body: {} }));
    const http = httpFor([allowed.url]);
    const base = { method: 'GET', responseType: 'json' } as const;
    const err = await rejectsWith(
      http.request({ ...base, baseUrl: other.url, path: '/pod/v2/sessioninfo' }),
      'ERR_SOURCE_ORIGIN',
    );
    assert.equal(err.retryable, false);
    assert.match(err.message, new RegExp(`GET to ${other.url} refused`));
    // A server-supplied value spliced into a path can turn the configured host into userinfo.
    const spliced = `@${new URL(other.url).host}/pod/v2/sessioninfo`;
    await rejectsWith(http.request({ ...base, baseUrl: allowed.url, path: spliced }), 'ERR_SOURCE_ORIGIN');
    assert.equal(other.requests.length, 0);
    assert.equal(allowed.requests.length, 0);
    await http.request({ ...base, baseUrl: allowed.url, path: '/pod/v2/sessioninfo' });
    assert.equal(allowed.requests.length, 1);
  });

  it('never follows a redirect, and names a foreign target', async () => {
    const other = await fake(() => ({ body: {} }));
    const server = await fake((req) => {
      if (req.path === '/pod/v2/sessioninfo') {
        return { status: 302, headers: { location: `${other.url}/pod/v2/sessioninfo?token=stolen` } };
      }
      if (req.path === '/pod/v3/users') return { status: 307, headers: { location: '/pod/v3/users?uid=2' } };
      return undefined;
    });
    const source = sourceFor(server.url);
    const err = await rejectsWith(source.check(), 'ERR_SOURCE_ORIGIN');
    assert.equal(err.status, 302);
    assert.match(err.message, new RegExp(`GET /pod/v2/sessioninfo → 302 redirect to ${other.url} refused`));
    assert.doesNotMatch(err.message, /stolen/);
    const local = await rejectsWith(source.users(['1']), 'ERR_SOURCE_PROTOCOL');
    assert.match(local.message, /307 redirect refused/);
    assert.equal(other.requests.length, 0);
    assert.equal(server.requests.filter((r) => r.path.startsWith('/pod/')).length, 2);
    assert.equal(source.stats().retries, 0);
  });
});

describe('secrets', () => {
  it('no token, JWT or private key text reaches a log line or an error', async () => {
    const sessionToken = 'eyJhbGciOiJSUzUxMiJ9.eyJzdWIiOiJjYW5hcnkiLCJzZXNzaW9uSWQiOiIxMjMifQ.c2lnbmF0dXJlLWNhbmFyeQ';
    const keyManagerToken = '0100e4fe5a6b7c8d9e0fcanary0f729d1866f';
    const loginJwts: string[] = [];
    let logins = 0;
    const redirectTarget = await fake(() => undefined);
    const echo = (req: { headers: Record<string, unknown>; body: unknown }) =>
      `rejected ${String(req.headers.sessiontoken)} ${String(req.headers.keymanagertoken)} ${JSON.stringify(req.body)}`;
    const server = await fake((req) => {
      if (req.path.endsWith('/pubkey/authenticate')) {
        loginJwts.push((req.body as { token: string }).token);
        logins += 1;
        // The third login (the renewal after the agent 401 below) is refused, echoing the JWT it got.
        if (logins > 2 && req.path.startsWith('/login')) return { status: 401, body: { message: echo(req) } };
        const token = req.path.startsWith('/login') ? sessionToken : keyManagerToken;
        return { body: { name: req.path.startsWith('/login') ? 'sessionToken' : 'keyManagerToken', token } };
      }
      if (req.path === '/pod/v2/sessioninfo') return { body: { id: 1 } };
      if (req.path === '/pod/v3/users') return { status: 500, body: { message: echo(req) } };
      if (req.path === '/pod/v2/admin/streams/list') return { status: 403, body: { message: echo(req) } };
      if (req.path === '/pod/v1/admin/stream/x/membership/list') {
        return { status: 302, headers: { location: `${redirectTarget.url}/steal?sessionToken=${sessionToken}` } };
      }
      if (req.path.endsWith('/attachment')) return { status: 403, body: { message: echo(req) } };
      if (req.path.startsWith('/agent/')) return { status: 401, body: { message: echo(req) } };
      return undefined;
    });
    const lines: string[] = [];
    const logger = createLogger({ level: 'trace', destination: { write: (line: string) => void lines.push(line) } });
    const source = createSymphonySource(
      {
        podUrl: server.url,
        agentUrl: server.url,
        keyManagerUrl: server.url,
        username: 'archiver-bot',
        privateKeyPem: botKeys().privateKeyPem,
        maxRetries: 1,
        backoffBaseMs: 1,
        backoffCapMs: 2,
      },
      { logger },
    );
    const errors: unknown[] = [];
    await source.check();
    const attempts: (() => Promise<unknown>)[] = [
      () => source.users(['1']),
      () => collect(source.conversations()),
      () => source.members({ id: 'x', type: 'IM' }),
      () => source.attachment(STREAM, 'bWVzc2FnZQ', { id: 'ZmlsZQ' }, async (b) => Buffer.concat(await collect(b))),
      () => collectPages(source.messages(STREAM, { ts: 0, count: 0 })),
    ];
    for (const attempt of attempts) {
      await attempt().then(
        () => errors.push('resolved'),
        (err: unknown) => errors.push(err),
      );
    }
    assert.ok(
      errors.every((e) => isAppError(e)),
      `every call failed with an AppError: ${errors.map(String).join('; ')}`,
    );
    assert.ok(lines.length > 0);
    assert.ok(loginJwts.length >= 3);

    const keyLines = botKeys()
      .privateKeyPem.split('\n')
      .filter((l) => l.length > 16 && !l.startsWith('-----'));
    const secrets = [sessionToken, keyManagerToken, ...loginJwts, ...keyLines, 'canary'];
    const texts = [
      ...lines,
      ...errors.map((e) => inspect(e, { depth: 10, showHidden: true })),
      ...errors.map((e) => JSON.stringify(e)),
    ];
    for (const text of texts) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `leaked ${secret.slice(0, 12)}… in: ${text}`);
      assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{8,}/);
    }
    assert.equal(redirectTarget.requests.length, 0);
  });
});
