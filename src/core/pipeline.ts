import { setTimeout as sleep } from 'node:timers/promises';
import type { ConvertOptions, Converter, ConvertedItem } from '../convert/converter.ts';
import type { DeliveryItem, MailboxWriter } from '../deliver/mailbox-writer.ts';
import { resolveMailbox, type MappingConfig } from '../mapping/index.ts';
import type { MalformedRecord, Source, SourcePage, SourceStats } from '../source/source.ts';
import { MALFORMED_PREFIX } from '../source/source.ts';
import type { V4Message, V4User } from '../source/symphony/api-types.ts';
import type { Stager } from '../stage/stager.ts';
import {
  emptyCounts,
  type LedgerRow,
  type PageCommit,
  type QuarantineRow,
  type RunCounts,
  type RunEvent,
  type RunRow,
  type StateStore,
} from '../store/state-store.ts';
import { AppError, isAppError, reasonOf } from './errors.ts';
import { canonicalId, idToken, messageIdFor, userIdOf } from './ids.ts';
import type { Logger } from './logger.ts';
import { mapLimit } from './pool.ts';
import {
  START_CURSOR,
  type AttachmentContent,
  type Conversation,
  type Cursor,
  type Person,
  type SourceMessage,
} from './types.ts';

export interface CycleDeps {
  connectorId: string;
  source: Source;
  converter: Converter;
  stager: Stager;
  writer: MailboxWriter;
  store: StateStore;
  logger: Logger;
  mapping: MappingConfig;
  convert: ConvertOptions;
  /** Delivery attempts per copy before it is left failed for an operator. */
  maxAttempts: number;
  /** Copies written at the same time. */
  concurrency: number;
  onProgress?: (progress: CycleProgress) => void;
}

export interface CycleProgress {
  streamsTotal: number;
  streamsDone: number;
  counts: RunCounts;
}

export interface CycleReport {
  run: RunRow;
  source: SourceStats;
  durationMs: number;
}

/** A copy to write: the ledger row it will settle and the item it carries. */
interface Copy {
  row: LedgerRow;
  item: DeliveryItem;
}

const PARTIAL_PREFIX = 'partially imported: ';
/** Pauses a throttled mailbox is given within one batch, and the longest pause taken in-cycle. */
const MAX_THROTTLE_ROUNDS = 3;
const MAX_THROTTLE_WAIT_MS = 60_000;
/** Copies of one mailbox handed to the writer at once: enough for a full MULTIAPPEND batch. */
const PER_MAILBOX_IN_FLIGHT = 64;
const TERMINAL = new Set(['delivered', 'unmapped']);

/**
 * A staged item may go once every copy is delivered whole. A failed copy still needs it, and a partially imported
 * one names it in its stub as where the full content is kept.
 */
function settledInFull(row: LedgerRow): boolean {
  return row.status === 'delivered' && !row.reason?.startsWith(PARTIAL_PREFIX);
}

function personFromV4User(user: V4User | undefined): Person | undefined {
  const userId = userIdOf(user?.userId);
  if (!userId || !user) return undefined;
  const p: Person = { userId };
  if (user.email) p.email = user.email;
  if (user.displayName) p.displayName = user.displayName;
  if (user.firstName) p.firstName = user.firstName;
  if (user.lastName) p.lastName = user.lastName;
  if (user.username) p.username = user.username;
  return p;
}

/**
 * One archive cycle of one connector: read every conversation past its checkpoint, convert each message,
 * stage it, file a copy into the mailbox of every participant, then record the outcome and move the
 * checkpoint in one transaction. Writers are idempotent by message key and the ledger is written before and
 * after each write, so a cycle killed at any point and run again files every item exactly once
 * (destinations.md §6, reliability.md §1.5).
 */
export class ArchiveCycle {
  readonly #d: CycleDeps;
  readonly #signal: AbortSignal | undefined;
  readonly #counts = emptyCounts();
  readonly #reportedUsers = new Set<string>();
  #runId = 0;
  #streamsTotal = 0;
  #streamsDone = 0;
  #streamErrors = 0;

  constructor(deps: CycleDeps, signal?: AbortSignal) {
    this.#d = deps;
    this.#signal = signal;
  }

  async run(): Promise<CycleReport> {
    const started = performance.now();
    const { store, connectorId, logger } = this.#d;
    this.#runId = await store.startRun(connectorId);
    const log = logger.child({ connectorId, runId: this.#runId });
    log.info('cycle started');
    let run: RunRow;
    try {
      await this.#d.source.check(this.#signal);
      await this.#d.writer.verify(this.#signal);
      await this.#redeliver();
      await this.#sweep(log);
      run = await store.finishRun(
        this.#runId,
        this.#streamErrors ? 'failed' : 'succeeded',
        this.#streamErrors
          ? `${this.#streamErrors} conversation(s) could not be read; see the run's events`
          : undefined,
      );
    } catch (err) {
      const aborted = isAppError(err, 'ERR_ABORTED') || this.#signal?.aborted;
      run = await store.finishRun(this.#runId, aborted ? 'interrupted' : 'failed', reasonOf(err));
      log.error({ reason: reasonOf(err) }, 'cycle ended early');
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { run });
    } finally {
      await this.#d.writer.close();
    }
    log.info({ ...this.#counts }, 'cycle finished');
    return { run, source: this.#d.source.stats(), durationMs: performance.now() - started };
  }

  #check(): void {
    if (this.#signal?.aborted) throw new AppError('ERR_ABORTED', 'cycle cancelled');
  }

  /** Commits what is not a page of messages: run counts, events, a stream's final checkpoint. */
  #record(part: Partial<Omit<PageCommit, 'connectorId' | 'runId'>>): Promise<void> {
    return this.#d.store.commit({
      connectorId: this.#d.connectorId,
      runId: this.#runId,
      ledger: [],
      quarantined: [],
      released: [],
      events: [],
      counts: {},
      ...part,
    });
  }

  #progress(): void {
    this.#d.onProgress?.({
      streamsTotal: this.#streamsTotal,
      streamsDone: this.#streamsDone,
      counts: { ...this.#counts },
    });
  }

  #add(delta: Partial<RunCounts>): Partial<RunCounts> {
    for (const [k, v] of Object.entries(delta) as [keyof RunCounts, number][]) this.#counts[k] += v;
    return delta;
  }

  /** Copies planned by a run that died before recording them, and failed copies still worth another try. */
  async #redeliver(): Promise<void> {
    const { store, connectorId, stager, maxAttempts } = this.#d;
    const rows = [...(await store.pendingCopies(connectorId)), ...(await store.failedCopies(connectorId, maxAttempts))];
    const byRef = new Map<string, LedgerRow[]>();
    for (const r of rows) byRef.set(r.stagedRef ?? '', [...(byRef.get(r.stagedRef ?? '') ?? []), r]);
    for (const [ref, group] of byRef) {
      this.#check();
      let raw: Buffer | undefined;
      try {
        if (ref) raw = await stager.get(ref);
      } catch (err) {
        this.#d.logger.warn({ ref, reason: reasonOf(err) }, 'staged item unreadable');
      }
      const copies: Copy[] = [];
      const settled: LedgerRow[] = [];
      for (const row of group) {
        if (!raw) {
          settled.push({
            ...row,
            status: 'failed',
            attempts: maxAttempts,
            reason: 'staged copy is missing or damaged',
          });
          continue;
        }
        copies.push({
          row,
          item: {
            key: idToken(row.messageId),
            messageId: messageIdFor(row.messageId, this.#d.convert.messageIdDomain),
            date: new Date(row.messageTs),
            raw,
          },
        });
      }
      const { rows: delivered, events, counts } = await this.#deliver(copies);
      await this.#record({ ledger: [...settled, ...delivered], events, counts: this.#add(counts) });
      if (ref && delivered.every(settledInFull)) await stager.remove(ref);
    }
  }

  async #sweep(log: Logger): Promise<void> {
    const { source, store, connectorId } = this.#d;
    const conversations: Conversation[] = [];
    for await (const c of source.conversations(this.#signal)) conversations.push(c);
    const quarantine = new Map<string, QuarantineRow[]>();
    for (const q of await store.quarantined(connectorId))
      quarantine.set(q.streamId, [...(quarantine.get(q.streamId) ?? []), q]);
    const known = new Set(conversations.map((c) => c.id));
    for (const streamId of quarantine.keys()) {
      if (!known.has(streamId)) conversations.push({ id: streamId, type: 'UNLISTED' });
    }
    this.#streamsTotal = conversations.length;
    await this.#record({ counts: this.#add({ streams: conversations.length }) });
    this.#progress();
    for (const conversation of conversations) {
      this.#check();
      try {
        await this.#archiveConversation(conversation, quarantine.get(conversation.id) ?? []);
      } catch (err) {
        if (isAppError(err, 'ERR_ABORTED') || isAppError(err, 'ERR_SOURCE_AUTH') || isAppError(err, 'ERR_STORE_IO'))
          throw err;
        if (isAppError(err) && err.code.startsWith('ERR_SINK') && !err.retryable) throw err;
        this.#streamErrors += 1;
        log.warn({ streamId: conversation.id, reason: reasonOf(err) }, 'conversation skipped this cycle');
        await this.#record({
          events: [{ level: 'error', kind: 'stream-unreadable', itemId: conversation.id, reason: reasonOf(err) }],
        });
      }
      this.#streamsDone += 1;
      this.#progress();
    }
  }

  async #archiveConversation(conversation: Conversation, quarantined: QuarantineRow[]): Promise<void> {
    const { source, store, connectorId } = this.#d;
    const saved = await store.checkpoint(connectorId, conversation.id);
    const nothingNew =
      saved?.drainedThrough != null &&
      conversation.lastMessageDate !== undefined &&
      saved.drainedThrough === conversation.lastMessageDate;
    if (nothingNew && !quarantined.length) return;

    const members = new Map((await source.members(conversation, this.#signal)).map((p) => [p.userId, p]));
    if (quarantined.length) {
      const retry: SourceMessage[] = [];
      const stillMalformed: MalformedRecord[] = [];
      for (const q of quarantined) {
        const raw = JSON.parse(q.raw) as V4Message;
        // A record that could not be keyed stays what it is; it is kept, and counted, until an operator acts.
        if (q.messageId.startsWith(MALFORMED_PREFIX)) {
          stillMalformed.push({ key: q.messageId, reason: q.reason, record: raw, timestamp: q.messageTs });
        } else retry.push({ id: q.messageId, streamId: q.streamId, timestamp: q.messageTs, raw });
      }
      await this.#archiveBatch(conversation, members, { messages: retry, malformed: stillMalformed }, undefined, true);
    }
    if (nothingNew) return;
    let cursor = saved?.cursor ?? START_CURSOR;
    for await (const page of source.messages(conversation.id, cursor, this.#signal)) {
      cursor = page.next;
      await this.#archiveBatch(conversation, members, page, cursor, false);
    }
    if (conversation.lastMessageDate !== undefined) {
      await this.#record({
        checkpoint: { streamId: conversation.id, cursor, drainedThrough: conversation.lastMessageDate },
      });
    }
  }

  /** Senders who are no longer members are looked up in the directory, then taken from the message itself. */
  async #senders(members: Map<string, Person>, messages: SourceMessage[]): Promise<Map<string, Person>> {
    const missing = [
      ...new Set(
        messages.map((m) => userIdOf(m.raw.user?.userId)).filter((id): id is string => !!id && !members.has(id)),
      ),
    ];
    if (!missing.length) return new Map();
    try {
      return await this.#d.source.users(missing, this.#signal);
    } catch (err) {
      if (isAppError(err, 'ERR_ABORTED') || isAppError(err, 'ERR_SOURCE_AUTH')) throw err;
      this.#d.logger.warn({ reason: reasonOf(err) }, 'directory lookup failed; using the names on the messages');
      return new Map();
    }
  }

  async #attachments(m: SourceMessage): Promise<AttachmentContent[]> {
    const out: AttachmentContent[] = [];
    for (const a of m.raw.attachments ?? []) {
      const content = await this.#d.source.attachment(m.streamId, m.id, a.id, this.#signal);
      if (typeof a.size === 'number' && content.length !== a.size) {
        throw new AppError(
          'ERR_SOURCE_ATTACHMENT',
          `attachment ${a.id} has ${content.length} bytes, the message says ${a.size}`,
          { retryable: true },
        );
      }
      out.push({ id: a.id, name: a.name, content });
    }
    return out;
  }

  /**
   * Converts, stages and delivers one batch, then commits its ledger rows, quarantine entries and (for a
   * page read past the checkpoint) the new cursor together.
   */
  async #archiveBatch(
    conversation: Conversation,
    members: Map<string, Person>,
    page: Pick<SourcePage, 'messages' | 'malformed'>,
    cursor: Cursor | undefined,
    retry: boolean,
  ): Promise<void> {
    const { store, connectorId, converter, stager, mapping } = this.#d;
    const { messages, malformed } = page;
    const ledger = await store.ledger(
      connectorId,
      messages.map((m) => m.id),
    );
    const senders = await this.#senders(members, messages);
    const events: RunEvent[] = [];
    const quarantined: QuarantineRow[] = [];
    const released: string[] = [];
    const settled: LedgerRow[] = [];
    const copies: Copy[] = [];
    const counts: Partial<RunCounts> = {
      messages: retry ? 0 : messages.length,
      duplicates: 0,
      unmapped: 0,
      warnings: 0,
    };
    const stagedRefs = new Map<string, string>();
    for (const bad of malformed) {
      const reason = `malformed message record: ${bad.reason}`;
      quarantined.push({
        messageId: bad.key,
        streamId: conversation.id,
        messageTs: bad.timestamp ?? cursor?.ts ?? 0,
        reason,
        raw: JSON.stringify(bad.record) ?? 'null',
        attempts: 1,
      });
      events.push({ level: 'error', kind: 'quarantined', itemId: bad.key, reason });
    }
    const toStage: {
      m: SourceMessage;
      converted: ConvertedItem;
      open: string[];
      mailboxes: Map<string, Person | undefined>;
      existing: Map<string, LedgerRow> | undefined;
    }[] = [];

    for (const m of messages) {
      this.#check();
      const existing = ledger.get(m.id);
      const userId = userIdOf(m.raw.user?.userId);
      const sender = (userId && (members.get(userId) ?? senders.get(userId))) || personFromV4User(m.raw.user);
      const participants = [...members.values()];
      if (sender && !members.has(sender.userId)) participants.push(sender);

      const mailboxes = new Map<string, Person | undefined>();
      const unmapped: { person: Person; reason: string }[] = [];
      for (const p of participants) {
        const r = resolveMailbox(p, mapping);
        if ('mailbox' in r) mailboxes.set(r.mailbox, p);
        else unmapped.push({ person: p, reason: r.unmapped });
      }
      if (unmapped.length && mapping.catchAll) mailboxes.set(mapping.catchAll, undefined);

      const open = [...mailboxes.keys()].filter((mb) => !TERMINAL.has(existing?.get(mb)?.status ?? ''));
      const newUnmapped = unmapped.filter((u) => !existing?.has(`unmapped:${u.person.userId}`));
      counts.duplicates! += mailboxes.size - open.length;
      if (!open.length && !newUnmapped.length) {
        if (retry) released.push(m.id);
        continue;
      }

      let converted: ConvertedItem;
      try {
        if (!sender) throw new AppError('ERR_CONVERT_FAILED', 'the message has no author user id');
        converted = await converter.convert({
          message: m.raw,
          conversation,
          sender,
          participants,
          attachments: await this.#attachments(m),
          options: this.#d.convert,
        });
      } catch (err) {
        if (isAppError(err, 'ERR_ABORTED') || isAppError(err, 'ERR_SOURCE_AUTH')) throw err;
        quarantined.push({
          messageId: m.id,
          streamId: m.streamId,
          messageTs: m.timestamp,
          reason: reasonOf(err),
          raw: JSON.stringify(m.raw),
          attempts: 1,
        });
        events.push({ level: 'error', kind: 'quarantined', itemId: m.id, reason: reasonOf(err) });
        continue;
      }
      if (retry) released.push(m.id);
      for (const w of converted.warnings)
        events.push({ level: 'warning', kind: 'conversion', itemId: m.id, reason: w });
      counts.warnings! += converted.warnings.length;

      for (const { person, reason } of newUnmapped) {
        counts.unmapped! += 1;
        settled.push(this.#row(m, `unmapped:${person.userId}`, 'unmapped', person.userId, null, reason));
        if (!this.#reportedUsers.has(person.userId)) {
          this.#reportedUsers.add(person.userId);
          events.push({ level: 'warning', kind: 'unmapped-user', itemId: person.userId, reason });
        }
      }
      if (open.length) toStage.push({ m, converted, open, mailboxes, existing });
    }

    const refs = await mapLimit(toStage, this.#d.concurrency, (s) => stager.put(s.converted.raw));
    if (toStage.length) await stager.flush();
    for (const [i, { m, converted, open, mailboxes, existing }] of toStage.entries()) {
      const ref = refs[i]!;
      stagedRefs.set(m.id, ref);
      const item: DeliveryItem = {
        key: idToken(m.id),
        messageId: converted.messageId,
        date: converted.date,
        raw: converted.raw,
      };
      for (const mb of open) {
        const prev = existing?.get(mb);
        const row = this.#row(m, mb, 'pending', mailboxes.get(mb)?.userId ?? null, ref, null);
        copies.push({ row: { ...row, attempts: prev?.attempts ?? 0 }, item });
      }
    }

    await store.plan(
      connectorId,
      this.#runId,
      copies.map((c) => c.row),
    );
    const delivered = await this.#deliver(copies);
    const commit: PageCommit = {
      connectorId,
      runId: this.#runId,
      ledger: [...settled, ...delivered.rows],
      quarantined,
      released,
      events: [...events, ...delivered.events],
      counts: this.#add({ ...counts, ...delivered.counts, quarantined: quarantined.length }),
    };
    if (cursor) commit.checkpoint = { streamId: conversation.id, cursor };
    await store.commit(commit);

    const keep = new Set(delivered.rows.filter((r) => !settledInFull(r)).map((r) => r.messageId));
    for (const [id, ref] of stagedRefs) if (!keep.has(id)) await stager.remove(ref);
    this.#progress();
  }

  #row(
    m: SourceMessage,
    mailbox: string,
    status: LedgerRow['status'],
    userId: string | null,
    stagedRef: string | null,
    reason: string | null,
  ): LedgerRow {
    return {
      messageId: m.id,
      mailbox,
      streamId: canonicalId(m.streamId),
      messageTs: m.timestamp,
      status,
      userId,
      stagedRef,
      receipt: null,
      reason,
      attempts: 0,
    };
  }

  /**
   * Writes the copies, a bounded number at a time (file and network writes are latency-bound), then flushes
   * the writer so every receipt returned is durable before it is recorded.
   */
  async #deliver(copies: Copy[]): Promise<{ rows: LedgerRow[]; events: RunEvent[]; counts: Partial<RunCounts> }> {
    const events: RunEvent[] = [];
    const counts = { delivered: 0, duplicates: 0, failed: 0, partial: 0 };
    /** A throttled copy comes back as the wait the destination asked for, while this batch may still wait. */
    const deliverOne = async ({ row, item }: Copy, mayWait: boolean): Promise<LedgerRow | { waitMs: number }> => {
      this.#check();
      try {
        const receipt = await this.#d.writer.append(row.mailbox, item, this.#signal);
        counts[receipt.duplicate ? 'duplicates' : 'delivered'] += 1;
        if (receipt.partial) {
          counts.partial += 1;
          events.push({
            level: 'warning',
            kind: 'partial-import',
            itemId: `${row.messageId} → ${row.mailbox}`,
            reason: receipt.partial,
          });
        }
        const reason = receipt.partial ? `${PARTIAL_PREFIX}${receipt.partial}` : null;
        return { ...row, status: 'delivered', receipt: receipt.ref, reason, attempts: row.attempts + 1 };
      } catch (err) {
        if (isAppError(err, 'ERR_ABORTED')) throw err;
        if (mayWait && isAppError(err, 'ERR_SINK_THROTTLED') && (err.retryAfterMs ?? 0) <= MAX_THROTTLE_WAIT_MS) {
          return { waitMs: err.retryAfterMs ?? 1000 };
        }
        const permanent = isAppError(err) && !err.retryable && err.code === 'ERR_SINK_REJECTED';
        counts.failed += 1;
        events.push({
          level: 'error',
          kind: 'delivery-failed',
          itemId: `${row.messageId} → ${row.mailbox}`,
          reason: reasonOf(err),
        });
        return {
          ...row,
          status: 'failed',
          reason: reasonOf(err),
          attempts: permanent ? this.#d.maxAttempts : row.attempts + 1,
        };
      }
    };
    // Copies go to the writer grouped by mailbox, `concurrency` mailboxes at a time and a folder's items together:
    // a writer keeps one session per mailbox and batches one folder's items (IMAP MULTIAPPEND, RFC 3502), where
    // message-major order would switch mailboxes on every copy.
    const groups = new Map<string, number[]>();
    copies.forEach((c, i) => groups.set(c.row.mailbox, [...(groups.get(c.row.mailbox) ?? []), i]));
    const rows = new Array<LedgerRow>(copies.length);
    await mapLimit([...groups.values()], this.#d.concurrency, async (indexes) => {
      // A mailbox that asks for a pause (Exchange "Suggested Backoff Time", IMAP [LIMIT], Graph Retry-After past the
      // writer's own patience) gets it here, a few times, rather than leaving its copies for the next cycle.
      let pending = indexes;
      for (let round = 1; pending.length > 0; round++) {
        const settled = await mapLimit(pending, PER_MAILBOX_IN_FLIGHT, (i) =>
          deliverOne(copies[i]!, round <= MAX_THROTTLE_ROUNDS),
        );
        let waitMs = 0;
        const again: number[] = [];
        pending.forEach((i, k) => {
          const outcome = settled[k]!;
          if ('waitMs' in outcome) {
            again.push(i);
            waitMs = Math.max(waitMs, outcome.waitMs);
          } else rows[i] = outcome;
        });
        if (again.length) {
          this.#d.logger.info({ mailbox: copies[again[0]!]!.row.mailbox, waitMs }, 'destination asked to slow down');
          await sleep(waitMs, undefined, this.#signal ? { signal: this.#signal } : {}).catch(() => this.#check());
        }
        pending = again;
      }
    });
    await this.#d.writer.flush();
    return { rows, events, counts };
  }
}

export function runCycle(deps: CycleDeps, signal?: AbortSignal): Promise<CycleReport> {
  return new ArchiveCycle(deps, signal).run();
}
