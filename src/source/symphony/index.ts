import { AppError, isAppError } from '../../core/errors.ts';
import { canonicalId, userIdOf } from '../../core/ids.ts';
import type { Logger } from '../../core/logger.ts';
import { advanceCursor, type Conversation, type Cursor, type Person, type SourceMessage } from '../../core/types.ts';
import { MALFORMED_PREFIX, type MalformedRecord, type Source, type SourcePage, type SourceStats } from '../source.ts';
import type { UserV2, V2AdminStreamList, V2MembershipList, V2UserList, V4Message } from './api-types.ts';
import { SymphonySession } from './auth.ts';
import { resolveConfig, type ResolvedConfig, type SymphonySourceConfig } from './config.ts';
import { SymphonyHttp, type HttpRequest, type RequestAuth } from './http.ts';
import { defectOf, memberToPerson, timestampOf, toConversation, toSourceMessage, userToPerson } from './mapping.ts';

export type { SymphonySourceConfig } from './config.ts';

export interface SymphonySourceDeps {
  logger: Logger;
  fetch?: typeof fetch;
}

/**
 * `V2AdminStreamFilter` (pod spec): `status`, `scope`, `origin` and `privacy` absent mean "all", so active and
 * inactive, internal and external streams are all listed. The brief's `includeInactiveStreams` belongs to the
 * user-level `StreamFilter`, not to this body.
 */
const ADMIN_STREAM_FILTER = {
  streamTypes: [{ type: 'IM' }, { type: 'MIM' }, { type: 'ROOM' }, { type: 'POST' }],
};

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
      fetch: deps.fetch ?? globalThis.fetch,
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
  async *conversations(signal?: AbortSignal): AsyncIterable<Conversation> {
    const limit = this.#config.streamPageSize;
    const seen = new Set<string>();
    for (let skip = 0; ;) {
      const res = await this.#http.request<V2AdminStreamList>({
        method: 'POST',
        baseUrl: this.#config.podUrl,
        path: '/pod/v2/admin/streams/list',
        query: { skip, limit },
        body: ADMIN_STREAM_FILTER,
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

  /** `GET /pod/v1/admin/stream/{id}/membership/list`, ≤1000 per page (§2.3). */
  async members(conversation: Conversation, signal?: AbortSignal): Promise<Person[]> {
    const limit = this.#config.membersPageSize;
    const path = `/pod/v1/admin/stream/${pathId(conversation.id)}/membership/list`;
    const people = new Map<string, Person>();
    for (let skip = 0; ;) {
      const res = await this.#podGet<V2MembershipList>(path, { skip, limit }, signal);
      const members = res.body?.members ?? [];
      if (!Array.isArray(members)) throw protocolError(`GET ${path} → members is not an array`);
      for (const member of members) {
        const person = member.user ? memberToPerson(member.user) : undefined;
        // A member we cannot identify is a mailbox we would silently skip: fail loudly instead.
        if (!person) throw protocolError(`GET ${path}?skip=${skip} → member without a user id`);
        if (!people.has(person.userId)) people.set(person.userId, person);
      }
      skip += members.length;
      const count = res.body?.count;
      if (members.length < limit || (typeof count === 'number' && skip >= count)) break;
    }
    return [...people.values()];
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
    let cursor = from;
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

  /** `GET /agent/v1/stream/{sid}/attachment?fileId=&messageId=`: the body is the file in base64 (§2.6). */
  async attachment(conversationId: string, messageId: string, attachmentId: string, signal?: AbortSignal) {
    const path = `/agent/v1/stream/${pathId(conversationId)}/attachment`;
    // File ids contain `/ + =` (§2.1); URLSearchParams percent-encodes them.
    const query = { fileId: attachmentId, messageId: canonicalId(messageId) };
    let body: string | undefined;
    try {
      const res = await this.#http.request<string>({
        method: 'GET',
        baseUrl: this.#config.agentUrl,
        path,
        query,
        auth: this.#agent,
        responseType: 'text',
        signal,
      });
      body = res.body;
    } catch (err) {
      if (isAppError(err, 'ERR_ABORTED') || isAppError(err, 'ERR_SOURCE_AUTH')) throw err;
      throw attachmentError(err, `stream ${canonicalId(conversationId)} message ${canonicalId(messageId)}`);
    }
    return decodeAttachment(body, `stream ${canonicalId(conversationId)} message ${canonicalId(messageId)}`);
  }

  stats(): SourceStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    this.#closing.abort();
  }
}

function attachmentError(err: unknown, where: string): AppError {
  if (isAppError(err)) {
    return new AppError('ERR_SOURCE_ATTACHMENT', `${where}: ${err.message}`, {
      retryable: err.retryable,
      retryAfterMs: err.retryAfterMs,
      status: err.status,
    });
  }
  return new AppError('ERR_SOURCE_ATTACHMENT', `${where}: download failed`, { retryable: true });
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Strict decode: lenient base64 decoding would turn a proxy's HTML error page into a "file". */
export function decodeAttachment(body: string | undefined, where: string): Buffer {
  if (body === undefined) throw new AppError('ERR_SOURCE_ATTACHMENT', `${where}: no content (204)`);
  let text = body.trim();
  if (text.startsWith('"') && text.endsWith('"')) text = text.slice(1, -1);
  text = text.replace(/\\n|\s/g, '');
  if (!BASE64.test(text) || text.replace(/=+$/, '').length % 4 === 1) {
    throw new AppError('ERR_SOURCE_ATTACHMENT', `${where}: body is not base64 (${body.length} bytes)`, {
      retryable: true,
    });
  }
  return Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
}

export function createSymphonySource(config: SymphonySourceConfig, deps: SymphonySourceDeps): Source {
  return new SymphonySource(resolveConfig(config), deps);
}
