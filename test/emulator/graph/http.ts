import http from 'node:http';
import https from 'node:https';
import type { GraphEmulator } from '../../../src/emulator/graph/index.ts';
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET } from '../../../src/emulator/graph/index.ts';

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON, else undefined. */
  json: Record<string, unknown> | undefined;
  text: string;
}

export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  ca?: string;
}

/** One HTTP(S) exchange; a dropped connection rejects with the socket error. */
export function call(url: string, options: CallOptions = {}): Promise<Response> {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  const body =
    options.body === undefined ? undefined : Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
  return new Promise((resolve, reject) => {
    const req = lib.request(
      u,
      {
        method: options.method ?? 'GET',
        headers: { ...(body ? { 'content-length': String(body.length) } : {}), ...(options.headers ?? {}) },
        agent: false,
        ...(options.ca ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | undefined;
          try {
            json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function form(values: Record<string, string>): { headers: Record<string, string>; body: string } {
  return {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(values).toString(),
  };
}

export async function token(
  emu: GraphEmulator,
  clientId = DEFAULT_CLIENT_ID,
  clientSecret = DEFAULT_CLIENT_SECRET,
): Promise<string> {
  const res = await call(emu.tokenUrl, {
    method: 'POST',
    ...form({
      client_id: clientId,
      client_secret: clientSecret,
      grant_type: 'client_credentials',
      scope: 'https://graph.microsoft.com/.default',
    }),
  });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${res.text}`);
  return (res.json as { access_token: string }).access_token;
}

export interface Graph {
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  mime(path: string, raw: Buffer): Promise<Response>;
}

/** A bearer-authenticated Graph caller with immutable ids. */
export function graph(emu: GraphEmulator, accessToken: string): Graph {
  const auth = { authorization: `Bearer ${accessToken}`, prefer: 'IdType="ImmutableId"' };
  return {
    get: (path, headers = {}) => call(emu.url + path, { headers: { ...auth, ...headers } }),
    post: (path, body, headers = {}) =>
      call(emu.url + path, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      }),
    mime: (path, raw) =>
      call(emu.url + path, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'text/plain' },
        body: raw.toString('base64'),
      }),
  };
}

export function message(messageId: string, body = 'Hello'): Buffer {
  return Buffer.from(
    [
      'From: "Alice" <alice@bank.example>',
      'To: bob@bank.example',
      'Subject: =?utf-8?B?R3LDvMOfZQ==?=',
      'Date: Wed, 01 May 2024 10:00:00 +0000',
      `Message-ID: <${messageId}>`,
      'X-Symphony-Stream-Id: s1',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '',
    ].join('\r\n'),
  );
}
