/**
 * Datafeed v5 (the bot's conversations, symphony-api.md §2.9) and Datahose (the whole pod, §2.10) over the
 * released events: ackId queues, re-delivery of what was not acknowledged, long-poll, expiry.
 */
import { renderEvent } from './events.ts';
import type { Prng } from './prng.ts';
import { EVENT_TYPES, type EventType, type FaultOptions, type Pod, type PodEvent, type V4Event } from './types.ts';
import { datafeedSees } from './views.ts';

/** Events per read (BDK and the agent answer batches of up to 100). */
const MAX_BATCH = 100;
/** "This happens when you reached 20 active feeds" (agent spec, read datafeed 403). */
const MAX_DATAFEEDS = 20;
const SCOPES = ['INTERNAL', 'EXTERNAL', 'FEDERATED'] as const;
type Scope = (typeof SCOPES)[number];

export interface FeedTimings {
  ackTimeoutMs: number;
  longPollMs: number;
  feedTtlMs: number;
}

/** An answer other than 200, with the status the agent spec declares for it. */
export class FeedError extends Error {
  constructor(
    readonly status: 400 | 403,
    message: string,
  ) {
    super(message);
  }
}

const GONE = 'Do not retry: the feed no longer exists, please create a new feed. The datafeed has a 30 minutes ttl.';

/** Timers that `cancelAll` ends at once, so that closing the emulator does not wait for a long-poll. */
export class Sleeps {
  readonly #pending = new Set<() => void>();
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves after `ms`, or earlier when one of `wakers` is called or everything is cancelled. */
  sleep(ms: number, wakers?: Set<() => void>): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        wakers?.delete(done);
        this.#pending.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakers?.add(done);
      this.#pending.add(done);
    });
  }

  cancelAll(): void {
    this.#closed = true;
    for (const done of [...this.#pending]) done();
  }
}

export class Feed {
  readonly pending: V4Event[] = [];
  outstanding: { ackId: string; events: V4Event[]; deliveredAt: number } | undefined;
  /** Long-polling reads wait on these. */
  readonly waiters = new Set<() => void>();
  gone = false;
  #seq = 0;

  constructor(
    readonly id: string,
    readonly createdAt: number,
    public lastReadAt: number,
    readonly accepts: (e: PodEvent) => boolean,
    private readonly ackPrefix: string,
  ) {}

  nextAckId(): string {
    return `${this.ackPrefix}.${++this.#seq}`;
  }

  issued(ackId: string): boolean {
    const m = /^(.*)\.(\d+)$/.exec(ackId);
    return m?.[1] === this.ackPrefix && Number(m[2]) <= this.#seq;
  }

  wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

export interface DatahoseRequest {
  tag: string;
  eventTypes: EventType[];
  scopes?: Scope[];
  ackId: string;
}

export interface FeedHubDeps {
  pod: Pod;
  timings: FeedTimings;
  faults: FaultOptions;
  /** Feed ids, ack ids and batch shuffles. */
  rng: Prng;
  /** One draw per feed read decides on a duplicate. */
  duplicateRng: Prng;
  /** Pod time, for `createdAt`. */
  now: () => number;
  sleeps: Sleeps;
}

export class FeedHub {
  readonly #datafeeds = new Map<string, Feed>();
  readonly #datahoses = new Map<string, Feed>();
  #reads = 0;

  constructor(private readonly deps: FeedHubDeps) {}

  /** Hands released events to every feed that exists now: a feed only sees what is released after its creation. */
  publish(events: PodEvent[]): void {
    const feeds = [...this.#datafeeds.values(), ...this.#datahoses.values()];
    if (feeds.length === 0) return;
    const rendered = new Map<PodEvent, V4Event>();
    for (const feed of feeds) {
      let added = false;
      for (const e of events) {
        if (!feed.accepts(e)) continue;
        let r = rendered.get(e);
        if (!r) rendered.set(e, (r = renderEvent(this.deps.pod, e)));
        feed.pending.push(r);
        added = true;
      }
      if (added) feed.wake();
    }
  }

  listDatafeeds(tag: string | undefined): Feed[] {
    this.#dropExpired();
    return [...this.#datafeeds.values()].filter((f) => tag === undefined || f.id === tag);
  }

  /** BDK reuses a tagged feed through its id (symphony-api.md §2.9), so a tag names the feed and is reused. */
  createDatafeed(tag: string | undefined): Feed {
    this.#dropExpired();
    const existing = tag === undefined ? undefined : this.#datafeeds.get(tag);
    if (existing) return existing;
    if (this.#datafeeds.size >= MAX_DATAFEEDS) {
      throw new FeedError(403, `Too many feeds created: ${MAX_DATAFEEDS} active feeds is the limit`);
    }
    const id = tag ?? `${this.deps.rng.bytes(16).toString('hex')}_f`;
    const feed = this.#newFeed(id, (e) => datafeedSees(this.deps.pod, e));
    this.#datafeeds.set(id, feed);
    return feed;
  }

  deleteDatafeed(id: string): void {
    const feed = this.#datafeeds.get(id);
    if (!feed) throw new FeedError(400, `Datafeed ${id} not found`);
    this.#remove(feed);
  }

  readDatafeed(id: string, ackId: string): Promise<{ events: V4Event[]; ackId: string }> {
    const feed = this.#datafeeds.get(id);
    if (!feed) throw new FeedError(400, GONE);
    return this.#read(feed, ackId);
  }

  /** "The feed is created implicitly"; readers with the same tag and filters share one feed (§2.10). */
  readDatahose(req: DatahoseRequest): Promise<{ events: V4Event[]; ackId: string }> {
    const types = [...new Set(req.eventTypes)].sort();
    const scopes = [...new Set(req.scopes ?? [])].sort();
    const key = `${req.tag}\n${types.join(',')}\n${scopes.join(',')}`;
    let feed = this.#datahoses.get(key);
    if (!feed) {
      const wanted = new Set<string>(types);
      const inScope = new Set<string>(scopes);
      feed = this.#newFeed(key, (e) => wanted.has(e.type) && (inScope.size === 0 || inScope.has(scopeOf(e))));
      this.#datahoses.set(key, feed);
    }
    return this.#read(feed, req.ackId);
  }

  #newFeed(id: string, accepts: (e: PodEvent) => boolean): Feed {
    const prefix = this.deps.rng.bytes(12).toString('base64url');
    return new Feed(id, this.deps.now(), Date.now(), accepts, prefix);
  }

  #remove(feed: Feed): void {
    feed.gone = true;
    this.#datafeeds.delete(feed.id);
    this.#datahoses.delete(feed.id);
    feed.wake();
  }

  #dropExpired(): void {
    const limit = Date.now() - this.deps.timings.feedTtlMs;
    for (const f of [...this.#datafeeds.values(), ...this.#datahoses.values()])
      if (f.lastReadAt < limit) this.#remove(f);
  }

  async #read(feed: Feed, ackId: string): Promise<{ events: V4Event[]; ackId: string }> {
    const { timings, faults, sleeps } = this.deps;
    const started = Date.now();
    if (started - feed.lastReadAt > timings.feedTtlMs) {
      this.#remove(feed);
      throw new FeedError(400, GONE);
    }
    this.#reads++;
    const every = faults.feedExpiryEvery;
    if (every !== undefined && every > 0 && this.#reads % every === 0) {
      this.#remove(feed);
      throw new FeedError(400, GONE);
    }
    if (ackId !== '' && !feed.issued(ackId)) throw new FeedError(400, `Invalid ackId ${ackId}`);
    feed.lastReadAt = started;
    const last = feed.outstanding;
    if (last) {
      // The ackId of the latest batch acknowledges it; an empty or older one, or a late one, gets it again (§2.9).
      const acked = ackId === last.ackId && started - last.deliveredAt <= timings.ackTimeoutMs;
      if (!acked) feed.pending.unshift(...last.events);
      feed.outstanding = undefined;
    }
    const deadline = started + timings.longPollMs;
    while (feed.pending.length === 0 && !feed.gone && !sleeps.closed && Date.now() < deadline) {
      await sleeps.sleep(deadline - Date.now(), feed.waiters);
    }
    if (feed.gone) throw new FeedError(400, GONE);
    const events = feed.pending.splice(0, MAX_BATCH);
    const draw = this.deps.duplicateRng.next();
    const rate = faults.duplicateEventRate ?? 0;
    if (events.length > 0 && draw < rate) {
      // Feeds deliver at least once (symphony-api.md §7): one event comes again in a later batch.
      feed.pending.push(events[Math.floor((draw / rate) * events.length)] as V4Event);
    }
    if (faults.reorderEvents) {
      for (let i = events.length - 1; i > 0; i--) {
        const j = this.deps.rng.int(i + 1);
        [events[i], events[j]] = [events[j] as V4Event, events[i] as V4Event];
      }
    }
    const delivered = { ackId: feed.nextAckId(), events, deliveredAt: Date.now() };
    feed.outstanding = delivered;
    feed.lastReadAt = delivered.deliveredAt;
    return { events, ackId: delivered.ackId };
  }
}

/** Shared wall posts count as internal (V5EventsReadBody.scopes); nothing here is federated. */
function scopeOf(e: PodEvent): Scope {
  return e.stream.kind !== 'POST' && e.stream.isExternal ? 'EXTERNAL' : 'INTERNAL';
}

/** Valid real-time event types this pod never generates (V5EventsReadBody.eventTypes). */
const OTHER_EVENT_TYPES = [
  'ROOMDEACTIVATED',
  'ROOMREACTIVATED',
  'USERREQUESTEDTOJOINROOM',
  'ROOMMEMBERPROMOTEDTOOWNER',
  'ROOMMEMBERDEMOTEDFROMOWNER',
  'CONNECTIONREQUESTED',
  'CONNECTIONACCEPTED',
  'GENERICSYSTEMEVENT',
];

/** Checks a datahose read body (V5EventsReadBody): `type`, `tag` and at least one known event type are required. */
export function parseDatahoseBody(body: unknown): DatahoseRequest | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'A request body is required';
  const b = body as Record<string, unknown>;
  if (b.type !== 'datahose') return 'type must be "datahose"';
  if (typeof b.tag !== 'string' || b.tag.length < 1 || b.tag.length > 80) return 'tag must be 1 to 80 characters';
  const known = new Set<string>(EVENT_TYPES);
  const all = new Set<string>([...EVENT_TYPES, ...OTHER_EVENT_TYPES]);
  if (!Array.isArray(b.eventTypes) || b.eventTypes.length === 0) return 'eventTypes needs at least one value';
  for (const t of b.eventTypes) if (typeof t !== 'string' || !all.has(t)) return `Unknown event type ${String(t)}`;
  const out: DatahoseRequest = {
    tag: b.tag,
    eventTypes: (b.eventTypes as string[]).filter((t): t is EventType => known.has(t)),
    ackId: '',
  };
  if (b.scopes !== undefined) {
    if (!Array.isArray(b.scopes)) return 'scopes must be an array';
    for (const s of b.scopes) if (!SCOPES.includes(s as Scope)) return `Unknown scope ${String(s)}`;
    out.scopes = b.scopes as Scope[];
  }
  if (b.ackId !== undefined && b.ackId !== null && typeof b.ackId !== 'string') return 'ackId must be a string';
  if (typeof b.ackId === 'string') out.ackId = b.ackId;
  if (b.updatePresence !== undefined && typeof b.updatePresence !== 'boolean')
    return 'updatePresence must be a boolean';
  return out;
}
