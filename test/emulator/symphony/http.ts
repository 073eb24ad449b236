/**
 * Raw HTTP helpers for the emulator tests: they talk to the fake pod without the archiver's own client so
 * that the tests check the emulator, not the source that reads it.
 */
import { createPrivateKey } from 'node:crypto';
import { SignJWT } from 'jose';
import type { HttpResult } from './openapi.ts';

export interface Response extends HttpResult {
  headers: Headers;
}

export interface CallOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
}

/** One request; JSON bodies are parsed, others kept as text, an empty body is `undefined`. */
export async function call(base: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  const res = await fetch(base + path, { method: options.method ?? 'GET', headers, body });
  const text = await res.text();
  const contentType = res.headers.get('content-type');
  let parsed: unknown = text === '' ? undefined : text;
  if (text !== '' && contentType?.startsWith('application/json')) parsed = JSON.parse(text) as unknown;
  return { status: res.status, contentType, body: parsed, headers: res.headers };
}

/** `?a=1&b=2`, percent-encoding each value (file ids contain `/ + =`). */
export function qs(params: Record<string, string | number>): string {
  return '?' + new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
}

export interface JwtOptions {
  privateKeyPem: string;
  sub?: string;
  /** Seconds from now; may be negative (already expired). Default 240, as BDK-J. */
  expiresIn?: number;
  alg?: 'RS512' | 'RS256';
}

/** The RS512 login JWT `{sub, exp}` of symphony-api.md §1.1. */
export async function loginJwt(options: JwtOptions): Promise<string> {
  const alg = options.alg ?? 'RS512';
  return new SignJWT({})
    .setProtectedHeader({ alg })
    .setSubject(options.sub ?? 'archiver-bot')
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresIn ?? 240))
    .sign(createPrivateKey(options.privateKeyPem));
}

export interface Tokens {
  sessionToken: string;
  keyManagerToken: string;
}

function tokenOf(res: Response, path: string): string {
  const token = (res.body as { token?: unknown } | undefined)?.token;
  if (res.status !== 200 || typeof token !== 'string') {
    throw new Error(`${path} → ${res.status} ${JSON.stringify(res.body)}`);
  }
  return token;
}

/** Logs in at both `/login` and `/relay` with fresh JWTs. */
export async function login(base: string, privateKeyPem: string): Promise<Tokens> {
  const session = await call(base, '/login/pubkey/authenticate', {
    method: 'POST',
    body: { token: await loginJwt({ privateKeyPem }) },
  });
  const km = await call(base, '/relay/pubkey/authenticate', {
    method: 'POST',
    body: { token: await loginJwt({ privateKeyPem }) },
  });
  return {
    sessionToken: tokenOf(session, '/login/pubkey/authenticate'),
    keyManagerToken: tokenOf(km, '/relay/pubkey/authenticate'),
  };
}

export function podHeaders(tokens: Tokens): Record<string, string> {
  return { sessionToken: tokens.sessionToken };
}

export function agentHeaders(tokens: Tokens): Record<string, string> {
  return { sessionToken: tokens.sessionToken, keyManagerToken: tokens.keyManagerToken };
}
