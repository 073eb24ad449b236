import type { V4Message } from '../../source/symphony/api-types.ts';

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
}

export interface EmulatorOptions {
  seed?: number;
  users?: number;
  streams?: number;
  /** Total messages across all streams. */
  messages?: number;
  botUsername?: string;
  /** SPKI PEM of the bot's key; login JWTs must verify against it (RS512). */
  botPublicKeyPem: string;
  faults?: FaultOptions;
  host?: string;
  port?: number;
}

export interface GroundTruth {
  /** lower-cased email → canonical message ids that mailbox should hold (every member of the stream with an email, sender included). */
  mailboxes: Record<string, string[]>;
  /** members without an email, per message: they can't be mapped. */
  unmapped: { userId: string; messageId: string }[];
  messages: number;
  streams: number;
  brokenAttachments: { streamId: string; messageId: string; attachmentId: string }[];
  /** Message ids whose PresentationML is not well-formed XML (`&nbsp;`, unclosed tags). */
  malformedMessages: string[];
  unknownStreamTypes: string[];
}

export interface PodUser {
  id: number;
  firstName: string;
  lastName: string;
  displayName: string;
  email?: string;
  username?: string;
  company: string;
  companyId: number;
  isExternal: boolean;
  accountType: 'NORMAL' | 'SYSTEM';
}

export interface PodMember {
  userId: number;
  isOwner: boolean;
  isCreator: boolean;
  joinDate: number;
}

export interface PodStream {
  id: string;
  /** What the stream really is; `reportedType` is what the API says (may be unknown with the fault option). */
  kind: 'IM' | 'MIM' | 'ROOM';
  reportedType: string;
  groupChat: boolean;
  roomName?: string;
  roomDescription?: string;
  isPublic: boolean;
  isExternal: boolean;
  origin: 'INTERNAL' | 'EXTERNAL';
  originCompany: string;
  originCompanyId: number;
  active: boolean;
  createdDate: number;
  lastModifiedDate: number;
  creatorId: number;
  members: PodMember[];
  /** Ascending by timestamp, stable; `timestamps[i] === messages[i].timestamp`. */
  messages: V4Message[];
  timestamps: number[];
  lastMessageDate?: number;
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

export interface Pod {
  bot: PodUser;
  /** Human users plus the bot. */
  users: PodUser[];
  usersById: Map<number, PodUser>;
  /** Keyed by lower-cased email. */
  usersByEmail: Map<string, PodUser>;
  usersByUsername: Map<string, PodUser>;
  /** Ascending by creation date. */
  streams: PodStream[];
  streamsById: Map<string, PodStream>;
  messagesById: Map<string, { stream: PodStream; message: V4Message }>;
  /** Keyed by `${messageId}\n${fileId}`. */
  attachments: Map<string, PodAttachment>;
  groundTruth: GroundTruth;
}
