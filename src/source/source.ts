import type { Conversation, Cursor, FeedKind, FeedPosition, Membership, Person, SourceMessage } from '../core/types.ts';

/** Counters a source keeps for the run report. */
export interface SourceStats {
  requests: number;
  retries: number;
  reauthentications: number;
  throttled: number;
}

/** Quarantine keys of malformed records start with this; no Symphony message id does (base64 has no dot). */
export const MALFORMED_PREFIX = 'malformed.';

/** A record of a message page that cannot be keyed or ordered (no messageId, no numeric timestamp). */
export interface MalformedRecord {
  /** Stable for this record at this read position: `malformed.<stream>.<since>.<skip>.<position>`. */
  key: string;
  reason: string;
  record: unknown;
  /** Its timestamp when it has a usable one. */
  timestamp?: number;
}

/** One page of a stream, read from a cursor. */
export interface SourcePage {
  messages: SourceMessage[];
  /** Reported rather than thrown, so one bad record neither stops the stream nor is lost. */
  malformed: MalformedRecord[];
  /** The cursor after this page, counting the malformed records that hold a place in the sequence. */
  next: Cursor;
}

export interface ConversationFilter {
  /** Only conversations with activity at or after this time (epoch ms): the admin list's `startDate` (§2.2). */
  activeSince?: number;
}

/** One read of a real-time feed. */
export interface FeedBatch {
  /** V4Event records as received: unordered, possibly repeated (symphony-api.md §2.9). */
  events: unknown[];
  /** Acknowledges this batch on the next read; to be kept only once the batch is durably filed. */
  position: FeedPosition;
  /** The feed had expired and a new one was started: events in between are missing until a history sweep. */
  restarted: boolean;
}

/** Where chat comes from. One implementation today: the Symphony REST API (`source/symphony`). */
export interface Source {
  readonly kind: 'symphony';
  /** Logs in and checks that the account can read; throws `ERR_SOURCE_AUTH` otherwise. */
  check(signal?: AbortSignal): Promise<void>;
  /** Every conversation the account can enumerate, discovered anew on each call. */
  conversations(signal?: AbortSignal, filter?: ConversationFilter): AsyncIterable<Conversation>;
  /** Current and past members of a conversation, with join dates where membership changes over time. */
  members(conversation: Conversation, signal?: AbortSignal): Promise<Membership[]>;
  /** Directory lookup by user id (for senders who are no longer members); unknown ids are absent. */
  users(userIds: readonly string[], signal?: AbortSignal): Promise<Map<string, Person>>;
  /** Messages after `from`, ascending by timestamp, one page per iteration. */
  messages(conversationId: string, from: Cursor, signal?: AbortSignal): AsyncIterable<SourcePage>;
  /**
   * Downloads one attachment (never its preview images) and hands its decoded bytes to `consume` as they arrive,
   * counted against `attachment.size` when given: a mismatch fails the stream with a retryable
   * `ERR_SOURCE_ATTACHMENT` naming both sizes. After a failed attempt `consume` is called again and must start over.
   */
  attachment<T>(
    conversationId: string,
    messageId: string,
    attachment: { id: string; size?: number },
    consume: (bytes: AsyncIterable<Buffer>) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T>;
  /** Reads the next batch of a Datafeed v5 or the Datahose from `from`, acknowledging the batch before it. */
  readFeed(kind: FeedKind, from: FeedPosition | undefined, signal?: AbortSignal): Promise<FeedBatch>;
  stats(): SourceStats;
  close(): Promise<void>;
}
