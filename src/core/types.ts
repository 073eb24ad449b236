import type { V4Message } from '../source/symphony/api-types.ts';

/** Stream types the archiver knows how to name and address (symphony-api.md §2.2). */
export const STREAM_TYPES = ['IM', 'MIM', 'ROOM', 'POST'] as const;
export type StreamType = (typeof STREAM_TYPES)[number];

export function isKnownStreamType(type: string | undefined): type is StreamType {
  return (STREAM_TYPES as readonly string[]).includes(type ?? '');
}

/** A Symphony user as the archiver needs them: ids as decimal strings, email exactly as Symphony has it. */
export interface Person {
  userId: string;
  email?: string;
  displayName?: string;
  firstName?: string;
  lastName?: string;
  username?: string;
  company?: string;
  external?: boolean;
}

/** A conversation (stream): IM, MIM, ROOM (incl. group chats) or POST (wall). */
export interface Conversation {
  /** Canonical (URL-safe, unpadded) stream id. */
  id: string;
  /** The type as Symphony reported it; may be one the archiver does not know. */
  type: string;
  name?: string;
  groupChat?: boolean;
  external?: boolean;
  crossPod?: boolean;
  active?: boolean;
  lastMessageDate?: number;
}

/** One message as read from the source: the V4Message verbatim plus the fields that key and order it. */
export interface SourceMessage {
  /** Canonical message id. */
  id: string;
  streamId: string;
  timestamp: number;
  raw: V4Message;
}

/**
 * Per-stream read position (symphony-api.md §2.4): the timestamp of the last message read and how many
 * messages with exactly that timestamp were read, i.e. the `since`/`skip` pair of the next request.
 */
export interface Cursor {
  ts: number;
  count: number;
}

export const START_CURSOR: Cursor = { ts: 0, count: 0 };

/** The cursor after reading `timestamps` (ascending) from `cursor`. */
export function advanceCursor(cursor: Cursor, timestamps: Iterable<number>): Cursor {
  let { ts, count } = cursor;
  for (const t of timestamps) {
    if (t === ts) count += 1;
    else {
      ts = t;
      count = 1;
    }
  }
  return { ts, count };
}

/** Bytes of one attachment, in the order of `V4Message.attachments`. */
export interface AttachmentContent {
  id: string;
  name: string;
  /**
   * The bytes, or the file that holds them (`size` bytes) when they were too many to keep in memory: a scratch file
   * of the stager (stage/stager.ts `putScratch`), read when the item is written.
   */
  content: Buffer | { path: string; size: number };
}

/**
 * One member of a conversation as the source reports them: `joinedAt` is the API's `joinDate` (the last join),
 * absent where membership is fixed from the start (IM, MIM, wall); `current` is false for a past member.
 */
export interface Membership {
  person: Person;
  joinedAt?: number;
  current: boolean;
}

/** A join or leave with its exact time, as the real-time feeds report them (USERJOINEDROOM / USERLEFTROOM). */
export interface MembershipChange {
  streamId: string;
  userId: string;
  ts: number;
  kind: 'join' | 'leave';
}

export type FeedKind = 'datafeed' | 'datahose';

/** Where a real-time consumer is in its feed (symphony-api.md §2.9, §2.10). */
export interface FeedPosition {
  kind: FeedKind;
  /** The datafeed's id; the datahose has none (its feed is implied by tag and filters). */
  feedId?: string;
  /** Acknowledges the last batch read; empty before the first read. */
  ackId: string;
}
