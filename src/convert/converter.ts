import type { AttachmentContent, Conversation, Person } from '../core/types.ts';
import type { V4Message } from '../source/symphony/api-types.ts';

export interface ConvertOptions {
  /** Right-hand side of every Message-ID (`<sym.{token}@{messageIdDomain}>`). */
  messageIdDomain: string;
  /** Domain of the synthetic address given to a person without an email (`user-{id}@{domain}`). */
  syntheticDomain: string;
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
