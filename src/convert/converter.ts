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
   * `{sender}`, `{type}`, `{streamId}` and `{label}` (` (edited)`, ` (removed)`, ` (form response)` or empty).
   */
  subjectTemplate?: string;
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

/** Turns one chat message into one email. Pure: no I/O, attachments come in already downloaded. */
export interface Converter {
  convert(input: ConvertInput): Promise<ConvertedItem>;
}
