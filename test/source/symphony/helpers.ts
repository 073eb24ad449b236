import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../../src/core/logger.ts';
import type { SourceMessage } from '../../../src/core/types.ts';
import type { Source, SourcePage } from '../../../src/source/source.ts';
import { createSymphonySource, type SymphonySourceConfig } from '../../../src/source/symphony/index.ts';

export interface KeyPair {
  privateKeyPem: string;
  pkcs1PrivateKeyPem: string;
  publicKeyPem: string;
}

let cachedKeys: KeyPair | undefined;
let cachedOtherKeys: KeyPair | undefined;

function makeKeys(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    pkcs1PrivateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** 2048-bit keys keep the suite fast; the pod accepts any RSA size the admin uploaded. */
export function botKeys(): KeyPair {
  return (cachedKeys ??= makeKeys());
}

export function otherKeys(): KeyPair {
  return (cachedOtherKeys ??= makeKeys());
}

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface FakeReply {
  status?: number;
  /** Serialised as JSON unless `raw` is set. */
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** Never answer (to exercise timeouts). */
  hang?: boolean;
}

export interface FakeServer {
  url: string;
  requests: FakeRequest[];
  logins: number;
  relayLogins: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, reply: FakeReply): void {
  if (reply.hang) return;
  const status = reply.status ?? 200;
  const payload = reply.raw ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
  res.writeHead(status, { 'content-type': 'application/json', ...reply.headers });
  res.end(status === 204 ? undefined : payload);
}

/**
 * A scriptable loopback pod for edge cases the emulator cannot produce. Login and relay answer with
 * numbered tokens (`session-1`, `km-1`, …) unless the handler claims those paths.
 */
export async function startFake(
  handler: (req: FakeRequest, server: FakeServer) => FakeReply | undefined,
): Promise<FakeServer> {
  const state: FakeServer = { url: '', requests: [], logins: 0, relayLogins: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const text = Buffer.concat(chunks).toString('utf8');
      const fake: FakeRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: text ? (JSON.parse(text) as unknown) : undefined,
      };
      state.requests.push(fake);
      const reply = handler(fake, state);
      if (reply) return send(res, reply);
      if (fake.path === '/login/pubkey/authenticate') {
        state.logins += 1;
        return send(res, { body: { name: 'sessionToken', token: `session-${state.logins}` } });
      }
      if (fake.path === '/relay/pubkey/authenticate') {
        state.relayLogins += 1;
        return send(res, { body: { name: 'keyManagerToken', token: `km-${state.relayLogins}` } });
      }
      send(res, { status: 404, body: { code: 404, message: 'not found' } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

export function sourceFor(url: string, options: Partial<SymphonySourceConfig> = {}): Source {
  return createSymphonySource(
    {
      podUrl: url,
      agentUrl: url,
      keyManagerUrl: url,
      username: 'archiver-bot',
      privateKeyPem: botKeys().privateKeyPem,
      backoffBaseMs: 1,
      backoffCapMs: 5,
      ...options,
    },
    { logger: silentLogger() },
  );
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** The messages of each page a source's `messages()` yields. */
export async function collectPages(pages: AsyncIterable<SourcePage>): Promise<SourceMessage[][]> {
  return (await collect(pages)).map((page) => page.messages);
}
