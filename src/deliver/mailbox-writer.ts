import type { StagedFile } from '../stage/stager.ts';

/** One converted item on its way into a mailbox. */
export interface DeliveryItem {
  /** `[a-z0-9]` token unique per source message; the writer's idempotency key within a folder. */
  key: string;
  /** Message-ID without angle brackets. */
  messageId: string;
  /** Message time: file time in Maildir, INTERNALDATE over IMAP. */
  date: Date;
  /**
   * The RFC 5322 bytes: in memory, or (large items) the staged file, which writers stream from and read into memory
   * only as far as their destination's size limit allows (deliver/content.ts).
   */
  content: Buffer | StagedFile;
}

export interface DeliveryReceipt {
  /** Where the item is, in the writer's terms (Maildir file name, IMAP `uidvalidity:uid`, Graph id). */
  ref: string;
  /** True when the item was already in the folder and nothing was written. */
  duplicate: boolean;
  /**
   * Set when the destination could take the item only with part of it replaced (an attachment over the
   * mailbox's size limit, replaced by a stub naming the staged copy): what was replaced and why.
   */
  partial?: string;
}

/** A mail store that files items into `INBOX → Symphony` of a mailbox. */
export interface MailboxWriter {
  readonly kind: 'maildir' | 'imap' | 'graph';
  /** Checks the destination is reachable and writable. */
  verify(signal?: AbortSignal): Promise<void>;
  /**
   * Files one item into the mailbox's archive folder, creating the folder when missing. Idempotent by
   * `item.key`: an item already in the folder is not written again and comes back with `duplicate: true`.
   */
  append(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<DeliveryReceipt>;
  /**
   * Counts the items of the mailbox's archive folder by key, for reconciliation against the source
   * (reliability.md §1.2: count-backs, not "probably fine"). A key seen twice is a duplicate.
   */
  inventory?(mailbox: string, signal?: AbortSignal): Promise<Map<string, number>>;
  /** Makes every append so far durable; the ledger records deliveries only after this returns. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
