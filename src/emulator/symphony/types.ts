import type { V4Message, V4User } from '../../source/symphony/api-types.ts';

export interface FaultOptions {
  /** Fraction of authenticated API requests answered 429 with `Retry-After` (symphony-api.md §7). */
  rate429?: number;
  /** `Retry-After` value in whole seconds; default 1. */
  retryAfterSeconds?: number;
  /** Fraction of authenticated API requests answered 500. */
  rate500?: number;
  /** Every N authenticated calls all session tokens are invalidated, so the next call gets 401 (§1.2). */
  sessionExpiryEvery?: number;
  /** A few attachments whose download always answers 500 (listed in the ground truth). */
  brokenAttachments?: boolean;
  /** One stream reports an unknown type ("CHATROOM"); its messages stay readable. */
  unknownStreamType?: boolean;
  /** Fraction of authenticated API requests answered only after `slowResponseMs`. */
  slowResponseRate?: number;
  /** Delay of those answers; default 2000. */
  slowResponseMs?: number;
  /**
   * Every N feed reads (datafeed and datahose together) the feed read expires: that read answers 400, the
   * feed is gone and the events queued on it are lost (§2.9 "the feed no longer exists").
   */
  feedExpiryEvery?: number;
  /** Fraction of feed reads after which one event of the batch is delivered again in a later batch (§7 duplicates). */
  duplicateEventRate?: number;
  /** Shuffles the events inside every feed batch: feeds have no ordering guarantee (§2.9). */
  reorderEvents?: boolean;
}

/**
 * What an archiver of a live pod is assumed to do: a history sweep at the live start, then the feed of this
 * kind read continuously, then a final history sweep. It decides which items the ground truth expects.
 */
export type LiveCapture = 'datahose' | 'datafeed';

export interface LiveOptions {
  /**
   * Where pod time starts, as a fraction (0..1) of the message period: everything later is released as the
   * clock advances.
   */
  startFraction: number;
  /** Default 'datahose'. */
  capture?: LiveCapture;
  /** Pod time advances this many times as fast as wall time; 0 or absent: only `advance`/`advanceTo` move it. */
  speed?: number;
}

export interface EmulatorOptions {
  seed?: number;
  users?: number;
  streams?: number;
  /** Total messages across all streams, suppressed ones included. */
  messages?: number;
  botUsername?: string;
  /** SPKI PEM of the bot's key; login JWTs must verify against it (RS512). */
  botPublicKeyPem: string;
  faults?: FaultOptions;
  /** A pod whose clock starts inside its timeline; without it everything is visible from the start. */
  live?: LiveOptions;
  /** An unacknowledged feed batch is delivered again after this long; default 30 000 (§2.9). */
  ackTimeoutMs?: number;
  /** A feed read with nothing to deliver waits this long, then answers an empty batch; default 30 000 (§2.9). */
  longPollMs?: number;
  /** A feed not read for this long is gone; default 1 800 000 (30 min, §2.9). */
  feedTtlMs?: number;
  host?: string;
  port?: number;
}

export type GroundTruthCapture = 'history' | LiveCapture;

export const EVENT_TYPES = [
  'MESSAGESENT',
  'SHAREDPOST',
  'INSTANTMESSAGECREATED',
  'ROOMCREATED',
  'ROOMUPDATED',
  'USERJOINEDROOM',
  'USERLEFTROOM',
  'MESSAGESUPPRESSED',
  'SYMPHONYELEMENTSACTION',
] as const;

/** The real-time event types the emulator generates (symphony-api.md §3). */
export type EventType = (typeof EVENT_TYPES)[number];

export interface GroundTruth {
  /**
   * Lower-cased current email → canonical ids of the items that mailbox must hold: messages (keyed by their
   * own id) and, for a live pod, room events (keyed by the event's `messageId`).
   */
  mailboxes: Record<string, string[]>;
  /** Recipients without an email, per item: they can't be mapped. */
  unmapped: { userId: string; messageId: string }[];
  /** Message items. */
  messages: number;
  streams: number;
  brokenAttachments: { streamId: string; messageId: string; attachmentId: string }[];
  /** Message ids whose PresentationML is not well-formed XML (`&nbsp;`, unclosed tags). */
  malformedMessages: string[];
  unknownStreamTypes: string[];
  /** Messages suppressed before the assumed capture could see them: in no mailbox. */
  suppressed: string[];
  /** Per type, the events a feed of the capture kind created at the live start receives (empty for 'history'). */
  events: Partial<Record<EventType, number>>;
  capture: GroundTruthCapture;
}

export interface PodUser {
  id: number;
  firstName: string;
  lastName: string;
  displayName: string;
  /** The current address: what the directory and membership lists show. */
  email?: string;
  /** An address the user had until `emailChangedAt`; messages sent before then carry it. */
  previousEmail?: string;
  emailChangedAt?: number;
  username?: string;
  company: string;
  companyId: number;
  isExternal: boolean;
  accountType: 'NORMAL' | 'SYSTEM';
}

/** One membership period: the user is a member at `t` when `join <= t` and (no `leave` or `t < leave`). */
export interface MembershipSpan {
  userId: number;
  join: number;
  leave?: number;
  isOwner: boolean;
  isCreator: boolean;
}

export type StreamKind = 'IM' | 'MIM' | 'ROOM' | 'POST';

export interface PodStream {
  id: string;
  /** What the stream really is; `reportedType` is what the API says (may be unknown with the fault option). */
  kind: StreamKind;
  reportedType: string;
  groupChat: boolean;
  /** Room names over time, ascending by `at`; the first is the name at creation. Empty for IM, MIM and POST. */
  names: { at: number; name: string }[];
  roomDescription?: string;
  isPublic: boolean;
  isExternal: boolean;
  origin: 'INTERNAL' | 'EXTERNAL';
  originCompany: string;
  originCompanyId: number;
  active: boolean;
  createdDate: number;
  creatorId: number;
  /** Ascending by `join`. */
  spans: MembershipSpan[];
  /** Times of joins, leaves, renames and deactivation, ascending: what `lastModifiedDate` follows. */
  modifications: number[];
  /** The bot is among the members added at creation, and never leaves. */
  botMember: boolean;
  /** Ascending by timestamp, stable; `timestamps[i] === messages[i].timestamp`. */
  messages: V4Message[];
  timestamps: number[];
}

export interface PodAttachment {
  streamId: string;
  messageId: string;
  id: string;
  name: string;
  size: number;
  contentSeed: number;
  broken: boolean;
}

/** A real-time event as generated; `render` in events.ts turns it into the wire `V4Event`. */
export interface PodEvent {
  id: string;
  /** The message's id for MESSAGESENT and SHAREDPOST; a fresh id otherwise. */
  messageId: string;
  timestamp: number;
  type: EventType;
  stream: PodStream;
  initiatorId: number;
  /** MESSAGESENT, SHAREDPOST (the wall post), MESSAGESUPPRESSED (the suppressed message), SYMPHONYELEMENTSACTION (the form). */
  message?: V4Message;
  /** USERJOINEDROOM, USERLEFTROOM. */
  affectedUserId?: number;
  /** SYMPHONYELEMENTSACTION. */
  form?: { formId: string; values: Record<string, unknown> };
  /** Stream and message ids inside the payload in standard base64 (symphony-api.md §2.1). */
  standardIds: boolean;
}

/** Wire shape of a `V4Event` (agent spec `components/schemas/V4Event`, symphony-api.md §3). */
export interface V4Event {
  id: string;
  messageId: string;
  timestamp: number;
  type: EventType;
  initiator: { user: V4User };
  payload: Record<string, unknown>;
}

export interface Timeline {
  /** First message time. */
  start: number;
  /** Everything the pod generates happens before this. */
  end: number;
  /** Pod time when the emulator starts; absent for a pod that is not live. */
  liveStart?: number;
}

export interface Pod {
  bot: PodUser;
  /** Human users plus the bot. */
  users: PodUser[];
  usersById: Map<number, PodUser>;
  /** Keyed by lower-cased current email. */
  usersByEmail: Map<string, PodUser>;
  usersByUsername: Map<string, PodUser>;
  /** Ascending by creation date. */
  streams: PodStream[];
  streamsById: Map<string, PodStream>;
  messagesById: Map<string, { stream: PodStream; message: V4Message }>;
  /** Message id → when it was suppressed. */
  suppressedAt: Map<string, number>;
  /** Message id → the edit that replaced it and when; `replacedBy` is only shown from then on. */
  replacedBy: Map<string, { id: string; at: number }>;
  /** Keyed by `${messageId}\n${fileId}`; previews (`images`) included. */
  attachments: Map<string, PodAttachment>;
  /** Ascending by timestamp, stable. */
  events: PodEvent[];
  timeline: Timeline;
  groundTruth: GroundTruth;
}
