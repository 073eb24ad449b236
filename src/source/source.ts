import type { Conversation, Cursor, Person, SourceMessage } from '../core/types.ts';

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

/** Where chat comes from. One implementation today: the Symphony REST API (`source/symphony`). */
export interface Source {
  readonly kind: 'symphony';
  /** Logs in and checks that the account can read; throws `ERR_SOURCE_AUTH` otherwise. */
  check(signal?: AbortSignal): Promise<void>;
  /** Every conversation the account can enumerate, discovered anew on each call. */
  conversations(signal?: AbortSignal): AsyncIterable<Conversation>;
  /** Members of a conversation. */
  members(conversation: Conversation, signal?: AbortSignal): Promise<Person[]>;
  /** Directory lookup by user id (for senders who are no longer members); unknown ids are absent. */
  users(userIds: readonly string[], signal?: AbortSignal): Promise<Map<string, Person>>;
  /** Messages after `from`, ascending by timestamp, one page per iteration. */
  messages(conversationId: string, from: Cursor, signal?: AbortSignal): AsyncIterable<SourcePage>;
  /** The decoded bytes of one attachment. */
  attachment(conversationId: string, messageId: string, attachmentId: string, signal?: AbortSignal): Promise<Buffer>;
  stats(): SourceStats;
  close(): Promise<void>;
}
