import type { Cursor, FeedPosition, MembershipChange } from '../core/types.ts';

export type LedgerStatus = 'pending' | 'delivered' | 'failed' | 'unmapped';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';

export interface RunCounts {
  streams: number;
  messages: number;
  delivered: number;
  duplicates: number;
  failed: number;
  unmapped: number;
  quarantined: number;
  warnings: number;
  /** Copies filed with part of their content replaced by a stub (an attachment over the mailbox's size limit). */
  partial: number;
}

export function emptyCounts(): RunCounts {
  return {
    streams: 0,
    messages: 0,
    delivered: 0,
    duplicates: 0,
    failed: 0,
    unmapped: 0,
    quarantined: 0,
    warnings: 0,
    partial: 0,
  };
}

export interface RunRow extends RunCounts {
  id: number;
  connectorId: string;
  startedAt: string;
  finishedAt: string | null;
  status: RunStatus;
  error: string | null;
}

export interface LedgerRow {
  messageId: string;
  mailbox: string;
  streamId: string;
  messageTs: number;
  status: LedgerStatus;
  userId: string | null;
  stagedRef: string | null;
  receipt: string | null;
  reason: string | null;
  attempts: number;
}

export interface QuarantineRow {
  messageId: string;
  streamId: string;
  messageTs: number;
  reason: string;
  raw: string;
  attempts: number;
}

export interface RunEvent {
  level: 'info' | 'warning' | 'error';
  kind: string;
  itemId?: string;
  reason: string;
}

export interface StoredEvent extends RunEvent {
  id: number;
  runId: number;
  at: string;
}

export interface StoredCheckpoint {
  cursor: Cursor;
  /** The stream's `lastMessageDate` when it was last read to the end. */
  drainedThrough: number | null;
}

/** Everything one page of messages changed, committed atomically with the stream's new cursor. */
export interface PageCommit {
  connectorId: string;
  runId: number;
  /** Absent when the page only retried older items and must not move the cursor. */
  checkpoint?: { streamId: string; cursor: Cursor; drainedThrough?: number };
  ledger: LedgerRow[];
  quarantined: QuarantineRow[];
  /** Message ids whose quarantine is over (they went through this time). */
  released: string[];
  events: RunEvent[];
  counts: Partial<RunCounts>;
  /** Joins and leaves read from a feed. */
  membership?: MembershipChange[];
  /** The feed position to keep once everything else in this commit is durable. */
  feed?: FeedPosition;
  /** Set by a sweep that read every listed stream. */
  discovery?: Discovery | { fullAt?: undefined; lastAt: number };
  /** Items of conversation-days kept for their transcripts (an item already kept is left as it is). */
  transcriptEntries?: TranscriptEntryRow[];
  /** Transcripts built and filed. */
  transcripts?: TranscriptRow[];
  /** Conversation-days whose every item is now in a transcript. */
  transcribedDays?: TranscriptDay[];
}

export interface TranscriptDay {
  streamId: string;
  /** `YYYY-MM-DD` in the connector's time zone. */
  day: string;
}

export interface TranscriptEntryRow extends TranscriptDay {
  itemId: string;
  ts: number;
  /** The mailboxes entitled to the item (its participants' when it was sent). */
  mailboxes: string[];
  /** JSON of what the transcript renderer needs (core/transcripts.ts `StoredEntry`). */
  entry: string;
}

export interface TranscriptRow extends TranscriptDay {
  /** The ledger's item id (convert/transcript.ts `transcriptItemId`). */
  itemId: string;
  revision: number;
  messageId: string;
  /** Item ids it holds. */
  entries: string[];
  mailboxes: string[];
}

export interface Discovery {
  /** When the stream list was last read whole (this machine's clock, epoch ms). */
  fullAt: number;
  /** The latest activity the last complete sweep listed (the pod's clock, epoch ms). */
  lastAt: number;
}

/**
 * Durable state of the archiver: connectors, per-stream checkpoints, the (message, mailbox) ledger,
 * quarantine, runs and their events. One implementation today (SQLite); the seam keeps PostgreSQL possible.
 */
export interface StateStore {
  ensureConnector(connector: { id: string; name: string; sourceKind: string; destinationKind: string }): Promise<void>;
  /**
   * Opens a run. Runs left `running` by a process that no longer exists become `interrupted`;
   * a live one makes this throw `ERR_STORE_LOCKED` (one writer per connector, destinations.md §6.3).
   */
  startRun(connectorId: string): Promise<number>;
  finishRun(runId: number, status: Exclude<RunStatus, 'running'>, error?: string): Promise<RunRow>;
  checkpoint(connectorId: string, streamId: string): Promise<StoredCheckpoint | undefined>;
  /** Joins and leaves of one stream recorded from a feed, oldest first. */
  membershipChanges(connectorId: string, streamId: string): Promise<MembershipChange[]>;
  feedPosition(connectorId: string): Promise<FeedPosition | undefined>;
  discovery(connectorId: string): Promise<Discovery | undefined>;
  /** Conversation-days with items no transcript holds yet. */
  transcriptDays(connectorId: string): Promise<TranscriptDay[]>;
  /** The items of one conversation-day, oldest first. */
  transcriptEntries(connectorId: string, day: TranscriptDay): Promise<TranscriptEntryRow[]>;
  /** Which of these items of a stream are already kept for a transcript. */
  transcriptItems(connectorId: string, streamId: string, itemIds: readonly string[]): Promise<Set<string>>;
  /** The transcripts built for one conversation-day, by revision. */
  transcripts(connectorId: string, day: TranscriptDay): Promise<TranscriptRow[]>;
  /** Ledger rows of the given messages, keyed by message id then mailbox. */
  ledger(connectorId: string, messageIds: readonly string[]): Promise<Map<string, Map<string, LedgerRow>>>;
  /** Records the copies about to be written, before any is written (ignored where a row already exists). */
  plan(connectorId: string, runId: number, rows: readonly LedgerRow[]): Promise<void>;
  commit(page: PageCommit): Promise<void>;
  /** Copies whose delivery failed and may be tried again. */
  failedCopies(connectorId: string, maxAttempts: number): Promise<LedgerRow[]>;
  /** Copies planned by an earlier run that ended before recording their outcome. */
  pendingCopies(connectorId: string): Promise<LedgerRow[]>;
  quarantined(connectorId: string): Promise<QuarantineRow[]>;
  runs(connectorId: string, limit?: number): Promise<RunRow[]>;
  run(runId: number): Promise<RunRow | undefined>;
  events(runId: number): Promise<StoredEvent[]>;
  /** Ledger rows in a run (the downloadable import log). */
  runLedger(runId: number): Promise<LedgerRow[]>;
  close(): Promise<void>;
}
