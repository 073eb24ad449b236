import type { Conversation, Cursor, Person, SourceMessage } from '../core/types.ts';

/** Counters a source keeps for the run report. */
export interface SourceStats {
  requests: number;
  retries: number;
  reauthentications: number;
  throttled: number;
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
  messages(conversationId: string, from: Cursor, signal?: AbortSignal): AsyncIterable<SourceMessage[]>;
  /** The decoded bytes of one attachment. */
  attachment(conversationId: string, messageId: string, attachmentId: string, signal?: AbortSignal): Promise<Buffer>;
  stats(): SourceStats;
  close(): Promise<void>;
}
