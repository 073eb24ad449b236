import { createReadStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConvertOptions, Converter, StreamedItem } from '../convert/converter.ts';
import type { DeliveryItem, MailboxWriter } from '../deliver/mailbox-writer.ts';
import { resolveMailbox, type MappingConfig } from '../mapping/index.ts';
import type { MalformedRecord, Source, SourceStats } from '../source/source.ts';
import { MALFORMED_PREFIX } from '../source/source.ts';
import type { V4Message } from '../source/symphony/api-types.ts';
import type { ScratchFile, Stager } from '../stage/stager.ts';
import {
  emptyCounts,
  type LedgerRow,
  type PageCommit,
  type QuarantineRow,
  type RunCounts,
  type RunEvent,
  type RunRow,
  type StateStore,
  type TranscriptDay,
  type TranscriptEntryRow,
} from '../store/state-store.ts';
import { convertTranscript, dayBounds, dayOf, type TranscriptEntry } from '../convert/transcript.ts';
import { planTranscripts, type StoredEntry, type TranscriptPlan } from './transcripts.ts';
import { AppError, isAppError, reasonOf } from './errors.ts';
import { canonicalId, idToken, messageIdFor, userIdOf } from './ids.ts';
import type { Logger } from './logger.ts';
import { personOf } from '../convert/events.ts';
import { classifyEvents, isV4Event, type ArchiveItem } from './feed-events.ts';
import { MembershipTimeline } from './membership.ts';
import { mapLimit } from './pool.ts';
import {
  START_CURSOR,
  type AttachmentContent,
  type Conversation,
  type Cursor,
  type FeedKind,
  type MembershipChange,
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
  /** Conversations read at the same time in a sweep; default 1. */
  streamConcurrency?: number;
  /** Set for transcript mode (`convert.format: daily-transcript`); absent, every item is an email of its own. */
  transcript?: TranscriptSettings;
  onProgress?: (progress: CycleProgress) => void;
}

export interface TranscriptSettings {
  /** IANA zone whose days the transcripts follow. */
  timeZone: string;
  /** How long after a day ends its transcript waits for stragglers. */
  settleMs: number;
}

export interface CycleProgress {
  streamsTotal: number;
  streamsDone: number;
  counts: RunCounts;
}

export interface FollowOptions {
  kind: FeedKind;
  /**
   * Ends once the feed has caught up: a read that brings nothing, or fewer events than the fullest read of this
   * run (a busy pod never goes quiet; a backlog comes in full batches). Otherwise runs until aborted.
   */
  untilIdle?: boolean;
  /** Ends after a read that had to start a new feed, so the caller can sweep history for what was missed. */
  stopOnGap?: boolean;
  /** Ends after the first read at or after this time (epoch ms): the next scheduled sweep. */
  until?: number;
}

export interface FollowReport extends CycleReport {
  batches: number;
  events: number;
  /** A feed expired and was started again during the run: a history sweep is due. */
  restarted: boolean;
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
/**
 * Attachments up to this size are downloaded into memory, as long as the batches in progress hold no more than the
 * second figure; larger ones, and those past the budget, go to scratch files.
 */
const ATTACHMENT_IN_MEMORY_MAX = 1024 * 1024;
const ATTACHMENT_MEMORY = 32 * 1024 * 1024;
const TERMINAL = new Set(['delivered', 'unmapped']);
const FULL_LISTING_EVERY_MS = 7 * 86_400_000;
/** Margin under the last listed activity: messages the pod stamps a little before they become readable. */
const LISTING_OVERLAP_MS = 3_600_000;

/** Errors that stop the whole run rather than one conversation: cancellation, lost access, state or sink gone. */
function endsTheRun(err: unknown): boolean {
  if (isAppError(err, 'ERR_ABORTED') || isAppError(err, 'ERR_SOURCE_AUTH') || isAppError(err, 'ERR_STORE_IO'))
    return true;
  return isAppError(err) && err.code.startsWith('ERR_SINK') && !err.retryable;
}

/**
 * A staged item may go once every copy is delivered whole. A failed copy still needs it, and a partially imported
 * one names it in its stub as where the full content is kept.
 */
function settledInFull(row: LedgerRow): boolean {
  return row.status === 'delivered' && !row.reason?.startsWith(PARTIAL_PREFIX);
}

async function collect(bytes: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of bytes) chunks.push(chunk);
  return Buffer.concat(chunks);
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
  /** Attachments of a message that could not be had, said in the run log once its item is made. */
  readonly #notes = new Map<SourceMessage, string[]>();
  readonly #reportedUsers = new Set<string>();
  #runId = 0;
  /**
   * What `#attachments` holds for each message until its batch is staged: bytes in memory (counted against
   * ATTACHMENT_MEMORY over every batch in progress) and scratch files. Keyed by the message object, which
   * belongs to one batch, since batches of several conversations run at once.
   */
  readonly #held = new Map<SourceMessage, { bytes: number; files: ScratchFile[] }>();
  #heldBytes = 0;
  #streamsTotal = 0;
  #streamsDone = 0;
  #streamErrors = 0;

  constructor(deps: CycleDeps, signal?: AbortSignal) {
    this.#d = deps;
    this.#signal = signal;
  }

  async run(): Promise<CycleReport> {
    return this.#inRun('cycle', async (log) => {
      await this.#redeliver();
      await this.#sweep(log);
    });
  }

  /**
   * Follows a Datafeed v5 or the Datahose: each batch is archived, then its `ackId` is committed, so a crash
   * replays at most one batch and the ledger absorbs the repeat (symphony-api.md §8). The history sweep stays
   * the backstop for what a restarted feed missed.
   */
  async follow(options: FollowOptions): Promise<FollowReport> {
    const state = { batches: 0, events: 0, restarted: false };
    const report = await this.#inRun('feed', async () => {
      await this.#redeliver();
      await this.#follow(options, state);
    });
    return { ...report, ...state };
  }

  async #inRun(what: 'cycle' | 'feed', work: (log: Logger) => Promise<void>): Promise<CycleReport> {
    const started = performance.now();
    const { store, connectorId, logger } = this.#d;
    this.#runId = await store.startRun(connectorId);
    const log = logger.child({ connectorId, runId: this.#runId });
    log.info(`${what} started`);
    let run: RunRow;
    try {
      await this.#d.source.check(this.#signal);
      await this.#d.writer.verify(this.#signal);
      await work(log);
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
      log.error({ reason: reasonOf(err) }, `${what} ended early`);
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { run });
    } finally {
      await this.#d.writer.close();
    }
    log.info({ ...this.#counts }, `${what} finished`);
    return { run, source: this.#d.source.stats(), durationMs: performance.now() - started };
  }

  async #follow(options: FollowOptions, state: { batches: number; events: number; restarted: boolean }) {
    const { source, store, connectorId } = this.#d;
    let position = await store.feedPosition(connectorId);
    let fullest = 0;
    const streams = new Map<string, { conversation: Conversation; timeline: MembershipTimeline }>();
    for (;;) {
      this.#check();
      const batch = await source.readFeed(options.kind, position, this.#signal);
      state.batches += 1;
      state.events += batch.events.length;
      const events: RunEvent[] = [];
      if (batch.restarted) {
        state.restarted = true;
        const reason = `the ${options.kind} had expired and a new one was started; the next history sweep reads what was sent in between`;
        events.push({ level: 'warning', kind: 'feed-restarted', reason });
      }
      const membership = await this.#archiveEvents(batch.events, streams, events);
      await this.#record({ feed: batch.position, membership, events });
      position = batch.position;
      this.#progress();
      if (options.stopOnGap && batch.restarted) return;
      if (options.untilIdle && (batch.events.length === 0 || batch.events.length < fullest)) return;
      fullest = Math.max(fullest, batch.events.length);
      if (options.until !== undefined && Date.now() >= options.until) return;
    }
  }

  /** Archives one feed batch stream by stream; returns the joins and leaves it carried. */
  async #archiveEvents(
    records: readonly unknown[],
    streams: Map<string, { conversation: Conversation; timeline: MembershipTimeline }>,
    events: RunEvent[],
  ): Promise<MembershipChange[]> {
    const batch = classifyEvents(records, { roomEvents: this.#d.convert.roomEvents !== false });
    const quarantined: QuarantineRow[] = [];
    for (const bad of batch.rejected) {
      if (bad.recoverable) {
        events.push({
          level: 'warning',
          kind: 'feed-event-unreadable',
          itemId: bad.key,
          reason: `${bad.reason}; the history sweep reads it again`,
        });
      } else if (bad.streamId) {
        const row = {
          messageId: `${MALFORMED_PREFIX}event.${bad.key}`,
          streamId: bad.streamId,
          messageTs: 0,
          reason: bad.reason,
          raw: JSON.stringify(bad.record) ?? 'null',
          attempts: 1,
        };
        quarantined.push(row);
        events.push({ level: 'error', kind: 'quarantined', itemId: row.messageId, reason: bad.reason });
      } else {
        const raw = (JSON.stringify(bad.record) ?? 'null').slice(0, 500);
        events.push({ level: 'error', kind: 'feed-event-unusable', itemId: bad.key, reason: `${bad.reason}: ${raw}` });
      }
    }
    await this.#record({
      quarantined,
      events: events.splice(0),
      counts: this.#add({ duplicates: batch.repeats, quarantined: quarantined.length }),
    });
    const membership: MembershipChange[] = [];
    // Streams of a batch are independent (each has its own timeline and items), so they go side by side.
    await mapLimit([...batch.streams], this.#d.streamConcurrency ?? 1, async ([streamId, group]) => {
      this.#check();
      membership.push(...group.changes.map((c) => c.change));
      try {
        let known = streams.get(streamId);
        if (!known) {
          known = { conversation: group.conversation, timeline: await this.#timeline(group.conversation, true) };
          streams.set(streamId, known);
        }
        for (const { change, person } of group.changes) known.timeline.apply(change, person);
        // ROOMUPDATED carries only the new properties (§3); the name before it is what this consumer last knew.
        for (const { event } of group.items) {
          const name = event?.roomEvent?.properties?.name;
          if (!event?.roomEvent || !name) continue;
          const before = known.conversation.name;
          if (event.roomEvent.type === 'ROOMUPDATED' && before && before !== name)
            event.roomEvent.previousName = before;
          known.conversation = { ...known.conversation, name };
        }
        if (group.items.length) {
          await this.#archiveBatch(
            known.conversation,
            known.timeline,
            { messages: group.items, malformed: [] },
            undefined,
            false,
          );
        }
      } catch (err) {
        if (endsTheRun(err)) throw err;
        // Kept for the stream's next sweep, which retries quarantined items, rather than holding up the feed.
        const reason = reasonOf(err);
        const held = group.items.map((m) => ({
          messageId: m.id,
          streamId,
          messageTs: m.timestamp,
          reason,
          raw: JSON.stringify(m.record ?? m.raw),
          attempts: 1,
        }));
        await this.#record({
          quarantined: held,
          events: [{ level: 'error', kind: 'stream-unreadable', itemId: streamId, reason }],
          counts: this.#add({ quarantined: held.length }),
        });
      }
    });
    return membership;
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
      // A large item comes back as its staged file, which the writers stream from.
      let content: DeliveryItem['content'] | undefined;
      try {
        if (ref) content = await stager.get(ref);
      } catch (err) {
        this.#d.logger.warn({ ref, reason: reasonOf(err) }, 'staged item unreadable');
      }
      const copies: Copy[] = [];
      const settled: LedgerRow[] = [];
      for (const row of group) {
        if (!content) {
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
            content,
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
    const startedAt = Date.now();
    const last = await store.discovery(connectorId);
    // Streams quiet since the previous sweep are left out of the listing. The bound is on the pod's clock (the
    // latest activity that sweep listed), and a whole listing every week guards against a pod whose `startDate`
    // filter means something narrower than activity (§2.2 does not define it).
    const full = !last || startedAt - last.fullAt >= FULL_LISTING_EVERY_MS;
    const filter = full ? {} : { activeSince: last.lastAt - LISTING_OVERLAP_MS };
    const conversations: Conversation[] = [];
    for await (const c of source.conversations(this.#signal, filter)) conversations.push(c);
    const quarantine = new Map<string, QuarantineRow[]>();
    for (const q of await store.quarantined(connectorId))
      quarantine.set(q.streamId, [...(quarantine.get(q.streamId) ?? []), q]);
    const known = new Set(conversations.map((c) => c.id));
    for (const streamId of quarantine.keys()) {
      if (!known.has(streamId)) conversations.push({ id: streamId, type: 'UNLISTED' });
    }
    this.#streamsTotal = conversations.length;
    const unread = new Set<string>();
    await this.#record({ counts: this.#add({ streams: conversations.length }) });
    this.#progress();
    // Streams are read side by side so that one throttled or slow stream (Retry-After, §7) does not idle the rest.
    await mapLimit(conversations, this.#d.streamConcurrency ?? 1, async (conversation) => {
      this.#check();
      try {
        await this.#archiveConversation(conversation, quarantine.get(conversation.id) ?? []);
      } catch (err) {
        if (endsTheRun(err)) throw err;
        this.#streamErrors += 1;
        unread.add(canonicalId(conversation.id));
        log.warn({ streamId: conversation.id, reason: reasonOf(err) }, 'conversation skipped this cycle');
        await this.#record({
          events: [{ level: 'error', kind: 'stream-unreadable', itemId: conversation.id, reason: reasonOf(err) }],
        });
      }
      this.#streamsDone += 1;
      this.#progress();
    });
    // Only a sweep that read every listed stream may narrow the next listing.
    const activity = Math.max(last?.lastAt ?? 0, ...conversations.map((c) => c.lastMessageDate ?? 0));
    if (!this.#streamErrors && activity > 0) {
      await this.#record({ discovery: full ? { fullAt: startedAt, lastAt: activity } : { lastAt: activity } });
    }
    if (this.#d.transcript) await this.#transcribe(this.#d.transcript, startedAt, unread);
  }

  async #archiveConversation(conversation: Conversation, quarantined: QuarantineRow[]): Promise<void> {
    const { source, store, connectorId } = this.#d;
    const saved = await store.checkpoint(connectorId, conversation.id);
    const nothingNew =
      saved?.drainedThrough != null &&
      conversation.lastMessageDate !== undefined &&
      saved.drainedThrough === conversation.lastMessageDate;
    if (nothingNew && !quarantined.length) return;

    const members = await this.#timeline(conversation);
    if (quarantined.length) {
      const retry: ArchiveItem[] = [];
      const stillMalformed: MalformedRecord[] = [];
      const roomEvents = this.#d.convert.roomEvents !== false;
      for (const q of quarantined) {
        const raw = JSON.parse(q.raw) as unknown;
        // A record that could not be keyed stays what it is; it is kept, and counted, until an operator acts.
        if (q.messageId.startsWith(MALFORMED_PREFIX)) {
          stillMalformed.push({ key: q.messageId, reason: q.reason, record: raw, timestamp: q.messageTs });
        } else if (isV4Event(raw)) {
          // An event item is derived again from its event, exactly as the feed first did.
          const items = classifyEvents([raw], { roomEvents }).streams.get(q.streamId)?.items ?? [];
          const item = items.find((i) => i.id === q.messageId);
          if (item) retry.push(item);
          else stillMalformed.push({ key: q.messageId, reason: q.reason, record: raw, timestamp: q.messageTs });
        } else retry.push({ id: q.messageId, streamId: q.streamId, timestamp: q.messageTs, raw: raw as V4Message });
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

  /** The conversation's membership over time: the source's lists plus the joins and leaves seen on a feed. */
  async #timeline(conversation: Conversation, feed = false): Promise<MembershipTimeline> {
    const { source, store, connectorId } = this.#d;
    const [members, changes] = await Promise.all([
      source.members(conversation, this.#signal),
      store.membershipChanges(connectorId, conversation.id),
    ]);
    // A member's join date is their last join, so a rejoin would hide the membership before it: each join the
    // lists show is kept, and the timeline is built from every join ever seen plus the feed's leaves.
    const seen = members.flatMap(({ person, joinedAt }) =>
      joinedAt === undefined
        ? []
        : [{ streamId: conversation.id, userId: person.userId, ts: joinedAt, kind: 'join' as const }],
    );
    const known = new Set(changes.map((c) => `${c.userId} ${c.ts} ${c.kind}`));
    const fresh = seen.filter((c) => !known.has(`${c.userId} ${c.ts} ${c.kind}`));
    if (fresh.length) await this.#record({ membership: fresh });
    const timeline = new MembershipTimeline(members, [...changes, ...fresh]);
    // A feed run learns the leaves from the events still queued, so only a sweep reports what it cannot know.
    if (timeline.unknownLeaves.length && !feed) {
      const names = timeline.unknownLeaves.map((p) => p.email ?? p.userId).join(', ');
      const reason =
        `past members whose leave time is unknown (the history API has no leave date; ` +
        `capture: datahose or datafeed records it) are given every message from their join on: ${names}`;
      await this.#record({
        events: [{ level: 'warning', kind: 'membership-unknown-leave', itemId: conversation.id, reason }],
      });
    }
    return timeline;
  }

  /** Senders who are no longer members are looked up in the directory, then taken from the message itself. */
  async #senders(members: MembershipTimeline, messages: SourceMessage[]): Promise<Map<string, Person>> {
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

  /**
   * Downloads a message's attachments, never their preview images (symphony-api.md §2.6). Small ones are kept in
   * memory while the batch's budget lasts; the rest go to scratch files that the converter streams from, so memory
   * does not grow with attachment size. The source checks each against its declared size as it arrives, so what
   * is held in memory never exceeds what was declared.
   */
  async #attachments(m: SourceMessage): Promise<AttachmentContent[]> {
    const { source, stager } = this.#d;
    const out: AttachmentContent[] = [];
    const held = this.#held.get(m) ?? { bytes: 0, files: [] };
    this.#held.set(m, held);
    for (const a of m.raw.attachments ?? []) {
      const size = typeof a.size === 'number' ? a.size : undefined;
      const inMemory =
        size !== undefined && size <= ATTACHMENT_IN_MEMORY_MAX && this.#heldBytes + size <= ATTACHMENT_MEMORY;
      let content: AttachmentContent['content'];
      try {
        content = await source.attachment<AttachmentContent['content']>(
          m.streamId,
          m.id,
          size === undefined ? { id: a.id } : { id: a.id, size },
          inMemory
            ? collect
            : async (bytes) => {
                const file = await stager.putScratch(bytes);
                held.files.push(file);
                return file;
              },
          this.#signal,
        );
      } catch (err) {
        // A 404 does not pass with retries: the message was removed (suppressed) before its file was read, or the
        // file is gone. The message is still archived, with a note in place of the file saying why.
        if (!isAppError(err, 'ERR_SOURCE_ATTACHMENT') || err.status !== 404) throw err;
        const note = `The attachment "${a.name}" (${size ?? 'unknown'} bytes) could not be downloaded from Symphony: ${err.message}`;
        this.#notes.set(m, [...(this.#notes.get(m) ?? []), note]);
        out.push({ id: a.id, name: `${a.name}.unavailable.txt`, content: Buffer.from(`${note}\r\n`, 'utf8') });
        continue;
      }
      if (inMemory) {
        held.bytes += size;
        this.#heldBytes += size;
      }
      out.push({ id: a.id, name: a.name, content });
    }
    return out;
  }

  /** Lets go of what `#attachments` holds for these messages; their items are staged or quarantined by now. */
  async #release(messages: readonly SourceMessage[]): Promise<void> {
    for (const m of messages) {
      const held = this.#held.get(m);
      if (!held) continue;
      this.#held.delete(m);
      this.#heldBytes -= held.bytes;
      for (const file of held.files) {
        await this.#d.stager.removeScratch(file).catch((err: unknown) => {
          this.#d.logger.warn({ reason: reasonOf(err) }, 'scratch file not removed; the next run removes it');
        });
      }
    }
  }

  /**
   * Converts, stages and delivers one batch, then commits its ledger rows, quarantine entries and (for a
   * page read past the checkpoint) the new cursor together.
   */
  async #archiveBatch(
    conversation: Conversation,
    members: MembershipTimeline,
    page: { messages: ArchiveItem[]; malformed: MalformedRecord[] },
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
    const transcript = this.#d.transcript;
    const kept = transcript
      ? await store.transcriptItems(
          connectorId,
          canonicalId(conversation.id),
          messages.map((m) => m.id),
        )
      : new Set<string>();
    const entries: { row: TranscriptEntryRow; attachments: number }[] = [];
    const events: RunEvent[] = [];
    const quarantined: QuarantineRow[] = [];
    const released: string[] = [];
    const settled: LedgerRow[] = [];
    const copies: Copy[] = [];
    const counts: Partial<RunCounts> = {
      // Re-read messages (the sweep backs off a few positions, a feed redelivers) were counted when first seen.
      messages: retry ? 0 : messages.filter((m) => !ledger.has(m.id) && !kept.has(m.id)).length,
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
      converted: StreamedItem;
      open: string[];
      mailboxes: Map<string, Person | undefined>;
      existing: Map<string, LedgerRow> | undefined;
    }[] = [];

    for (const m of messages) {
      this.#check();
      const existing = ledger.get(m.id);
      const userId = userIdOf(m.raw.user?.userId);
      const sender = (userId && (members.person(userId) ?? senders.get(userId))) || personOf(m.raw.user);
      // Those in the conversation when the message was sent, its author and, for a leave, who left. An event's
      // initiator is not added: an administrator removing a message from outside the room is no party to it.
      const participants = members.at(m.timestamp);
      for (const extra of [m.event ? undefined : sender, m.affected]) {
        if (extra && !participants.some((p) => p.userId === extra.userId)) participants.push(extra);
      }

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

      if (transcript) {
        if (kept.has(m.id)) {
          if (retry) released.push(m.id);
          continue;
        }
        try {
          if (!sender) throw new AppError('ERR_CONVERT_FAILED', 'the message has no author user id');
          entries.push(await this.#entry(m, conversation, sender, participants, [...mailboxes.keys()], transcript));
        } catch (err) {
          if (endsTheRun(err)) throw err;
          this.#quarantine(m, err, quarantined, events);
          continue;
        }
        if (retry) released.push(m.id);
        this.#noteOutcome(m, [], newUnmapped, settled, events, counts);
        continue;
      }

      let converted: StreamedItem;
      try {
        if (!sender) throw new AppError('ERR_CONVERT_FAILED', 'the message has no author user id');
        converted = await converter.convertStreamed({
          ...m.event,
          message: m.raw,
          conversation,
          sender,
          participants,
          attachments: await this.#attachments(m),
          options: this.#d.convert,
        });
      } catch (err) {
        if (isAppError(err, 'ERR_ABORTED') || isAppError(err, 'ERR_SOURCE_AUTH')) throw err;
        this.#quarantine(m, err, quarantined, events);
        continue;
      }
      if (retry) released.push(m.id);
      this.#noteOutcome(m, converted.warnings, newUnmapped, settled, events, counts);
      if (open.length) toStage.push({ m, converted, open, mailboxes, existing });
    }

    // The scratch files of attachments are no longer needed once every item of the batch is staged.
    let staged: { ref: string; content: DeliveryItem['content'] }[];
    try {
      staged = await mapLimit(toStage, this.#d.concurrency, ({ converted }) => this.#stage(converted));
    } finally {
      await this.#release(messages);
    }
    if (toStage.length || entries.some((e) => e.attachments > 0)) await stager.flush();
    for (const [i, { m, converted, open, mailboxes, existing }] of toStage.entries()) {
      const { ref, content } = staged[i]!;
      stagedRefs.set(m.id, ref);
      const item: DeliveryItem = { key: idToken(m.id), messageId: converted.messageId, date: converted.date, content };
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
    if (entries.length) commit.transcriptEntries = entries.map((e) => e.row);
    if (cursor) commit.checkpoint = { streamId: conversation.id, cursor };
    await store.commit(commit);

    const keep = new Set(delivered.rows.filter((r) => !settledInFull(r)).map((r) => r.messageId));
    for (const [id, ref] of stagedRefs) if (!keep.has(id)) await stager.remove(ref);
    this.#progress();
  }

  /** Items built in memory are staged whole; the others are written out from their attachment files as produced. */
  async #stage(converted: StreamedItem): Promise<{ ref: string; content: DeliveryItem['content'] }> {
    if (converted.raw) return { ref: await this.#d.stager.put(converted.raw), content: converted.raw };
    const file = await this.#d.stager.putStream(converted.chunks());
    return { ref: file.ref, content: file };
  }

  #quarantine(m: ArchiveItem, err: unknown, quarantined: QuarantineRow[], events: RunEvent[]): void {
    quarantined.push({
      messageId: m.id,
      streamId: m.streamId,
      messageTs: m.timestamp,
      reason: reasonOf(err),
      raw: JSON.stringify(m.record ?? m.raw),
      attempts: 1,
    });
    events.push({ level: 'error', kind: 'quarantined', itemId: m.id, reason: reasonOf(err) });
    this.#notes.delete(m);
  }

  /** Logs what the item's conversion warned about and its missing files, and settles its unmapped participants. */
  #noteOutcome(
    m: SourceMessage,
    warnings: readonly string[],
    unmapped: readonly { person: Person; reason: string }[],
    settled: LedgerRow[],
    events: RunEvent[],
    counts: Partial<RunCounts>,
  ): void {
    for (const w of warnings) events.push({ level: 'warning', kind: 'conversion', itemId: m.id, reason: w });
    counts.warnings! += warnings.length;
    for (const note of this.#notes.get(m) ?? []) {
      events.push({ level: 'warning', kind: 'attachment-unavailable', itemId: m.id, reason: note });
      counts.warnings! += 1;
    }
    this.#notes.delete(m);
    for (const { person, reason } of unmapped) {
      counts.unmapped! += 1;
      settled.push(this.#row(m, `unmapped:${person.userId}`, 'unmapped', person.userId, null, reason));
      if (!this.#reportedUsers.has(person.userId)) {
        this.#reportedUsers.add(person.userId);
        events.push({ level: 'warning', kind: 'unmapped-user', itemId: person.userId, reason });
      }
    }
  }

  /**
   * Keeps an item for its day's transcript: the converter's input as JSON, its attachments staged (kept for
   * revisions, which hold the whole day again).
   */
  async #entry(
    m: ArchiveItem,
    conversation: Conversation,
    sender: Person,
    participants: Person[],
    mailboxes: string[],
    transcript: TranscriptSettings,
  ): Promise<{ row: TranscriptEntryRow; attachments: number }> {
    const { stager } = this.#d;
    // dayOf refuses a time it cannot place on a calendar day, which quarantines the item.
    const day = dayOf(m.timestamp, transcript.timeZone);
    const attachments: StoredEntry['attachments'] = [];
    for (const a of await this.#attachments(m)) {
      const { content } = a;
      const ref = Buffer.isBuffer(content)
        ? await stager.put(content)
        : (await stager.putStream(createReadStream(content.path))).ref;
      attachments.push({ id: a.id, name: a.name, ref, size: Buffer.isBuffer(content) ? content.length : content.size });
    }
    const stored: StoredEntry = { ...m.event, conversation, message: m.raw, sender, participants, attachments };
    const entry = JSON.stringify(stored, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    const streamId = canonicalId(conversation.id);
    return { row: { streamId, day, itemId: m.id, ts: m.timestamp, mailboxes, entry }, attachments: attachments.length };
  }

  /**
   * Builds and files the transcripts of every conversation-day that ended `settleMs` before `startedAt` and has
   * items no transcript holds yet; streams this sweep could not read wait for the next one.
   */
  async #transcribe(transcript: TranscriptSettings, startedAt: number, unread: ReadonlySet<string>): Promise<void> {
    const { store, connectorId } = this.#d;
    for (const day of await store.transcriptDays(connectorId)) {
      this.#check();
      if (unread.has(day.streamId)) continue;
      if (dayBounds(day.day, transcript.timeZone).end > startedAt - transcript.settleMs) continue;
      const entries = await store.transcriptEntries(connectorId, day);
      const built = await store.transcripts(connectorId, day);
      for (const plan of planTranscripts(day, transcript.timeZone, entries, built)) {
        await this.#fileTranscript(day, plan, transcript);
      }
      await this.#record({ transcribedDays: [day] });
    }
  }

  async #fileTranscript(day: TranscriptDay, plan: TranscriptPlan, transcript: TranscriptSettings): Promise<void> {
    const { store, connectorId, stager } = this.#d;
    const events: RunEvent[] = [];
    const stored = plan.entries.map((e) => JSON.parse(e.entry) as StoredEntry);
    const people = new Map<string, Person>();
    for (const s of stored) for (const p of s.participants) people.set(p.userId, p);
    const entries: TranscriptEntry[] = [];
    for (const { conversation: _c, participants: _p, attachments, ...input } of stored) {
      const files: AttachmentContent[] = [];
      for (const a of attachments) {
        try {
          files.push({ id: a.id, name: a.name, content: await stager.file(a.ref) });
        } catch (err) {
          const note = `The attachment "${a.name}" (${a.size} bytes) is no longer in staging: ${reasonOf(err)}`;
          events.push({
            level: 'warning',
            kind: 'attachment-unavailable',
            itemId: input.message.messageId,
            reason: note,
          });
          files.push({ id: a.id, name: `${a.name}.unavailable.txt`, content: Buffer.from(`${note}\r\n`, 'utf8') });
        }
      }
      entries.push({ input: { ...input, attachments: files } });
    }
    const converted = await convertTranscript({
      conversation: stored.at(-1)!.conversation,
      day: day.day,
      timeZone: transcript.timeZone,
      participants: [...people.values()],
      entries,
      revision: plan.revision,
      supersedes: plan.supersedes,
      added: plan.added,
      options: this.#d.convert,
      variant: plan.variant,
    });
    for (const w of converted.warnings)
      events.push({ level: 'warning', kind: 'conversion', itemId: plan.itemId, reason: w });

    const ledger = (await store.ledger(connectorId, [plan.itemId])).get(plan.itemId);
    const open = plan.mailboxes.filter((mb) => !TERMINAL.has(ledger?.get(mb)?.status ?? ''));
    let staged: { ref: string; content: DeliveryItem['content'] } | undefined;
    if (open.length) {
      staged = await this.#stage(converted);
      await stager.flush();
    }
    const item: DeliveryItem | undefined = staged && {
      key: idToken(plan.itemId),
      messageId: converted.messageId,
      date: converted.date,
      content: staged.content,
    };
    const lastTs = plan.entries.at(-1)?.ts ?? converted.date.getTime();
    const copies: Copy[] = open.map((mailbox) => ({
      row: {
        messageId: plan.itemId,
        mailbox,
        streamId: day.streamId,
        messageTs: lastTs,
        status: 'pending',
        userId: null,
        stagedRef: staged!.ref,
        receipt: null,
        reason: null,
        attempts: ledger?.get(mailbox)?.attempts ?? 0,
      },
      item: item!,
    }));
    await store.plan(
      connectorId,
      this.#runId,
      copies.map((c) => c.row),
    );
    const delivered = await this.#deliver(copies);
    await this.#record({
      ledger: delivered.rows,
      events: [...events, ...delivered.events],
      counts: this.#add({ ...delivered.counts, warnings: converted.warnings.length }),
      transcripts: [
        {
          ...day,
          itemId: plan.itemId,
          revision: plan.revision,
          messageId: converted.messageId,
          entries: plan.entries.map((e) => e.itemId),
          mailboxes: plan.mailboxes,
        },
      ],
    });
    if (staged && delivered.rows.every(settledInFull)) await stager.remove(staged.ref);
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
