/**
 * Contract check against a third party: the real client runs against Stoplight Prism mocking the official
 * Symphony specs (spec/symphony, finos/symphony-api-spec), so every request it makes (path, query, headers,
 * body) is validated by Prism rather than by our own emulator. Prism's answers are the specs' examples; the
 * test asserts that Prism accepted every request, not what the answers contain.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { isAppError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import type { Source } from '../../../src/source/source.ts';
import { createSymphonySource } from '../../../src/source/symphony/index.ts';
import { freePort } from '../../helpers/net.ts';
import { botKeys, collect } from './helpers.ts';

const ROOT = new URL('../../../', import.meta.url);
const PRISM_BIN = fileURLToPath(new URL('node_modules/.bin/prism', ROOT));
const STREAM = 'RUkxW4x40aB74g0UWpaMw3___ozLPsapdA';
const MESSAGE = 'T0U6Hy9ULM1pSDcSyHXRlX___oKiIjx4bQ';

/** One Prism per spec file: Prism serves a single document. */
const SPECS = {
  pod: 'spec/symphony/pod/pod-api-public.yaml',
  agent: 'spec/symphony/agent/agent-api-public.yaml',
  login: 'spec/symphony/login/login-api-public.yaml',
} as const;
type SpecName = keyof typeof SPECS;

/**
 * Where each spec is mounted in a real deployment (symphony-api.md §0): the pod spec's `basePath: /pod`, the
 * agent spec's server `…/agent`, and the login spec at `/login` on the pod and at `/relay` on the key manager.
 * Prism 5 matches paths without the Swagger 2 `basePath` or the OpenAPI 3 server path, so each configured
 * origin is a small front that strips the mount prefix and forwards everything else unchanged.
 */
const MOUNTS: Record<'pod' | 'agent' | 'keyManager', Record<string, SpecName>> = {
  pod: { '/pod': 'pod', '/login': 'login' },
  agent: { '/agent': 'agent' },
  keyManager: { '/relay': 'login' },
};

interface Violation {
  location: string[];
  severity: string;
  code: string;
  message: string;
}

interface Exchange {
  request: string;
  spec: SpecName | undefined;
  status: number;
  /** Prism's own report of how the request and its mocked response differ from the spec. */
  violations: Violation[];
  /** The problem type of Prism's error answers (`…/prism/errors#NO_PATH_MATCHED_ERROR`, …). */
  problem: string | undefined;
}

/** A reply that replaces Prism's answer once Prism has validated the request, to lead the client down a path. */
interface Steer {
  operation: string;
  status: number;
  body: unknown;
}

interface Prism {
  child: ChildProcess;
  port: number;
  output: string[];
}

/**
 * Prism runs without `--errors`: that flag also turns mismatches between a spec's own examples and its schemas into
 * 500s for valid requests, e.g. pod-api-public.yaml l.8715–8724 (`UserV2.userMetadata` is a map of objects, its
 * example holds a string and an array), so `GET /pod/v2/sessioninfo` could never succeed. Request violations are
 * reported either way: in the `sl-violations` header with a `request` location, and as a 4xx answer.
 */
async function startPrism(spec: SpecName): Promise<Prism> {
  const port = await freePort();
  const child = spawn(
    PRISM_BIN,
    ['mock', '-h', '127.0.0.1', '-p', String(port), fileURLToPath(new URL(SPECS[spec], ROOT))],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const prism: Prism = { child, port, output: [] };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`prism ${spec} did not start:\n${prism.output.join('')}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      prism.output.push(chunk.toString('utf8'));
      if (prism.output.join('').includes('Prism is listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`prism ${spec} exited with ${code}:\n${prism.output.join('')}`));
    });
  });
  return prism;
}

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

async function startFront(
  mounts: Record<string, SpecName>,
  prisms: Record<SpecName, Prism>,
  exchanges: Exchange[],
  steers: Steer[],
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const target = req.url ?? '/';
    const prefix = Object.keys(mounts).find((p) => target.startsWith(`${p}/`));
    const spec = prefix ? mounts[prefix] : undefined;
    const exchange: Exchange = {
      request: `${req.method} ${target}`,
      spec,
      status: 0,
      violations: [],
      problem: undefined,
    };
    exchanges.push(exchange);
    if (!prefix || !spec) {
      exchange.status = 404;
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"not mounted here"}');
      return;
    }
    const upstream = request(
      {
        host: '127.0.0.1',
        port: prisms[spec].port,
        method: req.method,
        path: target.slice(prefix.length),
        headers: forwardHeaders(req.headers),
      },
      (upRes) => {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const body = Buffer.concat(chunks);
          exchange.status = upRes.statusCode ?? 0;
          const violations = upRes.headers['sl-violations'];
          if (typeof violations === 'string') exchange.violations = JSON.parse(violations) as Violation[];
          if (String(upRes.headers['content-type']).includes('problem+json')) {
            exchange.problem = (JSON.parse(body.toString('utf8')) as { type?: string }).type;
          }
          const steer = steers.findIndex((st) => st.operation === operationOf(exchange));
          if (steer >= 0) {
            const [{ status, body: replaced }] = steers.splice(steer, 1) as [Steer];
            res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(replaced));
            return;
          }
          res.writeHead(exchange.status, forwardHeaders(upRes.headers)).end(body);
        });
      },
    );
    upstream.on('error', (err) => {
      exchange.problem = `front: ${err.message}`;
      res.writeHead(502).end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** `GET /pod/v1/admin/stream/RUkx…/membership/list?skip=0` → `GET /pod/v1/admin/stream/{id}/membership/list`. */
function operationOf(exchange: Exchange): string {
  const [method, target = ''] = exchange.request.split(' ');
  const path = target
    .split('?')[0]!
    .split('/')
    .map((segment) =>
      segment === STREAM || segment === MESSAGE || /^[A-Za-z0-9_-]{20,}$/.test(segment) ? '{id}' : segment,
    )
    .join('/');
  return `${method} ${path}`;
}

describe('contract: the client against Prism and the official Symphony specs', () => {
  const prisms = {} as Record<SpecName, Prism>;
  const fronts: Server[] = [];
  const exchanges: Exchange[] = [];
  const steers: Steer[] = [];
  const urls = { pod: '', agent: '', keyManager: '' };
  let source: Source;
  const killAll = (): void => {
    for (const prism of Object.values(prisms)) if (prism.child.exitCode === null) prism.child.kill('SIGKILL');
  };

  before(async () => {
    process.once('exit', killAll);
    const started = await Promise.all(
      (Object.keys(SPECS) as SpecName[]).map(async (name) => [name, await startPrism(name)] as const),
    );
    for (const [name, prism] of started) prisms[name] = prism;
    const [pod, agent, keyManager] = await Promise.all([
      startFront(MOUNTS.pod, prisms, exchanges, steers),
      startFront(MOUNTS.agent, prisms, exchanges, steers),
      startFront(MOUNTS.keyManager, prisms, exchanges, steers),
    ]);
    fronts.push(pod.server, agent.server, keyManager.server);
    Object.assign(urls, { pod: pod.url, agent: agent.url, keyManager: keyManager.url });
    source = createSymphonySource(
      {
        podUrl: urls.pod,
        agentUrl: urls.agent,
        keyManagerUrl: urls.keyManager,
        username: 'archiver-bot',
        privateKeyPem: botKeys().privateKeyPem,
        maxRetries: 0,
      },
      { logger: silentLogger() },
    );
  });

  after(async () => {
    await source?.close();
    for (const server of fronts) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await Promise.all(
      Object.values(prisms).map(
        (prism) =>
          new Promise<void>((resolve) => {
            if (prism.child.exitCode !== null) return resolve();
            prism.child.once('exit', () => resolve());
            prism.child.kill('SIGTERM');
          }),
      ),
    );
    process.removeListener('exit', killAll);
  });

  /** Prism's verdict on a request: a violation, an error answer, or a route no spec mounts there. */
  const rejected = (list: Exchange[]) =>
    list
      .filter(
        (e) =>
          e.spec === undefined ||
          e.status < 200 ||
          e.status >= 300 ||
          e.problem !== undefined ||
          e.violations.some((v) => v.location[0] === 'request'),
      )
      .map((e) => ({ request: e.request, status: e.status, problem: e.problem, violations: e.violations }));

  it('every request of every source method passes Prism’s validation', async () => {
    const outcomes: Record<string, string> = {};
    const run = async (name: string, call: () => Promise<unknown>): Promise<void> => {
      try {
        await call();
        outcomes[name] = 'ok';
      } catch (err) {
        // Example data need not map to our model; what matters is that Prism answered 2xx.
        assert.ok(isAppError(err), `${name}: ${String(err)}`);
        assert.ok(err.status === undefined || (err.status >= 200 && err.status < 300), `${name}: ${err.message}`);
        outcomes[name] = err.code;
      }
    };
    // A rejected session: both logins again, then the call again (symphony-api.md §1.2).
    steers.push({ operation: 'GET /pod/v2/sessioninfo', status: 401, body: { code: 401, message: 'Invalid session' } });
    await run('check', () => source.check());
    await run('conversations', () => collect(source.conversations()));
    await run('conversations(activeSince)', () =>
      collect(source.conversations(undefined, { activeSince: 1_700_000_000_000 })),
    );
    await run('members(ROOM)', () => source.members({ id: STREAM, type: 'ROOM' }));
    await run('members(IM)', () => source.members({ id: STREAM, type: 'IM' }));
    await run('users', () => source.users(['7215545078541', '7215545078229']));
    await run('messages', () => collect(source.messages(STREAM, { ts: 1_700_000_000_000, count: 2 })));
    await run('attachment', () =>
      source.attachment(STREAM, MESSAGE, { id: 'internal_14362/ZmlsZQ==' }, async (b) =>
        Buffer.concat(await collect(b)),
      ),
    );
    // No feed listed yet: one is created.
    steers.push({ operation: 'GET /agent/v5/datafeeds', status: 200, body: [] });
    await run('readFeed(datafeed, new)', () => source.readFeed('datafeed', undefined));
    // The feed expired (400, 30 min TTL): deleted, found again, read.
    steers.push({ operation: 'POST /agent/v5/datafeeds/{id}/read', status: 400, body: { code: 400, message: 'gone' } });
    await run('readFeed(datafeed, expired)', () =>
      source.readFeed('datafeed', { kind: 'datafeed', feedId: 'e3b0c44298fc1c149afbf4c8996fb924', ackId: 'ack-1' }),
    );
    await run('readFeed(datahose)', () => source.readFeed('datahose', { kind: 'datahose', ackId: 'ack-1' }));

    assert.deepEqual(steers, [], 'every steered reply was used');
    assert.deepEqual(rejected(exchanges), []);
    const operations = [...new Set(exchanges.map(operationOf))].sort();
    assert.deepEqual(
      operations,
      [
        'DELETE /agent/v5/datafeeds/{id}',
        'GET /agent/v1/stream/{id}/attachment',
        'GET /agent/v4/stream/{id}/message',
        'GET /agent/v5/datafeeds',
        'GET /pod/v1/admin/room/{id}/membership/list',
        'GET /pod/v1/admin/stream/{id}/membership/list',
        'GET /pod/v2/sessioninfo',
        'GET /pod/v3/users',
        'POST /agent/v5/datafeeds',
        'POST /agent/v5/datafeeds/{id}/read',
        'POST /agent/v5/events/read',
        'POST /login/pubkey/authenticate',
        'POST /pod/v2/admin/streams/list',
        'POST /relay/pubkey/authenticate',
      ],
      `outcomes: ${JSON.stringify(outcomes)}`,
    );
    assert.equal(exchanges.filter((e) => e.request === 'POST /relay/pubkey/authenticate').length, 2);
  });

  it('the harness does see requests that break the contract', async () => {
    const seen = exchanges.length;
    const tokens = { sessionToken: 'session', keyManagerToken: 'km' };
    const send = async (url: string, init: RequestInit = {}) => void (await (await fetch(url, init)).arrayBuffer());
    await send(`${urls.pod}/pod/v2/sessioninfo`);
    await send(`${urls.agent}/agent/v4/stream/${STREAM}/message?since=yesterday`, { headers: tokens });
    await send(`${urls.pod}/pod/v2/admin/streams/list`, {
      method: 'POST',
      headers: { ...tokens, 'content-type': 'application/json' },
      body: JSON.stringify({ streamTypes: 'ROOM' }),
    });
    await send(`${urls.pod}/pod/v9/nothing`, { headers: tokens });
    await send(`${urls.agent}/pod/v2/sessioninfo`, { headers: tokens });
    assert.deepEqual(
      rejected(exchanges.slice(seen)).map((e) => e.request),
      [
        'GET /pod/v2/sessioninfo',
        `GET /agent/v4/stream/${STREAM}/message?since=yesterday`,
        'POST /pod/v2/admin/streams/list',
        'GET /pod/v9/nothing',
        'GET /pod/v2/sessioninfo',
      ],
    );
  });
});
