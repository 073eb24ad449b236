import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { canonicalId } from '../../core/ids.ts';
import type { V4Message } from '../../source/symphony/api-types.ts';
import type { Authenticator, TokenName } from './auth.ts';
import type { PodClock } from './clock.ts';
import { FeedError, parseDatahoseBody, type FeedHub, type Sleeps } from './feeds.ts';
import { attachmentBytes } from './generate.ts';
import type { Prng } from './prng.ts';
import type { FaultOptions, MembershipSpan, Pod, PodStream, PodUser } from './types.ts';
import {
  isVisible,
  lastMessageDateAt,
  lastModifiedAt,
  lowerBound,
  membersAt,
  messageAt,
  pastMembersAt,
  roomNameAt,
} from './views.ts';

interface Reply {
  status: number;
  body?: unknown;
  /** Raw text body with its content type (attachment download). */
  text?: { contentType: string; value: string };
  headers?: Record<string, string>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** `Error {code, message}` (pod, login) and `V2Error {code, message}` (agent) share this body (symphony-api.md §4.4). */
function errorReply(status: number, message: string, headers?: Record<string, string>): Reply {
  return headers ? { status, body: { code: status, message }, headers } : { status, body: { code: status, message } };
}

function intParam(url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new HttpError(400, `Invalid ${name}: ${raw}`);
  const value = Number(raw);
  if (value > max) throw new HttpError(400, `${name} cannot exceed ${max}`);
  return value;
}

/** `limit=0` or absent means the default; above the documented maximum is a 400 (symphony-api.md §7). */
function limitParam(url: URL, fallback: number, max: number): number {
  return intParam(url, 'limit', fallback, max) || fallback;
}

function skipParam(url: URL): number {
  return intParam(url, 'skip', 0, Number.MAX_SAFE_INTEGER);
}

function userV2(u: PodUser, roles?: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: u.id,
    firstName: u.firstName,
    lastName: u.lastName,
    displayName: u.displayName,
    company: u.company,
    accountType: u.accountType,
    avatars: [
      { size: 'original', url: '../avatars/static/150/default.png' },
      { size: 'small', url: '../avatars/static/50/default.png' },
    ],
  };
  if (u.email) out.emailAddress = u.email;
  if (u.username) out.username = u.username;
  if (roles) out.roles = roles;
  return out;
}

interface StreamFilter {
  streamTypes?: { type?: string }[];
  scope?: string;
  origin?: string;
  status?: string;
  privacy?: string;
  startDate?: number;
  endDate?: number;
}

function parseFilter(body: unknown): StreamFilter {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'Invalid stream filter');
  const b = body as Record<string, unknown>;
  const out: StreamFilter = {};
  if (Array.isArray(b.streamTypes)) {
    out.streamTypes = b.streamTypes
      .filter((t): t is { type?: unknown } => typeof t === 'object' && t !== null)
      .map((t) => (typeof t.type === 'string' ? { type: t.type } : {}));
  }
  for (const key of ['scope', 'origin', 'status', 'privacy'] as const) {
    const v = b[key];
    if (typeof v === 'string') out[key] = v;
  }
  for (const key of ['startDate', 'endDate'] as const) {
    const v = b[key];
    if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
  }
  return out;
}

function matchesFilter(state: ServerState, s: PodStream, f: StreamFilter): boolean {
  const types = (f.streamTypes ?? []).map((t) => t.type?.toUpperCase()).filter((t) => t !== undefined);
  // A stream with an unknown reported type is still a room underneath; match it by what it is so that
  // a client asking for the documented types still sees it (and must cope with the odd type string).
  if (types.length > 0 && !types.includes(s.kind) && !types.includes(s.reportedType)) return false;
  if (f.status === 'ACTIVE' && !s.active) return false;
  if (f.status === 'INACTIVE' && s.active) return false;
  if (f.scope === 'INTERNAL' && s.isExternal) return false;
  if (f.scope === 'EXTERNAL' && !s.isExternal) return false;
  if (f.origin && f.origin !== s.origin) return false;
  if (f.privacy === 'PUBLIC' && !s.isPublic) return false;
  if (f.privacy === 'PRIVATE' && s.isPublic) return false;
  // The real API filters on membership changes in the range; activity (creation .. last message) is close enough.
  const now = state.clock.now();
  const lastActivity = Math.max(lastMessageDateAt(state.pod, s, now) ?? 0, lastModifiedAt(s, now));
  if (f.startDate !== undefined && lastActivity < f.startDate) return false;
  if (f.endDate !== undefined && s.createdDate > f.endDate) return false;
  return true;
}

function adminStreamInfo(state: ServerState, s: PodStream): Record<string, unknown> {
  const now = state.clock.now();
  const members = membersAt(s, now);
  const attributes: Record<string, unknown> = {
    createdByUserId: s.creatorId,
    createdDate: s.createdDate,
    lastModifiedDate: lastModifiedAt(s, now),
    originCompany: s.originCompany,
    originCompanyId: s.originCompanyId,
    membersCount: members.length,
  };
  if (s.kind === 'ROOM') {
    const name = roomNameAt(s, now);
    if (name !== undefined) attributes.roomName = name;
    if (s.roomDescription !== undefined) attributes.roomDescription = s.roomDescription;
    attributes.groupChat = s.groupChat;
  } else {
    attributes.members = members.map((m) => m.userId);
  }
  const lastMessageDate = lastMessageDateAt(state.pod, s, now);
  if (lastMessageDate !== undefined) attributes.lastMessageDate = lastMessageDate;
  const info: Record<string, unknown> = {
    id: s.id,
    isExternal: s.isExternal,
    isActive: s.active,
    type: s.reportedType,
    crossPod: false,
    origin: s.origin,
    attributes,
  };
  if (s.kind === 'ROOM') info.isPublic = s.isPublic;
  return info;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'Request body is not valid JSON');
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'Invalid path encoding');
  }
}

export interface ServerState {
  pod: Pod;
  auth: Authenticator;
  faults: FaultOptions;
  /** One draw per authenticated call: 429 or 500. */
  faultRng: Prng;
  /** One draw per authenticated call: answered slowly or not. */
  slowRng: Prng;
  sleeps: Sleeps;
  clock: PodClock;
  feeds: FeedHub;
  requests: number;
  authenticatedCalls: number;
}

export function createEmulatorServer(state: ServerState): Server {
  return createServer((req, res) => {
    state.requests++;
    handle(state, req)
      .catch((err: unknown) =>
        err instanceof HttpError || err instanceof FeedError
          ? errorReply(err.status, err.message)
          : errorReply(500, 'Internal emulator error'),
      )
      .then((reply) => send(res, reply))
      .catch(() => res.destroy());
  });
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...reply.headers };
  let payload: string | undefined;
  if (reply.text) {
    headers['content-type'] = reply.text.contentType;
    payload = reply.text.value;
  } else if (reply.body !== undefined && reply.status !== 204) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(reply.body);
  }
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(reply.status, headers);
  res.end(payload);
}

type Component = 'pod' | 'agent';

async function handle(state: ServerState, req: IncomingMessage): Promise<Reply> {
  const url = new URL(req.url ?? '/', 'http://emulator.invalid');
  const method = req.method ?? 'GET';
  const path = url.pathname;

  if (method === 'GET' && path === '/emulator/ground-truth') return { status: 200, body: state.pod.groundTruth };
  if (method === 'GET' && path === '/emulator/clock') return { status: 200, body: { now: state.clock.now() } };

  if (method === 'POST' && (path === '/login/pubkey/authenticate' || path === '/relay/pubkey/authenticate')) {
    const name: TokenName = path.startsWith('/login') ? 'sessionToken' : 'keyManagerToken';
    const body = await readBody(req);
    const jwt = typeof body === 'object' && body !== null ? (body as { token?: unknown }).token : undefined;
    const result = await state.auth.authenticate(jwt, name);
    if ('error' in result) return errorReply(401, result.error);
    return { status: 200, body: { name, token: result.token } };
  }

  const component: Component | undefined = path.startsWith('/pod/')
    ? 'pod'
    : path.startsWith('/agent/')
      ? 'agent'
      : undefined;
  if (!component) return errorReply(404, 'Not found');

  const route = matchRoute(method, path);
  if (!route) return errorReply(404, 'Not found');

  // Pod calls need the session token; agent calls both tokens (symphony-api.md §0, §1.2).
  const session = headerValue(req, 'sessiontoken');
  const km = headerValue(req, 'keymanagertoken');
  if (
    !state.auth.isValid('sessionToken', session) ||
    (component === 'agent' && !state.auth.isValid('keyManagerToken', km))
  ) {
    return errorReply(401, 'Invalid session');
  }
  state.authenticatedCalls++;
  const every = state.faults.sessionExpiryEvery;
  if (every !== undefined && every > 0 && state.authenticatedCalls % every === 0) {
    // This call is still served; the next one sees the expired session.
    state.auth.invalidateAll();
  }

  // Throttling, server errors and slowness may hit any endpoint (symphony-api.md §7); one draw of each per call
  // keeps runs repeatable.
  const draw = state.faultRng.next();
  const slow = state.slowRng.next() < (state.faults.slowResponseRate ?? 0);
  if (slow) await state.sleeps.sleep(state.faults.slowResponseMs ?? 2000);
  const rate429 = state.faults.rate429 ?? 0;
  const rate500 = state.faults.rate500 ?? 0;
  if (draw < rate429) {
    return errorReply(429, 'Too many requests', { 'retry-after': String(state.faults.retryAfterSeconds ?? 1) });
  }
  if (draw < rate429 + rate500) return errorReply(500, 'Internal server error');

  return route(state, url, req);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

type Handler = (state: ServerState, url: URL, req: IncomingMessage) => Promise<Reply> | Reply;

function matchRoute(method: string, path: string): Handler | undefined {
  if (method === 'GET' && path === '/pod/v2/sessioninfo') return sessionInfo;
  if (method === 'POST' && path === '/pod/v2/admin/streams/list') return adminStreamsList;
  if (method === 'GET' && path === '/pod/v3/users') return usersV3;
  if (method === 'GET' && path === '/agent/v5/datafeeds') return listDatafeeds;
  if (method === 'POST' && path === '/agent/v5/datafeeds') return createDatafeed;
  if (method === 'POST' && path === '/agent/v5/events/read') return readDatahose;
  const routes: [
    string,
    RegExp,
    (state: ServerState, url: URL, req: IncomingMessage, id: string) => Promise<Reply> | Reply,
  ][] = [
    ['GET', /^\/pod\/v1\/admin\/stream\/([^/]+)\/membership\/list$/, membershipList],
    ['GET', /^\/pod\/v1\/admin\/room\/([^/]+)\/membership\/list$/, roomMembershipList],
    ['GET', /^\/agent\/v4\/stream\/([^/]+)\/message$/, streamMessages],
    ['GET', /^\/agent\/v1\/message\/([^/]+)$/, messageById],
    ['GET', /^\/agent\/v1\/stream\/([^/]+)\/attachment$/, attachment],
    ['POST', /^\/agent\/v5\/datafeeds\/([^/]+)\/read$/, readDatafeed],
    ['DELETE', /^\/agent\/v5\/datafeeds\/([^/]+)$/, deleteDatafeed],
  ];
  for (const [m, pattern, handler] of routes) {
    const match = method === m ? pattern.exec(path) : null;
    if (match) {
      const id = match[1] as string;
      return (state, url, req) => handler(state, url, req, id);
    }
  }
  return undefined;
}

/** Stream ids arrive URL-safe or standard base64 (percent-encoded); both name the same stream (§2.1). */
function findStream(state: ServerState, rawSegment: string): PodStream {
  const stream = state.pod.streamsById.get(canonicalId(decodeSegment(rawSegment)));
  // A stream created after pod-now does not exist yet.
  if (!stream || stream.createdDate > state.clock.now()) throw new HttpError(404, 'Stream not found');
  return stream;
}

function sessionInfo(state: ServerState): Reply {
  return { status: 200, body: userV2(state.pod.bot, ['INDIVIDUAL', 'USER_PROVISIONING', 'CONTENT_MANAGEMENT']) };
}

async function adminStreamsList(state: ServerState, url: URL, req: IncomingMessage): Promise<Reply> {
  // Default 50, max 100 (symphony-api.md §2.2, §7).
  const limit = limitParam(url, 50, 100);
  const skip = skipParam(url);
  const filter = parseFilter(await readBody(req));
  const now = state.clock.now();
  const matched = state.pod.streams.filter((s) => s.createdDate <= now && matchesFilter(state, s, filter));
  return {
    status: 200,
    body: {
      count: matched.length,
      skip,
      limit,
      filter,
      streams: matched.slice(skip, skip + limit).map((s) => adminStreamInfo(state, s)),
    },
  };
}

function membershipList(state: ServerState, url: URL, _req: IncomingMessage, rawId: string): Reply {
  // Default 100, max 1000 (symphony-api.md §2.3).
  const limit = limitParam(url, 100, 1000);
  const skip = skipParam(url);
  const stream = findStream(state, rawId);
  const current = membersAt(stream, state.clock.now());
  const members = current.slice(skip, skip + limit).map((m) => {
    const u = state.pod.usersById.get(m.userId) as PodUser;
    const user: Record<string, unknown> = { userId: u.id };
    if (u.email) user.email = u.email;
    Object.assign(user, {
      firstName: u.firstName,
      lastName: u.lastName,
      displayName: u.displayName,
      company: u.company,
      companyId: u.companyId,
      isExternal: u.isExternal,
    });
    return { user, isOwner: m.isOwner, isCreator: m.isCreator, joinDate: m.join };
  });
  return { status: 200, body: { count: current.length, skip, limit, members } };
}

/**
 * `MembershipList`: current members, and with `includePastMembers=true` also those who left, each with the
 * date of their last join. There is no leave date (symphony-api.md §2.3).
 */
function roomMembershipList(state: ServerState, url: URL, _req: IncomingMessage, rawId: string): Reply {
  const raw = url.searchParams.get('includePastMembers');
  if (raw !== null && raw !== 'true' && raw !== 'false')
    throw new HttpError(400, 'includePastMembers must be true or false');
  const stream = findStream(state, rawId);
  if (stream.kind !== 'ROOM') throw new HttpError(400, 'Stream is not a room');
  const now = state.clock.now();
  const spans: MembershipSpan[] = [...membersAt(stream, now), ...(raw === 'true' ? pastMembersAt(stream, now) : [])];
  return { status: 200, body: spans.map((m) => ({ id: m.userId, owner: m.isOwner, joinDate: m.join })) };
}

function usersV3(state: ServerState, url: URL): Reply {
  const lists = (['uid', 'email', 'username'] as const).filter((k) => url.searchParams.has(k));
  if (lists.length !== 1) throw new HttpError(400, 'Exactly one of uid, email or username must be given');
  const kind = lists[0] as 'uid' | 'email' | 'username';
  const items = (url.searchParams.get(kind) ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  // At most 100 items per list (symphony-api.md §2.7).
  if (items.length > 100) throw new HttpError(400, 'Search lists may contain up to 100 elements');
  const local = url.searchParams.get('local') === 'true';
  // The spec's `local` parameter: "for username search, the local flag must be true".
  if (kind === 'username' && !local) throw new HttpError(400, 'Username search requires local=true');
  const users: Record<string, unknown>[] = [];
  const errors: Record<string, string>[] = [];
  for (const item of items) {
    let user: PodUser | undefined;
    if (kind === 'uid') {
      if (!/^\d{1,19}$/.test(item)) {
        errors.push({ error: 'invalid.format', id: item });
        continue;
      }
      user = state.pod.usersById.get(Number(item));
    } else if (kind === 'email') {
      user = state.pod.usersByEmail.get(item.toLowerCase());
    } else {
      user = state.pod.usersByUsername.get(item);
    }
    // A local search only sees this pod's users.
    if (user && local && user.isExternal) user = undefined;
    if (user) users.push(userV2(user));
  }
  if (users.length === 0) return { status: 204 };
  return { status: 200, body: { users, errors } };
}

/**
 * Suppressed messages are left out once suppressed. Whether the real API omits them is not documented
 * (symphony-api.md §2.8); omitting is the harder case for a client, since a suppression inside a run of equal
 * timestamps shifts what its `skip` counts.
 */
function streamMessages(state: ServerState, url: URL, _req: IncomingMessage, rawId: string): Reply {
  const sinceRaw = url.searchParams.get('since');
  if (sinceRaw === null || !/^\d+$/.test(sinceRaw)) throw new HttpError(400, 'since is required (epoch milliseconds)');
  const untilRaw = url.searchParams.get('until');
  if (untilRaw !== null && !/^\d+$/.test(untilRaw)) throw new HttpError(400, 'Invalid until');
  // Default 50, max 500 (symphony-api.md §2.4).
  const limit = limitParam(url, 50, 500);
  let skip = skipParam(url);
  const stream = findStream(state, rawId);
  const now = state.clock.now();
  const until = untilRaw === null ? now : Math.min(now, Number(untilRaw));
  // `skip` counts messages at exactly `since` already seen; results are ascending and include `since` (§2.4).
  const page: V4Message[] = [];
  for (
    let i = lowerBound(stream.timestamps, Number(sinceRaw));
    i < stream.messages.length && page.length < limit;
    i++
  ) {
    const m = stream.messages[i] as V4Message;
    if (m.timestamp > until) break;
    if (!isVisible(state.pod, m, now)) continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    page.push(messageAt(state.pod, m, now));
  }
  if (page.length === 0) return { status: 204 };
  return { status: 200, body: page };
}

/** `GET /agent/v1/message/{id}`: one V4Message, 204 when there is none (yet, or any more) (§2.4). */
function messageById(state: ServerState, _url: URL, _req: IncomingMessage, rawId: string): Reply {
  const found = state.pod.messagesById.get(canonicalId(decodeSegment(rawId)));
  const now = state.clock.now();
  if (!found || !isVisible(state.pod, found.message, now)) return { status: 204 };
  return { status: 200, body: messageAt(state.pod, found.message, now) };
}

function attachment(state: ServerState, url: URL, _req: IncomingMessage, rawId: string): Reply {
  const stream = findStream(state, rawId);
  const fileIdRaw = url.searchParams.get('fileId');
  const messageIdRaw = url.searchParams.get('messageId');
  if (!fileIdRaw || !messageIdRaw) throw new HttpError(400, 'fileId and messageId are required');
  const messageId = canonicalId(messageIdRaw.replace(/ /g, '+'));
  const found = state.pod.messagesById.get(messageId);
  if (!found || found.stream !== stream || !isVisible(state.pod, found.message, state.clock.now())) {
    throw new HttpError(404, 'Message not found in stream');
  }
  // An unencoded `+` arrives as a space; accept it rather than fail on a client's encoding slip.
  const att =
    state.pod.attachments.get(`${messageId}\n${fileIdRaw}`) ??
    state.pod.attachments.get(`${messageId}\n${fileIdRaw.replace(/ /g, '+')}`);
  if (!att) throw new HttpError(404, 'Attachment not found');
  if (att.broken) throw new HttpError(500, 'Attachment could not be decrypted');
  // The body is the base64 text of the file, not the bytes (symphony-api.md §2.6).
  return {
    status: 200,
    text: { contentType: 'application/octet-stream', value: attachmentBytes(att).toString('base64') },
  };
}

function datafeedBody(id: string, createdAt: number): Record<string, unknown> {
  // BDK matches tagged feeds by type "fanout" although the spec text says "datahose" (symphony-api.md §2.9).
  return { id, createdAt, type: 'fanout' };
}

function listDatafeeds(state: ServerState, url: URL): Reply {
  const tag = url.searchParams.get('tag') ?? undefined;
  return { status: 200, body: state.feeds.listDatafeeds(tag).map((f) => datafeedBody(f.id, f.createdAt)) };
}

async function createDatafeed(state: ServerState, _url: URL, req: IncomingMessage): Promise<Reply> {
  const body = await readBody(req);
  if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw new HttpError(400, 'Invalid datafeed body');
  }
  const tag = (body as { tag?: unknown } | undefined)?.tag;
  if (tag !== undefined && (typeof tag !== 'string' || tag.length === 0 || tag.length > 100)) {
    throw new HttpError(400, 'tag must be 1 to 100 characters');
  }
  const feed = state.feeds.createDatafeed(tag);
  return { status: 201, body: datafeedBody(feed.id, feed.createdAt) };
}

function deleteDatafeed(state: ServerState, _url: URL, _req: IncomingMessage, rawId: string): Reply {
  state.feeds.deleteDatafeed(decodeSegment(rawId));
  return { status: 204 };
}

async function readDatafeed(state: ServerState, _url: URL, req: IncomingMessage, rawId: string): Promise<Reply> {
  const body = await readBody(req);
  const ackId = body === undefined ? undefined : (body as { ackId?: unknown } | null)?.ackId;
  if (ackId !== undefined && ackId !== null && typeof ackId !== 'string') throw new HttpError(400, 'Invalid ackId');
  return { status: 200, body: await state.feeds.readDatafeed(decodeSegment(rawId), ackId ?? '') };
}

async function readDatahose(state: ServerState, _url: URL, req: IncomingMessage): Promise<Reply> {
  const parsed = parseDatahoseBody(await readBody(req));
  if (typeof parsed === 'string') throw new HttpError(400, parsed);
  return { status: 200, body: await state.feeds.readDatahose(parsed) };
}
