import BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { AppError, toAppError } from '../../core/errors.ts';
import type { FeedPosition, MembershipChange } from '../../core/types.ts';
import type {
  Discovery,
  LedgerRow,
  PageCommit,
  QuarantineRow,
  RunCounts,
  RunRow,
  RunStatus,
  StateStore,
  StoredCheckpoint,
  StoredEvent,
  TranscriptDay,
  TranscriptEntryRow,
  TranscriptRow,
} from '../state-store.ts';
import { migrate } from './migrate.ts';

const COUNT_COLUMNS = [
  'streams',
  'messages',
  'delivered',
  'duplicates',
  'failed',
  'unmapped',
  'quarantined',
  'warnings',
  'partial',
] as const satisfies readonly (keyof RunCounts)[];

interface RawLedger {
  message_id: string;
  mailbox: string;
  stream_id: string;
  message_ts: number;
  status: LedgerRow['status'];
  user_id: string | null;
  staged_ref: string | null;
  receipt: string | null;
  reason: string | null;
  attempts: number;
}

interface RawRun extends RunCounts {
  id: number;
  connector_id: string;
  started_at: string;
  finished_at: string | null;
  status: RunStatus;
  error: string | null;
  pid: number;
}

const toLedger = (r: RawLedger): LedgerRow => ({
  messageId: r.message_id,
  mailbox: r.mailbox,
  streamId: r.stream_id,
  messageTs: r.message_ts,
  status: r.status,
  userId: r.user_id,
  stagedRef: r.staged_ref,
  receipt: r.receipt,
  reason: r.reason,
  attempts: r.attempts,
});

const toRun = (r: RawRun): RunRow => ({
  id: r.id,
  connectorId: r.connector_id,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  status: r.status,
  error: r.error,
  streams: r.streams,
  messages: r.messages,
  delivered: r.delivered,
  duplicates: r.duplicates,
  failed: r.failed,
  unmapped: r.unmapped,
  quarantined: r.quarantined,
  warnings: r.warnings,
  partial: r.partial,
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const now = () => new Date().toISOString();

/**
 * SQLite through better-sqlite3. Settings follow pg-boss's SQLite dialect (style.md §E): WAL, foreign
 * keys, a busy timeout, `BEGIN IMMEDIATE` for writes, ISO-8601 UTC text timestamps; `synchronous=FULL`
 * because NORMAL may roll back committed transactions after a power loss (reliability.md S48), and a
 * ledger row that forgets a delivery is what duplicates mailbox items.
 */
export class SqliteStateStore implements StateStore {
  readonly #db: Database;
  readonly #stmts: Record<string, Statement>;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    try {
      this.#db = new BetterSqlite3(path);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('foreign_keys = ON');
      this.#db.pragma('busy_timeout = 5000');
      migrate(this.#db);
    } catch (err) {
      throw toAppError(err, 'ERR_STORE_IO', `cannot open state database ${path}`);
    }
    const db = this.#db;
    this.#stmts = {
      upsertConnector: db.prepare(
        `INSERT INTO connectors (id, name, source_kind, destination_kind, created_at, updated_at)
         VALUES (@id, @name, @sourceKind, @destinationKind, @now, @now)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, source_kind = excluded.source_kind,
           destination_kind = excluded.destination_kind, updated_at = excluded.updated_at`,
      ),
      runningRuns: db.prepare(`SELECT id, pid FROM runs WHERE connector_id = ? AND status = 'running'`),
      interruptRun: db.prepare(
        `UPDATE runs SET status = 'interrupted', finished_at = ?, error = 'process ended before the run finished' WHERE id = ?`,
      ),
      insertRun: db.prepare(`INSERT INTO runs (connector_id, started_at, status, pid) VALUES (?, ?, 'running', ?)`),
      finishRun: db.prepare(`UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?`),
      getRun: db.prepare(`SELECT * FROM runs WHERE id = ?`),
      listRuns: db.prepare(`SELECT * FROM runs WHERE connector_id = ? ORDER BY id DESC LIMIT ?`),
      getCheckpoint: db.prepare(
        `SELECT ts, count, drained_through FROM checkpoints WHERE connector_id = ? AND stream_id = ?`,
      ),
      setCheckpoint: db.prepare(
        `INSERT INTO checkpoints (connector_id, stream_id, ts, count, drained_through, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (connector_id, stream_id) DO UPDATE SET ts = excluded.ts, count = excluded.count,
           drained_through = excluded.drained_through, updated_at = excluded.updated_at`,
      ),
      membershipOf: db.prepare(
        `SELECT stream_id AS streamId, user_id AS userId, ts, kind FROM membership_changes
         WHERE connector_id = ? AND stream_id = ? ORDER BY ts, user_id, kind`,
      ),
      putMembership: db.prepare(
        `INSERT INTO membership_changes (connector_id, stream_id, user_id, ts, kind) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      ),
      getDiscovery: db.prepare(`SELECT full_at AS fullAt, last_at AS lastAt FROM discovery WHERE connector_id = ?`),
      putDiscovery: db.prepare(
        `INSERT INTO discovery (connector_id, full_at, last_at) VALUES (@connectorId, COALESCE(@fullAt, 0), @lastAt)
         ON CONFLICT (connector_id) DO UPDATE SET last_at = excluded.last_at,
           full_at = COALESCE(@fullAt, discovery.full_at)`,
      ),
      getFeed: db.prepare(`SELECT kind, feed_id, ack_id FROM feeds WHERE connector_id = ?`),
      putFeed: db.prepare(
        `INSERT INTO feeds (connector_id, kind, feed_id, ack_id, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (connector_id) DO UPDATE SET kind = excluded.kind, feed_id = excluded.feed_id,
           ack_id = excluded.ack_id, updated_at = excluded.updated_at`,
      ),
      putEntry: db.prepare(
        `INSERT INTO transcript_entries (connector_id, stream_id, item_id, day, ts, mailboxes, entry)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      markDay: db.prepare(
        `INSERT INTO transcript_days (connector_id, stream_id, day) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      clearDay: db.prepare(`DELETE FROM transcript_days WHERE connector_id = ? AND stream_id = ? AND day = ?`),
      openDays: db.prepare(
        `SELECT stream_id AS streamId, day FROM transcript_days WHERE connector_id = ? ORDER BY day, stream_id`,
      ),
      entriesOf: db.prepare(
        `SELECT stream_id AS streamId, day, item_id AS itemId, ts, mailboxes, entry FROM transcript_entries
         WHERE connector_id = ? AND stream_id = ? AND day = ? ORDER BY ts, item_id`,
      ),
      hasEntry: db.prepare(`SELECT 1 FROM transcript_entries WHERE connector_id = ? AND stream_id = ? AND item_id = ?`),
      putTranscript: db.prepare(
        `INSERT INTO transcripts (connector_id, stream_id, day, item_id, revision, message_id, entries, mailboxes, built_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      transcriptsOf: db.prepare(
        `SELECT stream_id AS streamId, day, item_id AS itemId, revision, message_id AS messageId, entries, mailboxes
         FROM transcripts WHERE connector_id = ? AND stream_id = ? AND day = ? ORDER BY revision, item_id`,
      ),
      ledgerOf: db.prepare(`SELECT * FROM ledger WHERE connector_id = ? AND message_id = ?`),
      planRow: db.prepare(
        `INSERT INTO ledger (connector_id, message_id, mailbox, stream_id, message_ts, status, user_id, staged_ref, receipt, reason, attempts, run_id, updated_at)
         VALUES (@connectorId, @messageId, @mailbox, @streamId, @messageTs, @status, @userId, @stagedRef, @receipt, @reason, @attempts, @runId, @now)
         ON CONFLICT DO NOTHING`,
      ),
      putRow: db.prepare(
        `INSERT INTO ledger (connector_id, message_id, mailbox, stream_id, message_ts, status, user_id, staged_ref, receipt, reason, attempts, run_id, updated_at)
         VALUES (@connectorId, @messageId, @mailbox, @streamId, @messageTs, @status, @userId, @stagedRef, @receipt, @reason, @attempts, @runId, @now)
         ON CONFLICT (connector_id, message_id, mailbox) DO UPDATE SET status = excluded.status, user_id = excluded.user_id,
           staged_ref = excluded.staged_ref, receipt = excluded.receipt, reason = excluded.reason,
           attempts = excluded.attempts, run_id = excluded.run_id, updated_at = excluded.updated_at`,
      ),
      failedRows: db.prepare(
        `SELECT * FROM ledger WHERE connector_id = ? AND status = 'failed' AND attempts < ? ORDER BY message_ts, message_id, mailbox`,
      ),
      pendingRows: db.prepare(
        `SELECT * FROM ledger WHERE connector_id = ? AND status = 'pending' ORDER BY message_ts, message_id, mailbox`,
      ),
      quarantine: db.prepare(
        `INSERT INTO quarantine (connector_id, message_id, stream_id, message_ts, reason, raw, attempts, first_run_id, last_run_id, created_at, updated_at)
         VALUES (@connectorId, @messageId, @streamId, @messageTs, @reason, @raw, 1, @runId, @runId, @now, @now)
         ON CONFLICT (connector_id, message_id) DO UPDATE SET reason = excluded.reason, raw = excluded.raw,
           attempts = quarantine.attempts + 1, last_run_id = excluded.last_run_id, updated_at = excluded.updated_at, resolved_at = NULL`,
      ),
      release: db.prepare(
        `UPDATE quarantine SET resolved_at = ?, last_run_id = ? WHERE connector_id = ? AND message_id = ? AND resolved_at IS NULL`,
      ),
      openQuarantine: db.prepare(
        `SELECT message_id, stream_id, message_ts, reason, raw, attempts FROM quarantine
         WHERE connector_id = ? AND resolved_at IS NULL ORDER BY stream_id, message_ts, message_id`,
      ),
      insertEvent: db.prepare(
        `INSERT INTO run_events (run_id, at, level, kind, item_id, reason) VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      listEvents: db.prepare(`SELECT * FROM run_events WHERE run_id = ? ORDER BY id`),
      runLedger: db.prepare(`SELECT * FROM ledger WHERE run_id = ? ORDER BY message_ts, message_id, mailbox`),
      addCounts: db.prepare(
        `UPDATE runs SET ${COUNT_COLUMNS.map((c) => `${c} = ${c} + @${c}`).join(', ')} WHERE id = @runId`,
      ),
    };
  }

  #write<T>(fn: () => T): T {
    try {
      return this.#db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw toAppError(err, 'ERR_STORE_IO', undefined, {
        retryable: (err as { code?: string }).code === 'SQLITE_BUSY',
      });
    }
  }

  async ensureConnector(c: { id: string; name: string; sourceKind: string; destinationKind: string }): Promise<void> {
    this.#write(() => this.#stmts.upsertConnector!.run({ ...c, now: now() }));
  }

  async startRun(connectorId: string): Promise<number> {
    return this.#write(() => {
      for (const r of this.#stmts.runningRuns!.all(connectorId) as { id: number; pid: number }[]) {
        if (isAlive(r.pid)) {
          throw new AppError('ERR_STORE_LOCKED', `connector "${connectorId}" is being archived by process ${r.pid}`, {
            retryable: true,
          });
        }
        this.#stmts.interruptRun!.run(now(), r.id);
      }
      return Number(this.#stmts.insertRun!.run(connectorId, now(), process.pid).lastInsertRowid);
    });
  }

  async finishRun(runId: number, status: Exclude<RunStatus, 'running'>, error?: string): Promise<RunRow> {
    return this.#write(() => {
      const { changes } = this.#stmts.finishRun!.run(status, now(), error ?? null, runId);
      if (!changes) throw new AppError('ERR_STORE_IO', `run ${runId} does not exist`);
      return toRun(this.#stmts.getRun!.get(runId) as RawRun);
    });
  }

  async checkpoint(connectorId: string, streamId: string): Promise<StoredCheckpoint | undefined> {
    const r = this.#stmts.getCheckpoint!.get(connectorId, streamId) as
      { ts: number; count: number; drained_through: number | null } | undefined;
    return r && { cursor: { ts: r.ts, count: r.count }, drainedThrough: r.drained_through };
  }

  async membershipChanges(connectorId: string, streamId: string): Promise<MembershipChange[]> {
    return this.#stmts.membershipOf!.all(connectorId, streamId) as MembershipChange[];
  }

  async discovery(connectorId: string): Promise<Discovery | undefined> {
    return this.#stmts.getDiscovery!.get(connectorId) as Discovery | undefined;
  }

  async feedPosition(connectorId: string): Promise<FeedPosition | undefined> {
    const r = this.#stmts.getFeed!.get(connectorId) as
      { kind: FeedPosition['kind']; feed_id: string | null; ack_id: string } | undefined;
    if (!r) return undefined;
    return r.feed_id === null
      ? { kind: r.kind, ackId: r.ack_id }
      : { kind: r.kind, feedId: r.feed_id, ackId: r.ack_id };
  }

  async ledger(connectorId: string, messageIds: readonly string[]): Promise<Map<string, Map<string, LedgerRow>>> {
    const out = new Map<string, Map<string, LedgerRow>>();
    for (const id of messageIds) {
      const rows = this.#stmts.ledgerOf!.all(connectorId, id) as RawLedger[];
      if (rows.length) out.set(id, new Map(rows.map((r) => [r.mailbox, toLedger(r)])));
    }
    return out;
  }

  async transcriptDays(connectorId: string): Promise<TranscriptDay[]> {
    return this.#stmts.openDays!.all(connectorId) as TranscriptDay[];
  }

  async transcriptEntries(connectorId: string, day: TranscriptDay): Promise<TranscriptEntryRow[]> {
    const rows = this.#stmts.entriesOf!.all(connectorId, day.streamId, day.day) as (Omit<
      TranscriptEntryRow,
      'mailboxes'
    > & { mailboxes: string })[];
    return rows.map((r) => ({ ...r, mailboxes: JSON.parse(r.mailboxes) as string[] }));
  }

  async transcriptItems(connectorId: string, streamId: string, itemIds: readonly string[]): Promise<Set<string>> {
    return new Set(itemIds.filter((id) => this.#stmts.hasEntry!.get(connectorId, streamId, id) !== undefined));
  }

  async transcripts(connectorId: string, day: TranscriptDay): Promise<TranscriptRow[]> {
    const rows = this.#stmts.transcriptsOf!.all(connectorId, day.streamId, day.day) as (Omit<
      TranscriptRow,
      'entries' | 'mailboxes'
    > & { entries: string; mailboxes: string })[];
    return rows.map((r) => ({
      ...r,
      entries: JSON.parse(r.entries) as string[],
      mailboxes: JSON.parse(r.mailboxes) as string[],
    }));
  }

  async plan(connectorId: string, runId: number, rows: readonly LedgerRow[]): Promise<void> {
    if (!rows.length) return;
    const t = now();
    this.#write(() => {
      for (const r of rows) this.#stmts.planRow!.run({ ...r, connectorId, runId, now: t });
    });
  }

  async commit(page: PageCommit): Promise<void> {
    const t = now();
    const { connectorId, runId } = page;
    this.#write(() => {
      for (const r of page.ledger) this.#stmts.putRow!.run({ ...r, connectorId, runId, now: t });
      for (const q of page.quarantined) this.#stmts.quarantine!.run({ ...q, connectorId, runId, now: t });
      for (const id of page.released) this.#stmts.release!.run(t, runId, connectorId, id);
      for (const e of page.events) this.#stmts.insertEvent!.run(runId, t, e.level, e.kind, e.itemId ?? null, e.reason);
      const counts = Object.fromEntries(COUNT_COLUMNS.map((c) => [c, page.counts[c] ?? 0]));
      this.#stmts.addCounts!.run({ ...counts, runId });
      for (const c of page.membership ?? []) {
        this.#stmts.putMembership!.run(connectorId, c.streamId, c.userId, c.ts, c.kind);
      }
      if (page.discovery) {
        const { fullAt, lastAt } = page.discovery;
        this.#stmts.putDiscovery!.run({ connectorId, fullAt: fullAt ?? null, lastAt });
      }
      if (page.feed) {
        const { kind, feedId, ackId } = page.feed;
        this.#stmts.putFeed!.run(connectorId, kind, feedId ?? null, ackId, t);
      }
      for (const e of page.transcriptEntries ?? []) {
        const added = this.#stmts.putEntry!.run(
          connectorId,
          e.streamId,
          e.itemId,
          e.day,
          e.ts,
          JSON.stringify(e.mailboxes),
          e.entry,
        );
        if (added.changes) this.#stmts.markDay!.run(connectorId, e.streamId, e.day);
      }
      for (const x of page.transcripts ?? []) {
        this.#stmts.putTranscript!.run(
          connectorId,
          x.streamId,
          x.day,
          x.itemId,
          x.revision,
          x.messageId,
          JSON.stringify(x.entries),
          JSON.stringify(x.mailboxes),
          t,
        );
      }
      for (const d of page.transcribedDays ?? []) this.#stmts.clearDay!.run(connectorId, d.streamId, d.day);
      if (page.checkpoint) {
        const { streamId, cursor, drainedThrough } = page.checkpoint;
        this.#stmts.setCheckpoint!.run(connectorId, streamId, cursor.ts, cursor.count, drainedThrough ?? null, t);
      }
    });
  }

  async failedCopies(connectorId: string, maxAttempts: number): Promise<LedgerRow[]> {
    return (this.#stmts.failedRows!.all(connectorId, maxAttempts) as RawLedger[]).map(toLedger);
  }

  async pendingCopies(connectorId: string): Promise<LedgerRow[]> {
    return (this.#stmts.pendingRows!.all(connectorId) as RawLedger[]).map(toLedger);
  }

  async quarantined(connectorId: string): Promise<QuarantineRow[]> {
    return (
      this.#stmts.openQuarantine!.all(connectorId) as {
        message_id: string;
        stream_id: string;
        message_ts: number;
        reason: string;
        raw: string;
        attempts: number;
      }[]
    ).map((r) => ({
      messageId: r.message_id,
      streamId: r.stream_id,
      messageTs: r.message_ts,
      reason: r.reason,
      raw: r.raw,
      attempts: r.attempts,
    }));
  }

  async runs(connectorId: string, limit = 50): Promise<RunRow[]> {
    return (this.#stmts.listRuns!.all(connectorId, limit) as RawRun[]).map(toRun);
  }

  async run(runId: number): Promise<RunRow | undefined> {
    const r = this.#stmts.getRun!.get(runId) as RawRun | undefined;
    return r && toRun(r);
  }

  async events(runId: number): Promise<StoredEvent[]> {
    return (
      this.#stmts.listEvents!.all(runId) as {
        id: number;
        run_id: number;
        at: string;
        level: StoredEvent['level'];
        kind: string;
        item_id: string | null;
        reason: string;
      }[]
    ).map((e) => ({
      id: e.id,
      runId: e.run_id,
      at: e.at,
      level: e.level,
      kind: e.kind,
      ...(e.item_id === null ? {} : { itemId: e.item_id }),
      reason: e.reason,
    }));
  }

  async runLedger(runId: number): Promise<LedgerRow[]> {
    return (this.#stmts.runLedger!.all(runId) as RawLedger[]).map(toLedger);
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}

export function openSqliteStore(path: string): StateStore {
  return new SqliteStateStore(path);
}
