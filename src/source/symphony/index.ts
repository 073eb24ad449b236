import { AppError, isAppError, reasonOf } from '../../core/errors.ts';
import { canonicalId, userIdOf } from '../../core/ids.ts';
import type { Logger } from '../../core/logger.ts';
import {
  advanceCursor,
  type Conversation,
  type Cursor,
  type FeedKind,
  type FeedPosition,
  type Membership,
  type Person,
  type SourceMessage,
} from '../../core/types.ts';
import {
  MALFORMED_PREFIX,
  type ConversationFilter,
  type FeedBatch,
  type MalformedRecord,
  type Source,
  type SourcePage,
  type SourceStats,
} from '../source.ts';
import type {
  MemberInfo,
  UserV2,
  V2AdminStreamList,
  V2MembershipList,
  V2UserList,
  V4Message,
  V5Datafeed,
  V5EventList,
} from './api-types.ts';
import { SymphonySession } from './auth.ts';
import { resolveConfig, type ResolvedConfig, type SymphonySourceConfig } from './config.ts';
import { decodeAttachment } from './base64.ts';
import { SymphonyHttp, type HttpRequest, type RequestAuth } from './http.ts';
import type { Clock } from './rate-limit.ts';
import { defectOf, memberToPerson, timestampOf, toConversation, toSourceMessage, userToPerson } from './mapping.ts';

export type { SymphonySourceConfig } from './config.ts';

export interface SymphonySourceDeps {
  logger: Logger;
  /** Replaces the TLS transport (tests only: `caFile` does not apply to it). */
  fetch?: typeof fetch;
  /** Time source of the `requestsPerSecond` limit (tests). */
  clock?: Clock;
}

/**
 * `V2AdminStreamFilter` (pod spec): `status`, `scope`, `origin` and `privacy` absent mean "all", so active and
 * inactive, internal and external streams are all listed. The brief's `includeInactiveStreams` belongs to the
 * user-level `StreamFilter`, not to this body.
 */
const ADMIN_STREAM_FILTER = {
  streamTypes: [{ type: 'IM' }, { type: 'MIM' }, { type: 'ROOM' }, { type: 'POST' }],
};

/**
 * Everything that becomes an item or changes who receives one (symphony-api.md §2.10 body, §3); presence and
 * connection events are not archived.
 */
const FEED_EVENT_TYPES = [
  'MESSAGESENT',
  'SHAREDPOST',
  'MESSAGESUPPRESSED',
  'SYMPHONYELEMENTSACTION',
  'INSTANTMESSAGECREATED',
  'ROOMCREATED',
  'ROOMUPDATED',
  'ROOMDEACTIVATED',
  'ROOMREACTIVATED',
  'USERJOINEDROOM',
  'USERLEFTROOM',
  'ROOMMEMBERPROMOTEDTOOWNER',
  'ROOMMEMBERDEMOTEDFROMOWNER',
];

/** Positions re-read at the cursor's millisecond; more removals than this in one millisecond between reads are not expected. */
const SKIP_SLACK = 20;

/** IM, MIM and wall (POST) membership does not change over the life of the stream (symphony-api.md §8). */
const FIXED_MEMBERSHIP = new Set(['IM', 'MIM', 'POST']);

function protocolError(detail: string, retryable = false): AppError {
  return new AppError('ERR_SOURCE_PROTOCOL', detail, { retryable });
}

function pathId(id: string): string {
  return encodeURIComponent(canonicalId(id));
}

class SymphonySource implements Source {
  readonly kind = 'symphony' as const;
  readonly #config: ResolvedConfig;
  readonly #deps: SymphonySourceDeps;
  readonly #stats: SourceStats = { requests: 0, retries: 0, reauthentications: 0, throttled: 0 };
  readonly #closing = new AbortController();
  readonly #http: SymphonyHttp;
  readonly #pod: RequestAuth;
  readonly #agent: RequestAuth;
  /** Directory answers for the life of the source; `null` caches "not found" (§2.7: 204 or `errors`). */
  readonly #userCache = new Map<string, Person | null>();

  constructor(config: ResolvedConfig, deps: SymphonySourceDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#http = new SymphonyHttp({
      fetch: deps.fetch,
      ca: config.ca,
      allowedOrigins: [config.podUrl, config.agentUrl, config.keyManagerUrl],
      requestsPerSecond: config.requestsPerSecond,
      clock: deps.clock,
      logger: deps.logger,
      requestTimeoutMs: config.requestTimeoutMs,
      maxRetries: config.maxRetries,
      backoffBaseMs: config.backoffBaseMs,
      backoffCapMs: config.backoffCapMs,
      stats: this.#stats,
      closeSignal: this.#closing.signal,
    });
    const session = new SymphonySession({
      http: this.#http,
      logger: deps.logger,
      podUrl: config.podUrl,
      keyManagerUrl: config.keyManagerUrl,
      username: config.username,
      privateKey: config.privateKey,
    });
    this.#pod = session.auth('pod');
    this.#agent = session.auth('agent');
  }

  #podGet<T>(path: string, query: HttpRequest['query'], signal: AbortSignal | undefined) {
    const req = { method: 'GET', baseUrl: this.#config.podUrl, path, query, auth: this.#pod, signal } as const;
    return this.#http.request<T>({ ...req, responseType: 'json' });
  }

  /** `GET /pod/v2/sessioninfo` is the cheapest call that proves the session works (§1.2). */
  async check(signal?: AbortSignal): Promise<void> {
    const res = await this.#podGet<UserV2>('/pod/v2/sessioninfo', undefined, signal);
    if (!res.body || typeof res.body !== 'object') throw protocolError('GET /pod/v2/sessioninfo → empty body');
  }

  /** `POST /pod/v2/admin/streams/list` (User Provisioning role), paged by skip at ≤100 (§2.2, §7). */
  async *conversations(signal?: AbortSignal, options: ConversationFilter = {}): AsyncIterable<Conversation> {
    const limit = this.#config.streamPageSize;
    const body =
      options.activeSince === undefined
        ? ADMIN_STREAM_FILTER
        : { ...ADMIN_STREAM_FILTER, startDate: options.activeSince };
    const seen = new Set<string>();
    for (let skip = 0; ;) {
      const res = await this.#http.request<V2AdminStreamList>({
        method: 'POST',
        baseUrl: this.#config.podUrl,
        path: '/pod/v2/admin/streams/list',
        query: { skip, limit },
        body,
        auth: this.#pod,
        responseType: 'json',
        signal,
      });
      const streams = res.body?.streams ?? [];
      if (!Array.isArray(streams)) throw protocolError('POST /pod/v2/admin/streams/list → streams is not an array');
      for (const info of streams) {
        const conversation = toConversation(info);
        if (!conversation) throw protocolError(`POST /pod/v2/admin/streams/list?skip=${skip} → stream without id`);
        // Paging by skip over a list that grows while we read can repeat entries (§2.1: ids differ only in alphabet).
        if (seen.has(conversation.id)) continue;
        seen.add(conversation.id);
        yield conversation;
      }
      skip += streams.length;
      const count = res.body?.count;
      if (streams.length < limit || (typeof count === 'number' && skip >= count)) return;
    }
  }

  /**
   * Current members with their details from `GET /pod/v1/admin/stream/{id}/membership/list` (≤1000 per page,
   * §2.3); for rooms, past members and join dates from `GET /pod/v1/admin/room/{id}/membership/list
   * ?includePastMembers=true`, whose records carry ids only, resolved through the directory. IM, MIM and wall
   * membership is fixed from the start, so their join dates are not used.
   */
  async members(conversation: Conversation, signal?: AbortSignal): Promise<Membership[]> {
    const current = await this.#currentMembers(conversation, signal);
    if (FIXED_MEMBERSHIP.has(conversation.type)) {
      return [...current.values()].map(({ person }) => ({ person, current: true }));
    }
    const history = await this.#roomMembers(conversation, signal);
    const out: Membership[] = [];
    for (const { person, joinDate } of current.values()) {
      const joinedAt = timestampOf(history?.get(person.userId)) ?? joinDate;
      out.push(joinedAt === undefined ? { person, current: true } : { person, joinedAt, current: true });
    }
    if (!history) return out;
    const past = [...history.keys()].filter((id) => !current.has(id));
    const people = await this.users(past, signal);
    for (const userId of past) {
      const person = people.get(userId) ?? { userId };
      const joinedAt = timestampOf(history.get(userId));
      out.push(joinedAt === undefined ? { person, current: false } : { person, joinedAt, current: false });
    }
    return out;
  }

  async #currentMembers(conversation: Conversation, signal: AbortSignal | undefined) {
    const limit = this.#config.membersPageSize;
    const path = `/pod/v1/admin/stream/${pathId(conversation.id)}/membership/list`;
    const people = new Map<string, { person: Person; joinDate: number | undefined }>();
    for (let skip = 0; ;) {
      const res = await this.#podGet<V2MembershipList>(path, { skip, limit }, signal);
      const members = res.body?.members ?? [];
      if (!Array.isArray(members)) throw protocolError(`GET ${path} → members is not an array`);
      for (const member of members) {
        const person = member.user ? memberToPerson(member.user) : undefined;
        // A member we cannot identify is a mailbox we would silently skip: fail loudly instead.
        if (!person) throw protocolError(`GET ${path}?skip=${skip} → member without a user id`);
        if (!people.has(person.userId)) people.set(person.userId, { person, joinDate: timestampOf(member.joinDate) });
      }
      skip += members.length;
      const count = res.body?.count;
      if (members.length < limit || (typeof count === 'number' && skip >= count)) break;
    }
    return people;
  }

  /** userId → last join date, past members included; undefined when the stream is not a room after all. */
  async #roomMembers(conversation: Conversation, signal: AbortSignal | undefined) {
    const path = `/pod/v1/admin/room/${pathId(conversation.id)}/membership/list`;
    let body: MemberInfo[] | undefined;
    try {
      body = (await this.#podGet<MemberInfo[]>(path, { includePastMembers: true }, signal)).body;
    } catch (err) {
      // A stream that is not a room underneath (unknown or missing type on a feed event, §2.2, §3) answers 400/404.
      if (isAppError(err, 'ERR_SOURCE_PROTOCOL') && (err.status === 400 || err.status === 404)) {
        this.#deps.logger.warn({ streamId: conversation.id, status: err.status }, 'no room membership history');
        return undefined;
      }
      throw err;
    }
    if (body === undefined) return new Map<string, unknown>();
    if (!Array.isArray(body)) throw protocolError(`GET ${path} → body is not a member array`);
    const joins = new Map<string, unknown>();
    for (const member of body) {
      const userId = userIdOf(member?.id);
      if (userId === undefined) throw protocolError(`GET ${path} → member without an id`);
      joins.set(userId, member.joinDate);
    }
    return joins;
  }

  /** `GET /pod/v3/users?uid=…&local=false`, ≤100 ids per call, cached including misses (§2.7, §8). */
  async users(userIds: readonly string[], signal?: AbortSignal): Promise<Map<string, Person>> {
    const wanted = [...new Set(userIds.map((id) => userIdOf(id)).filter((id): id is string => id !== undefined))];
    const missing = wanted.filter((id) => !this.#userCache.has(id));
    for (let i = 0; i < missing.length; i += this.#config.usersBatchSize) {
      await this.#fetchUsers(missing.slice(i, i + this.#config.usersBatchSize), signal);
    }
    const found = new Map<string, Person>();
    for (const id of wanted) {
      const person = this.#userCache.get(id);
      if (person) found.set(id, person);
    }
    return found;
  }

  async #fetchUsers(batch: string[], signal: AbortSignal | undefined): Promise<void> {
    const res = await this.#podGet<V2UserList>('/pod/v3/users', { uid: batch.join(','), local: false }, signal);
    const users = res.body?.users ?? [];
    if (!Array.isArray(users)) throw protocolError('GET /pod/v3/users → users is not an array');
    for (const user of users) {
      const person = userToPerson(user);
      if (person) this.#userCache.set(person.userId, person);
    }
    for (const id of batch) if (!this.#userCache.has(id)) this.#userCache.set(id, null);
  }

  /**
   * `GET /agent/v4/stream/{sid}/message?since=&skip=&limit=` (§2.4): ascending and inclusive of `since`,
   * `skip` = messages at exactly `since` already read, so same-millisecond bursts longer than a page still
   * come out exactly once.
   */
  async *messages(conversationId: string, from: Cursor, signal?: AbortSignal): AsyncIterable<SourcePage> {
    const streamId = canonicalId(conversationId);
    const limit = this.#config.pageSize;
    // `skip` counts positions, and a message removed (suppressed) at the cursor's millisecond since the last read
    // shifts them, so a plain skip would pass over an unread message. Backing off a few positions re-reads at most
    // that many messages, which the ledger recognises (symphony-api.md §2.4, §2.8).
    const slack = Math.min(SKIP_SLACK, Math.floor(limit / 2));
    let cursor = { ts: from.ts, count: Math.max(0, from.count - slack) };
    for (;;) {
      const records = await this.#messagePage(streamId, cursor, limit, signal);
      if (records.length === 0) return;
      const { page, malformed, next, failure } = this.#readPage(streamId, cursor, records);
      if (page.length > 0 || malformed.length > 0) yield { messages: page, malformed, next };
      if (failure) throw failure;
      if (records.length < limit) return;
      // A full page that moved the cursor nowhere would be requested again forever.
      if (next.ts === cursor.ts && next.count === cursor.count) {
        throw protocolError(
          `stream ${streamId}: a full page at since=${cursor.ts} skip=${cursor.count} had no timestamps`,
        );
      }
      cursor = next;
    }
  }

  async #messagePage(streamId: string, cursor: Cursor, limit: number, signal?: AbortSignal): Promise<unknown[]> {
    const path = `/agent/v4/stream/${encodeURIComponent(streamId)}/message`;
    const res = await this.#http.request<unknown>({
      method: 'GET',
      baseUrl: this.#config.agentUrl,
      path,
      query: { since: cursor.ts, skip: cursor.count, limit },
      auth: this.#agent,
      responseType: 'json',
      signal,
    });
    if (res.body === undefined) return [];
    if (!Array.isArray(res.body)) throw protocolError(`GET ${path} → body is not a message array`);
    return res.body;
  }

  #readPage(streamId: string, cursor: Cursor, records: unknown[]) {
    const page: SourceMessage[] = [];
    const malformed: MalformedRecord[] = [];
    let next = cursor;
    for (const [position, record] of records.entries()) {
      const ts = timestampOf((record as Partial<V4Message> | null)?.timestamp);
      if (ts !== undefined && ts < next.ts) {
        // Not one bad record but a broken sequence: since/skip paging would skip or repeat messages.
        const failure = protocolError(`stream ${streamId}: messages out of timestamp order at position ${position}`);
        return { page, malformed, next, failure };
      }
      const reason = defectOf(record);
      if (reason === undefined) {
        page.push(toSourceMessage(record as V4Message, streamId));
      } else {
        this.#deps.logger.warn({ streamId, position, reason }, 'malformed Symphony message record');
        const key = `${MALFORMED_PREFIX}${streamId}.${cursor.ts}.${cursor.count}.${position}`;
        malformed.push(ts === undefined ? { key, reason, record } : { key, reason, record, timestamp: ts });
      }
      // Skipped records still hold their place in the since/skip sequence when their timestamp is known.
      if (ts !== undefined) next = advanceCursor(next, [ts]);
    }
    return { page, malformed, next, failure: undefined };
  }

  /**
   * `GET /agent/v1/stream/{sid}/attachment?fileId=&messageId=`: the body is the file in base64 (§2.6), decoded as it
   * arrives (base64.ts), so no attachment is ever held whole. Preview images (`images` of the attachment metadata)
   * are downloadable the same way but are never asked for: they add nothing the file does not have.
   */
  async attachment<T>(
    conversationId: string,
    messageId: string,
    attachment: { id: string; size?: number },
    consume: (bytes: AsyncIterable<Buffer>) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const path = `/agent/v1/stream/${pathId(conversationId)}/attachment`;
    // File ids contain `/ + =` (§2.1); URLSearchParams percent-encodes them.
    const query = { fileId: attachment.id, messageId: canonicalId(messageId) };
    const where = `stream ${canonicalId(conversationId)} message ${canonicalId(messageId)} file ${attachment.id}`;
    const req = { method: 'GET', baseUrl: this.#config.agentUrl, path, query, auth: this.#agent, signal } as const;
    try {
      return await this.#http.requestStream(req, (body, status) => {
        if (status === 204) throw new AppError('ERR_SOURCE_ATTACHMENT', `${where}: no content (204)`);
        return consume(decodeAttachment(body, where, attachment.size));
      });
    } catch (err) {
      throw attachmentError(err, where);
    }
  }

  /**
   * Datahose: `POST /agent/v5/events/read` creates the feed implicitly from tag and filters (§2.10). Datafeed v5:
   * the feed named by the tag is reused or created, then `POST /agent/v5/datafeeds/{id}/read` (§2.9). Either way
   * the `ackId` sent acknowledges the batch before; a 400 means the feed is gone (30 min TTL), so a new one is
   * started and the batch reports `restarted`.
   */
  async readFeed(kind: FeedKind, from: FeedPosition | undefined, signal?: AbortSignal): Promise<FeedBatch> {
    let position = from?.kind === kind ? from : undefined;
    let restarted = false;
    for (let attempt = 0; ; attempt++) {
      try {
        if (kind === 'datafeed' && !position?.feedId) {
          position = { kind, feedId: await this.#datafeedId(signal), ackId: '' };
        }
        const body = await this.#readFeedOnce(kind, position, signal);
        const events = body?.events ?? [];
        if (!Array.isArray(events)) throw protocolError(`${kind} read → events is not an array`, true);
        const ackId = typeof body?.ackId === 'string' ? body.ackId : (position?.ackId ?? '');
        const next: FeedPosition = position?.feedId ? { kind, feedId: position.feedId, ackId } : { kind, ackId };
        return { events, position: next, restarted };
      } catch (err) {
        if (attempt > 0 || !isAppError(err, 'ERR_SOURCE_PROTOCOL') || err.status !== 400) throw err;
        this.#deps.logger.warn({ kind, reason: err.message }, 'symphony feed expired; starting a new one');
        if (kind === 'datafeed' && position?.feedId) await this.#deleteDatafeed(position.feedId, signal);
        position = undefined;
        restarted = true;
      }
    }
  }

  #readFeedOnce(kind: FeedKind, position: FeedPosition | undefined, signal: AbortSignal | undefined) {
    const ackId = position?.ackId ?? '';
    const req =
      kind === 'datahose'
        ? {
            path: '/agent/v5/events/read',
            body: {
              type: 'datahose',
              tag: this.#config.feedTag,
              eventTypes: FEED_EVENT_TYPES,
              ackId,
              updatePresence: false,
            },
          }
        : {
            path: `/agent/v5/datafeeds/${encodeURIComponent(position?.feedId ?? '')}/read`,
            body: { ackId, updatePresence: false },
          };
    return this.#agentJson<V5EventList>('POST', req.path, req.body, signal);
  }

  /** BDK reuses the feed whose id is the tag (a tagged feed takes the tag as id), else creates one (§2.9). */
  async #datafeedId(signal: AbortSignal | undefined): Promise<string> {
    const tag = this.#config.feedTag;
    const listed = await this.#agentJson<V5Datafeed[]>('GET', '/agent/v5/datafeeds', undefined, signal, { tag });
    const existing = Array.isArray(listed) ? listed.find((f) => typeof f?.id === 'string' && f.id !== '') : undefined;
    if (existing?.id) return existing.id;
    const created = await this.#agentJson<V5Datafeed>('POST', '/agent/v5/datafeeds', { tag }, signal);
    if (typeof created?.id !== 'string' || created.id === '') throw protocolError('POST /agent/v5/datafeeds → no id');
    return created.id;
  }

  async #deleteDatafeed(feedId: string, signal: AbortSignal | undefined): Promise<void> {
    const path = `/agent/v5/datafeeds/${encodeURIComponent(feedId)}`;
    try {
      await this.#http.request({
        method: 'DELETE',
        baseUrl: this.#config.agentUrl,
        path,
        auth: this.#agent,
        responseType: 'json',
        signal,
      });
    } catch (err) {
      // Already gone is the usual case after a 400; anything else is logged and the new feed used regardless.
      if (isAppError(err, 'ERR_ABORTED')) throw err;
      this.#deps.logger.info({ reason: reasonOf(err) }, 'could not delete the expired datafeed');
    }
  }

  async #agentJson<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    query?: HttpRequest['query'],
  ): Promise<T | undefined> {
    const req: HttpRequest = { method, baseUrl: this.#config.agentUrl, path, auth: this.#agent, responseType: 'json' };
    if (body !== undefined) req.body = body;
    if (query) req.query = query;
    if (signal) req.signal = signal;
    return (await this.#http.request<T>(req)).body;
  }

  stats(): SourceStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    this.#closing.abort();
  }
}

/** Source failures of a download become `ERR_SOURCE_ATTACHMENT`; staging errors, aborts and auth pass as they are. */
function attachmentError(err: unknown, where: string): AppError {
  if (
    isAppError(err, 'ERR_ABORTED') ||
    isAppError(err, 'ERR_SOURCE_AUTH') ||
    isAppError(err, 'ERR_SOURCE_ATTACHMENT')
  ) {
    return err;
  }
  if (isAppError(err) && !err.code.startsWith('ERR_SOURCE_')) return err;
  if (isAppError(err)) {
    return new AppError('ERR_SOURCE_ATTACHMENT', `${where}: ${err.message}`, {
      retryable: err.retryable,
      retryAfterMs: err.retryAfterMs,
      status: err.status,
    });
  }
  return new AppError('ERR_SOURCE_ATTACHMENT', `${where}: download failed`, { retryable: true });
}

export function createSymphonySource(config: SymphonySourceConfig, deps: SymphonySourceDeps): Source {
  return new SymphonySource(resolveConfig(config), deps);
}
