import type { AttachmentContent, Conversation, Person } from '../core/types.ts';
import type { V4Message } from '../source/symphony/api-types.ts';

export interface ConvertOptions {
  /** Right-hand side of every Message-ID (`<sym.{token}@{messageIdDomain}>`). */
  messageIdDomain: string;
  /** Domain of the synthetic address given to a person without an email (`user-{id}@{domain}`). */
  syntheticDomain: string;
  /**
   * Subject template (headers.ts `DEFAULT_SUBJECT_TEMPLATE`, `[Symphony] {conversation}{label}`). Placeholders:
   * `{conversation}` (room name, `Chat: <names>` or `Wall post: <sender>`), `{room}`, `{participants}`,
   * `{sender}`, `{type}`, `{streamId}` and `{label}` (` (edited)`, ` (removed)`, ` (form response)`,
   * ` (room event)`, ` (chat event)` or empty).
   */
  subjectTemplate?: string;
  /**
   * Whether room events ({@link ROOM_EVENT_TYPES}) become items; default true. Read by the caller through
   * events.ts `readV4Event`, which skips them with reason `disabled` when false; `convert` converts any
   * room event it is given.
   */
  roomEvents?: boolean;
}

/**
 * A MESSAGESUPPRESSED event (symphony-api.md §2.8, §3): the item is a notice ("removed by … at …") threaded
 * under the removed message; the removed message's own item stays as it was delivered (reliability.md §3 row 12).
 * `ConvertInput.message` then describes the event: its `messageId` (the event's `messageId`, or any id unique
 * to this suppression) keys the notice, `timestamp` is the event time, `user` the initiator.
 */
export interface SuppressionNotice {
  /** The removed message (the event payload's `messageId`). */
  messageId: string;
  /** Who removed it (the event's `initiator`), when known. */
  suppressedBy?: Person;
  /** When, in ms since the epoch; defaults to `message.timestamp`. */
  suppressedAt?: number;
  /** The V4Event as received; kept verbatim in the source attachment (reliability.md §3 row 3). */
  v4Event?: unknown;
}

/**
 * A SYMPHONYELEMENTSACTION event (symphony-api.md §3): the item is the submitted values, as a table,
 * threaded under the form's message. `ConvertInput.message` describes the event as for {@link SuppressionNotice}.
 */
export interface ElementsAction {
  formMessageId: string;
  formId: string;
  /** `formValues` as the event carries it; `action` names the button pressed. */
  formValues: Record<string, unknown>;
  /** The form's own message, when at hand: field labels come from it. */
  formMessage?: V4Message;
  /** The V4Event as received; kept verbatim in the source attachment (reliability.md §3 row 3). */
  v4Event?: unknown;
}

/**
 * V4Event types (symphony-api.md §3) that record a change to a conversation rather than a message: its
 * creation, renaming or other property change, (de)activation, and members joining, leaving or changing role.
 * INSTANTMESSAGECREATED is the IM / MIM counterpart of ROOMCREATED.
 */
export const ROOM_EVENT_TYPES = [
  'ROOMCREATED',
  'ROOMUPDATED',
  'ROOMDEACTIVATED',
  'ROOMREACTIVATED',
  'USERJOINEDROOM',
  'USERLEFTROOM',
  'ROOMMEMBERPROMOTEDTOOWNER',
  'ROOMMEMBERDEMOTEDFROMOWNER',
  'INSTANTMESSAGECREATED',
] as const;
export type RoomEventType = (typeof ROOM_EVENT_TYPES)[number];

/** `V4RoomProperties` (symphony-api.md §3) with the creator resolved; every field is optional on the wire. */
export interface RoomProperties {
  name?: string;
  description?: string;
  creator?: Person;
  createdDate?: number;
  external?: boolean;
  crossPod?: boolean;
  public?: boolean;
  copyProtected?: boolean;
  readOnly?: boolean;
  discoverable?: boolean;
  membersCanInvite?: boolean;
  canViewHistory?: boolean;
  keywords?: { key: string; value: string }[];
}

/**
 * A room event (one of {@link ROOM_EVENT_TYPES}): the item is a short system notice ("Alice added Bob to the
 * room"), threaded under nothing. `ConvertInput.message` describes the event as for {@link SuppressionNotice}:
 * `user` is the initiator, the one who acted (symphony-api.md §3: for USERJOINEDROOM / USERLEFTROOM "initiator =
 * who added or removed the user"). `participants` are whoever should get a copy; the affected user is not
 * added to them here.
 */
export interface RoomEvent {
  type: RoomEventType;
  /** The member joining, leaving, promoted or demoted (`affectedUser`). */
  affectedUser?: Person;
  /**
   * ROOMCREATED `roomProperties`, ROOMUPDATED `newRoomProperties`; for INSTANTMESSAGECREATED the stream's
   * `external` and `crossPod`.
   */
  properties?: RoomProperties;
  /**
   * The room's name before a ROOMUPDATED, when the caller knows it: the event carries only the new
   * properties, so without it a rename cannot be told from another change.
   */
  previousName?: string;
  /** INSTANTMESSAGECREATED `stream.members`, the only event that lists them (symphony-api.md §4.2). */
  members?: Person[];
  /** The V4Event as received; kept verbatim in the source attachment, so fields not shown are not lost. */
  v4Event?: unknown;
}

export interface ConvertInput {
  /** The V4Message exactly as the agent returned it. */
  message: V4Message;
  conversation: Conversation;
  /** The author, resolved through the directory when the message carries too little. */
  sender: Person;
  /** Everyone the message was addressed to (the conversation's members), sender included. */
  participants: readonly Person[];
  /** Downloaded attachments, in the order of `message.attachments`. */
  attachments: readonly AttachmentContent[];
  options: ConvertOptions;
  /** Set for a suppression notice instead of a message (see {@link SuppressionNotice}). */
  suppression?: SuppressionNotice;
  /** Set for an Elements form response instead of a message (see {@link ElementsAction}). */
  elementsAction?: ElementsAction;
  /** Set for a room event instead of a message (see {@link RoomEvent}). */
  roomEvent?: RoomEvent;
}

export interface ConvertedItem {
  /** RFC 5322 bytes, CRLF line ends. Same input → same bytes. */
  raw: Buffer;
  /** Message-ID without angle brackets. */
  messageId: string;
  /** The message time; becomes Date, the Maildir file time and the IMAP INTERNALDATE. */
  date: Date;
  /** Hex SHA-256 of `raw`. */
  sha256: string;
  /** Things that were wrong with the input but did not stop conversion (e.g. markup not well-formed). */
  warnings: string[];
}

/** An item whose bytes are written out on demand rather than held, for attachments in files. */
export interface StreamedItem {
  /** Message-ID without angle brackets. */
  messageId: string;
  date: Date;
  warnings: string[];
  /** Exact length of the bytes. */
  size: number;
  /** The bytes, when the item was built in memory (every attachment was in memory). */
  raw: Buffer | undefined;
  /** The RFC 5322 bytes in order, the same as `convert` gives; attachment files are read again on each call. */
  chunks(): AsyncIterable<Buffer>;
}

/** Turns one chat message into one email. Pure: no I/O but reading attachment files; attachments come in downloaded. */
export interface Converter {
  convert(input: ConvertInput): Promise<ConvertedItem>;
  /**
   * The same item without holding it whole: attachments given as files are base64-encoded from the file while
   * `chunks()` is read (convert/mime-stream.ts), so a message of any size needs memory for its text only.
   */
  convertStreamed(input: ConvertInput): Promise<StreamedItem>;
}
