/**
 * A minimal, perfect archiver written against the HTTP API only: history sweeps, feed reading, and the
 * recipients it derives from them. The tests compare what it computes with the emulator's ground truth, so
 * that the ground truth is checked against what the pod really serves rather than against its own code.
 */
import assert from 'node:assert/strict';
import { canonicalId } from '../../../src/core/ids.ts';
import type { SymphonyEmulator } from '../../../src/emulator/symphony/index.ts';
import type { V2AdminStreamInfo, V4Message } from '../../../src/source/symphony/api-types.ts';
import { agentHeaders, call, podHeaders, qs, type Response, type Tokens } from './http.ts';

export function expectStatus(res: Response, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
}

export interface Member {
  userId: number;
  joinDate: number;
  /** False for a past member (room list with `includePastMembers=true`). */
  current: boolean;
}

/** Everything the pod serves at one moment. */
export interface Sweep {
  streams: V2AdminStreamInfo[];
  members: Map<string, Member[]>;
  messages: Map<string, V4Message[]>;
}

export interface FeedEvent {
  id: string;
  messageId: string;
  timestamp: number;
  type: string;
  initiator: { user: { userId: number } };
  payload: Record<string, Record<string, unknown>>;
}

export async function listStreams(url: string, tokens: Tokens): Promise<V2AdminStreamInfo[]> {
  const streams: V2AdminStreamInfo[] = [];
  for (let skip = 0; ; skip += 100) {
    const res = await call(url, `/pod/v2/admin/streams/list${qs({ skip, limit: 100 })}`, {
      method: 'POST',
      headers: podHeaders(tokens),
      body: {},
    });
    expectStatus(res, 200);
    const page = (res.body as { streams: V2AdminStreamInfo[] }).streams;
    streams.push(...page);
    if (page.length < 100) return streams;
  }
}

/**
 * Reads a stream as the spec asks (agent `/v4/stream/{sid}/message` description): `since` = timestamp of
 * the last message seen, `skip` = how many messages with that timestamp were already seen.
 */
export async function readAll(url: string, tokens: Tokens, sid: string, limit: number): Promise<V4Message[]> {
  const out: V4Message[] = [];
  let since = 0;
  let skip = 0;
  for (let calls = 0; ; calls++) {
    assert.ok(calls < 10_000, 'paging terminates');
    const res = await call(url, `/agent/v4/stream/${sid}/message${qs({ since, skip, limit })}`, {
      headers: agentHeaders(tokens),
    });
    if (res.status === 204) return out;
    expectStatus(res, 200);
    const page = res.body as V4Message[];
    assert.ok(page.length > 0 && page.length <= limit, `page of ${page.length}`);
    out.push(...page);
    const last = (page.at(-1) as V4Message).timestamp;
    const atLast = page.filter((m) => m.timestamp === last).length;
    skip = last === since ? skip + atLast : atLast;
    since = last;
  }
}

export async function members(url: string, tokens: Tokens, stream: V2AdminStreamInfo): Promise<Member[]> {
  if (stream.type === 'ROOM' || stream.type === 'CHATROOM') {
    const res = await call(url, `/pod/v1/admin/room/${stream.id}/membership/list?includePastMembers=true`, {
      headers: podHeaders(tokens),
    });
    expectStatus(res, 200);
    const current = await call(url, `/pod/v1/admin/room/${stream.id}/membership/list`, { headers: podHeaders(tokens) });
    const currentIds = new Set((current.body as { id: number }[]).map((m) => m.id));
    return (res.body as { id: number; joinDate: number }[]).map((m) => ({
      userId: m.id,
      joinDate: m.joinDate,
      current: currentIds.has(m.id),
    }));
  }
  const res = await call(url, `/pod/v1/admin/stream/${stream.id}/membership/list?limit=1000`, {
    headers: podHeaders(tokens),
  });
  expectStatus(res, 200);
  return (res.body as { members: { user: { userId: number }; joinDate: number }[] }).members.map((m) => ({
    userId: m.user.userId,
    joinDate: m.joinDate,
    current: true,
  }));
}

export async function sweep(url: string, tokens: Tokens): Promise<Sweep> {
  const streams = await listStreams(url, tokens);
  const out: Sweep = { streams, members: new Map(), messages: new Map() };
  for (const s of streams) {
    out.members.set(s.id, await members(url, tokens, s));
    out.messages.set(s.id, await readAll(url, tokens, s.id, 500));
  }
  return out;
}

/** Current email of each user (lower-cased), from `/pod/v3/users`; absent when the user has none. */
export async function directory(url: string, tokens: Tokens, ids: Iterable<number>): Promise<Map<number, string>> {
  const all = [...new Set(ids)];
  const out = new Map<number, string>();
  for (let i = 0; i < all.length; i += 100) {
    const res = await call(url, `/pod/v3/users${qs({ uid: all.slice(i, i + 100).join(',') })}`, {
      headers: podHeaders(tokens),
    });
    expectStatus(res, 200);
    for (const u of (res.body as { users: { id: number; emailAddress?: string }[] }).users) {
      if (u.emailAddress) out.set(u.id, u.emailAddress.toLowerCase());
    }
  }
  return out;
}

export type FeedKind = 'datahose' | 'datafeed';

export const ALL_EVENT_TYPES = [
  'MESSAGESENT',
  'MESSAGESUPPRESSED',
  'SHAREDPOST',
  'INSTANTMESSAGECREATED',
  'ROOMCREATED',
  'ROOMUPDATED',
  'USERJOINEDROOM',
  'USERLEFTROOM',
  'SYMPHONYELEMENTSACTION',
];

/** A feed reader that acknowledges each batch with the next read. */
export class FeedReader {
  ackId = '';
  feedId: string | undefined;

  constructor(
    private readonly url: string,
    private readonly tokens: Tokens,
    readonly kind: FeedKind,
    private readonly tag = 'archiver-test',
  ) {}

  async read(): Promise<{ res: Response; events: FeedEvent[] }> {
    if (this.kind === 'datafeed' && !this.feedId) {
      const created = await call(this.url, '/agent/v5/datafeeds', {
        method: 'POST',
        headers: agentHeaders(this.tokens),
        body: { tag: this.tag },
      });
      expectStatus(created, 201);
      this.feedId = (created.body as { id: string }).id;
    }
    const res =
      this.kind === 'datahose'
        ? await call(this.url, '/agent/v5/events/read', {
            method: 'POST',
            headers: agentHeaders(this.tokens),
            body: { type: 'datahose', tag: this.tag, eventTypes: ALL_EVENT_TYPES, ackId: this.ackId },
          })
        : await call(this.url, `/agent/v5/datafeeds/${this.feedId}/read`, {
            method: 'POST',
            headers: agentHeaders(this.tokens),
            body: { ackId: this.ackId },
          });
    if (res.status !== 200) return { res, events: [] };
    const body = res.body as { events: FeedEvent[]; ackId: string };
    this.ackId = body.ackId;
    return { res, events: body.events };
  }

  /** Reads until a read comes back empty (after its long-poll). */
  async drain(): Promise<FeedEvent[]> {
    const out: FeedEvent[] = [];
    for (;;) {
      const { res, events } = await this.read();
      expectStatus(res, 200);
      if (events.length === 0) return out;
      out.push(...events);
    }
  }
}

/**
 * The live capture the ground truth assumes: a sweep at the live start, the feed from then on while pod time
 * advances step by step, a final sweep once everything is released.
 */
export async function captureLive(
  emu: SymphonyEmulator,
  tokens: Tokens,
  kind: FeedKind,
  stepMs = 12 * 3_600_000,
  steps = 10,
): Promise<{ start: Sweep; events: FeedEvent[]; end: Sweep }> {
  const reader = new FeedReader(emu.url, tokens, kind);
  // The first read creates the feed now, at the live start.
  assert.deepEqual(await reader.drain(), []);
  const start = await sweep(emu.url, tokens);
  const events: FeedEvent[] = [];
  for (let i = 0; i < steps; i++) {
    emu.advance(stepMs);
    events.push(...(await reader.drain()));
  }
  emu.releaseAll();
  events.push(...(await reader.drain()));
  return { start, events, end: await sweep(emu.url, tokens) };
}

export interface ExpectedTruth {
  mailboxes: Map<string, Set<string>>;
  unmapped: string[];
  messages: number;
  events: Record<string, number>;
}

interface Span {
  join: number;
  leave?: number;
}

/**
 * What a perfect archiver files: every message it saw (start sweep, feed, end sweep) to the members at its
 * timestamp plus the sender; every room event from the feed to the members once it applies plus the
 * affected user. Membership comes from the sweeps' join dates and the feed's join and leave events.
 */
export function expectedTruth(
  input: { start?: Sweep; events: FeedEvent[]; end: Sweep },
  emails: Map<number, string>,
): ExpectedTruth {
  const spans = new Map<string, Map<number, Span[]>>();
  const spansOf = (sid: string, userId: number): Span[] => {
    let byUser = spans.get(sid);
    if (!byUser) spans.set(sid, (byUser = new Map()));
    let list = byUser.get(userId);
    if (!list) byUser.set(userId, (list = []));
    return list;
  };
  const open = (sid: string, userId: number, join: number): void => {
    const list = spansOf(sid, userId);
    if (!list.some((s) => s.leave === undefined)) list.push({ join });
  };
  for (const [sid, list] of input.start?.members ?? []) for (const m of list) open(sid, m.userId, m.joinDate);
  const unique = new Map<string, FeedEvent>();
  for (const e of input.events) unique.set(e.id, e);
  const events = [...unique.values()].sort((a, b) => a.timestamp - b.timestamp);
  const streamOf = (e: FeedEvent): string => {
    const inner = Object.values(e.payload)[0] as { stream?: { streamId: string }; message?: V4Message };
    return canonicalId(inner.stream?.streamId ?? inner.message?.stream.streamId ?? '');
  };
  for (const e of events) {
    const inner = Object.values(e.payload)[0] as { affectedUser?: { userId: number } };
    const sid = streamOf(e);
    if (e.type === 'USERJOINEDROOM') open(sid, inner.affectedUser?.userId as number, e.timestamp);
    if (e.type === 'USERLEFTROOM') {
      const span = spansOf(sid, inner.affectedUser?.userId as number).find((s) => s.leave === undefined);
      assert.ok(span, `a leave follows a join (${e.id})`);
      span.leave = e.timestamp;
    }
  }
  // Whoever the end sweep lists and was never seen joining joined at the date it shows.
  for (const [sid, list] of input.end.members) {
    for (const m of list) if (spansOf(sid, m.userId).length === 0) open(sid, m.userId, m.joinDate);
  }
  const membersAt = (sid: string, t: number): number[] =>
    [...(spans.get(sid) ?? [])]
      .filter(([, list]) => list.some((s) => s.join <= t && (s.leave === undefined || t < s.leave)))
      .map(([id]) => id);

  const out: ExpectedTruth = { mailboxes: new Map(), unmapped: [], messages: 0, events: {} };
  const file = (recipients: Set<number>, itemId: string): void => {
    for (const id of recipients) {
      const email = emails.get(id);
      if (email === undefined) out.unmapped.push(`${id}/${itemId}`);
      else out.mailboxes.set(email, (out.mailboxes.get(email) ?? new Set()).add(itemId));
    }
  };
  const messages = new Map<string, V4Message>();
  for (const s of [input.start, input.end])
    for (const list of s?.messages.values() ?? []) for (const m of list) messages.set(m.messageId, m);
  for (const e of events) {
    if (e.type === 'MESSAGESENT' || e.type === 'SHAREDPOST') {
      const m = (Object.values(e.payload)[0] as { message: V4Message }).message;
      messages.set(m.messageId, m);
    }
  }
  for (const m of messages.values()) {
    out.messages++;
    file(new Set([...membersAt(canonicalId(m.stream.streamId), m.timestamp), Number(m.user.userId)]), m.messageId);
  }
  const ITEMS = new Set([
    'MESSAGESUPPRESSED',
    'SYMPHONYELEMENTSACTION',
    'USERJOINEDROOM',
    'USERLEFTROOM',
    'ROOMCREATED',
    'ROOMUPDATED',
    'INSTANTMESSAGECREATED',
  ]);
  for (const e of events) {
    out.events[e.type] = (out.events[e.type] ?? 0) + 1;
    if (!ITEMS.has(e.type)) continue;
    const recipients = new Set(membersAt(streamOf(e), e.timestamp));
    const affected = (Object.values(e.payload)[0] as { affectedUser?: { userId: number } }).affectedUser;
    if (affected) recipients.add(affected.userId);
    file(recipients, canonicalId(e.messageId));
  }
  return out;
}
