import { AppError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { itemHead, itemSize } from '../content.ts';
import type { DeliveryItem, DeliveryReceipt, MailboxWriter } from '../mailbox-writer.ts';
import { appendLimit, appendOne, multiAppend, type AppendOutcome } from './append.ts';
import type { ImapDestinationConfig } from './config.ts';
import {
  identityFor,
  isUsable,
  readSecret,
  tlsOptions,
  type ImapConnection,
  type LoginIdentity,
} from './connection.ts';
import { isConnectionLoss, isLoginRefusal, isOverQuota, isServerRefusal, toImapAppError } from './errors.ts';
import {
  discoverSeparator,
  ensureFolder,
  examine,
  folderExists,
  keyOfMessageId,
  readMessageIds,
  indexedRef,
  refOf,
  refreshIndex,
  searchMessageIds,
  unselect,
  type FolderState,
} from './folder.ts';
import { KeyIndex } from '../key-index.ts';
import { ConnectionPool } from './pool.ts';
import { probeServer } from './probe.ts';

export { imapDestinationSchema, type ImapDestinationConfig } from './config.ts';

export interface ImapWriterDeps {
  logger: Logger;
}

const KEY_SYNTAX = /^[A-Za-z0-9_-]{1,200}$/;
const MAX_BACKOFF_MS = 5_000;
/** Enough for the header section of any item the converter writes (To is capped at 500 addresses, convert/index.ts). */
const HEADER_READ_MAX = 256 * 1024;

/** One queued append. */
interface Pending {
  item: DeliveryItem;
  signal: AbortSignal | undefined;
  /** Connection losses this item has been through. */
  losses: number;
  resolve(receipt: DeliveryReceipt): void;
  reject(err: unknown): void;
}

/** Everything about one account (login identity): its queue, workers and archive folder. */
interface Lane {
  identity: LoginIdentity;
  mailbox: string;
  queue: Pending[];
  workers: number;
  folder: FolderState | undefined;
  /**
   * Keys whose APPEND had an unknown outcome (connection lost after the command went out). Such a key is looked for
   * in the folder before it is sent again (destinations.md §6.4: commit or probe).
   */
  uncertain: Set<string>;
  /** The last connection-level failure, for the error when the lane gives up. */
  lastError?: unknown;
}

/**
 * `broken`: the connection failed and is dropped (counts towards giving up); `renew`: it works but a fresh session is
 * wanted (quota limits are read at login); `ok`: keep using it.
 */
type BatchResult = 'ok' | 'broken' | 'renew';

/**
 * Files items into `INBOX<sep><folder>` of each mailbox over IMAP (RFC 9051), through imapflow.
 *
 * Exactly once per (item, mailbox): the folder is checked for the item's Message-ID before it is written (an index of
 * the folder read once per writer life, or a SEARCH per item), an APPEND whose outcome is unknown is probed before it
 * is retried, and a second append of a key already queued waits for the first. The tagged OK of APPEND means the
 * server has stored the message (RFC 9051 §6.3.12), so every receipt returned is already durable and `flush()` has
 * nothing left to do. Receipts are the UIDPLUS `uidvalidity:uid` pair (RFC 4315).
 */
export function createImapWriter(config: ImapDestinationConfig, deps: ImapWriterDeps): MailboxWriter {
  const log = deps.logger.child({ sink: 'imap', host: config.host });
  const pool = new ConnectionPool(config, log);
  const lanes = new Map<string, Lane>();
  /** Appends in flight per `identity\0key`, so a concurrent second append of one key reports a duplicate. */
  const inFlight = new Map<string, Promise<DeliveryReceipt>>();
  /** Running queue workers; close() waits for them so every connection is back in the pool first. */
  const workers = new Set<Promise<void>>();
  let closed = false;

  function laneFor(mailbox: string): Lane {
    const identity = identityFor(config.auth, mailbox);
    let lane = lanes.get(identity.key);
    if (!lane) {
      lane = { identity, mailbox, queue: [], workers: 0, folder: undefined, uncertain: new Set() };
      lanes.set(identity.key, lane);
    }
    return lane;
  }

  function kick(lane: Lane): void {
    // One worker drains the queue in batches; more start, up to the limit, only while more items wait than run.
    while (lane.workers < config.perMailboxConcurrency && lane.queue.length > lane.workers) {
      lane.workers += 1;
      const running = work(lane).finally(() => {
        lane.workers -= 1;
        workers.delete(running);
        if (lane.queue.length > 0) kick(lane);
      });
      workers.add(running);
    }
  }

  /** Takes items off the queue for one connection, acquiring and replacing connections as they fail. */
  async function work(lane: Lane): Promise<void> {
    let conn: ImapConnection | undefined;
    let failures = 0;
    try {
      while (lane.queue.length > 0) {
        if (!conn) {
          try {
            conn = await pool.acquire(lane.identity);
          } catch (err) {
            const error = toImapAppError(err, { what: `IMAP connection for ${lane.identity.label}` });
            // A refused login is not retried here: a token or password does not heal within seconds, and
            // Exchange closes sessions after repeated errors (destinations.md §2.4). The next cycle tries again.
            if (error.retryable && !isLoginRefusal(error) && failures < config.retries) {
              failures += 1;
              await sleep(backoff(failures));
              continue;
            }
            // Everything queued for this account shares the fate: no connection can be had.
            for (const p of lane.queue.splice(0)) p.reject(error);
            return;
          }
        }
        const batch = takeBatch(lane, conn);
        let result: BatchResult;
        try {
          result = await processBatch(lane, conn, batch);
        } catch (err) {
          // Not expected (every path settles its items), but no item may hang: settling twice is a no-op.
          const error = toImapAppError(err, { what: `writing to ${lane.identity.label}` });
          for (const p of batch) p.reject(error);
          result = 'broken';
        }
        if (result === 'renew') {
          pool.release(conn, false);
          conn = undefined;
        } else if (result === 'broken') {
          pool.release(conn, false);
          conn = undefined;
          failures += 1;
          if (failures > config.retries) {
            // The server keeps dropping us (before any APPEND went out, or items would carry the losses):
            // give the items back to the pipeline as retryable failures instead of looping.
            const error = toImapAppError(lane.lastError ?? new Error('connection lost'), {
              what: `IMAP session of ${lane.identity.label} failed ${failures} times in a row`,
            });
            for (const p of lane.queue.splice(0)) p.reject(error);
            return;
          }
          if (lane.queue.length > 0) await sleep(backoff(failures));
        } else {
          failures = 0;
        }
      }
    } finally {
      if (conn) pool.release(conn, isUsable(conn));
    }
  }

  function takeBatch(lane: Lane, conn: ImapConnection): Pending[] {
    const multi = config.multiappend && conn.client.capabilities.has('MULTIAPPEND');
    if (!multi) return lane.queue.splice(0, 1);
    const limit = appendLimit(conn);
    const over = (p: Pending | undefined) => limit !== undefined && p !== undefined && itemSize(p.item) > limit;
    const batch: Pending[] = [];
    let bytes = 0;
    while (lane.queue.length > 0 && batch.length < config.maxBatchItems) {
      const next = lane.queue[0];
      if (!next) break;
      // An item over APPENDLIMIT goes alone, so the check before sending refuses it without failing the others.
      if (batch.length > 0 && (over(next) || over(batch[0]))) break;
      if (batch.length > 0 && bytes + itemSize(next.item) > config.maxBatchBytes) break;
      batch.push(next);
      lane.queue.shift();
      bytes += itemSize(next.item);
    }
    return batch;
  }

  /** Rejects `items` and everything still queued for the account. */
  function failAll(lane: Lane, items: Pending[], error: AppError): void {
    for (const p of [...items, ...lane.queue.splice(0)]) p.reject(error);
  }

  function requeue(lane: Lane, items: Pending[], lost: Pending[], cause: unknown): void {
    lane.lastError = cause;
    for (const p of lost) {
      p.losses += 1;
      lane.uncertain.add(p.item.key);
    }
    if (lost.length > 0) {
      log.warn(
        { mailbox: lane.mailbox, keys: lost.map((p) => p.item.key), reason: (cause as Error)?.message },
        'imap connection lost during APPEND; the folder is checked before a retry',
      );
    }
    const again: Pending[] = [];
    for (const p of items) {
      if (p.losses > config.retries) {
        p.reject(
          toImapAppError(cause, {
            what: `APPEND of ${p.item.key} to ${lane.identity.label}: connection lost ${p.losses} times; the outcome is checked before the next attempt`,
          }),
        );
      } else {
        again.push(p);
      }
    }
    lane.queue.unshift(...again);
  }

  /** Prepares the folder once per lane: ensure it exists (and is subscribed), and read its index when configured. */
  async function folderFor(lane: Lane, conn: ImapConnection): Promise<FolderState> {
    if (lane.folder) return lane.folder;
    const path = await ensureFolder(conn, config.folder);
    const state: FolderState = {
      path,
      uidValidity: undefined,
      scannedUid: 0,
      index: new KeyIndex(),
      complete: config.duplicateCheck === 'index',
    };
    if (state.complete) await refreshIndex(conn, state);
    log.debug(
      { mailbox: lane.mailbox, folder: path, indexed: state.complete ? state.index.size : null },
      'imap folder ready',
    );
    lane.folder = state;
    return state;
  }

  function settleFound(lane: Lane, p: Pending, ref: string): void {
    // Found after an uncertain APPEND of ours: that APPEND did land, so this is the delivery, not a duplicate.
    const ours = lane.uncertain.delete(p.item.key);
    p.resolve({ ref, duplicate: !ours });
  }

  function recordAppended(lane: Lane, folder: FolderState, p: Pending, uidValidity: bigint | undefined, uid: number) {
    if (uidValidity !== undefined && uidValidity !== folder.uidValidity) {
      // A new UIDVALIDITY voids every UID known before it (RFC 9051 §2.3.1.1): the folder is read again when needed.
      if (folder.uidValidity !== undefined) {
        folder.index.clear();
        folder.scannedUid = 0;
      }
      folder.uidValidity = uidValidity;
    }
    const ref = refOf(folder.uidValidity, uid);
    folder.index.set(p.item.key, uid);
    // Nothing else landed in between, so the index still covers every UID up to this one.
    if (folder.complete && uid === folder.scannedUid + 1 && uidValidity === folder.uidValidity) folder.scannedUid = uid;
    lane.uncertain.delete(p.item.key);
    p.resolve({ ref, duplicate: false });
  }

  /**
   * Writes one batch on one connection. Every item ends resolved, rejected, or back at the head of the queue (after a
   * connection loss). Returns `broken` when the connection must not be used again.
   */
  async function processBatch(lane: Lane, conn: ImapConnection, batch: Pending[]): Promise<BatchResult> {
    let items = batch.filter((p) => {
      if (!p.signal?.aborted) return true;
      p.reject(new AppError('ERR_ABORTED', `append of ${p.item.key}`, { cause: p.signal.reason }));
      return false;
    });
    if (items.length === 0) return 'ok';

    let folder: FolderState;
    try {
      folder = await folderFor(lane, conn);
      items = items.filter((p) => {
        const ref = indexedRef(folder, p.item.key);
        if (ref === undefined) return true;
        settleFound(lane, p, ref);
        return false;
      });
      // An uncertain key is looked for before it is written again; in search mode every key is.
      if (folder.complete) {
        if (items.some((p) => lane.uncertain.has(p.item.key))) await refreshIndex(conn, folder);
      } else {
        await searchInto(conn, folder, items);
      }
      items = items.filter((p) => {
        const ref = indexedRef(folder, p.item.key);
        if (ref === undefined) return true;
        if (lane.uncertain.has(p.item.key)) {
          log.info({ mailbox: lane.mailbox, key: p.item.key, ref }, 'imap append with unknown outcome had landed');
        }
        settleFound(lane, p, ref);
        return false;
      });
    } catch (err) {
      if (isConnectionLoss(err) || !isUsable(conn)) {
        requeue(lane, items, [], err);
        return 'broken';
      }
      const error = toImapAppError(err, { what: `preparing ${config.folder} for ${lane.identity.label}` });
      for (const p of items) p.reject(error);
      // Prepared again next time: the refusal may be a folder deleted under us (EXAMINE → NO [NONEXISTENT]).
      lane.folder = undefined;
      return 'ok';
    }
    if (items.length === 0) return 'ok';

    if (items.length > 1) {
      const outcome = await tryMultiAppend(lane, conn, folder, items);
      if (outcome !== 'fallback') return outcome;
    }
    return appendEach(lane, conn, folder, items);
  }

  async function tryMultiAppend(
    lane: Lane,
    conn: ImapConnection,
    folder: FolderState,
    items: Pending[],
  ): Promise<BatchResult | 'fallback'> {
    let outcome: AppendOutcome;
    try {
      outcome = await multiAppend(
        conn,
        folder.path,
        items.map((p) => p.item),
        config.flags,
      );
    } catch (err) {
      if (isConnectionLoss(err) || !isUsable(conn)) {
        requeue(lane, items, items, err);
        return 'broken';
      }
      const error = toImapAppError(err, {
        what: `MULTIAPPEND to ${folder.path} of ${lane.identity.label}`,
        itemCommand: true,
      });
      // Atomic (RFC 3502 §3): nothing was stored. A refusal of some message in it is found item by item.
      if (error.code === 'ERR_SINK_REJECTED' || isTryCreate(err)) return 'fallback';
      if (error.code === 'ERR_SINK_THROTTLED') {
        failAll(lane, items, error);
        return 'renew';
      }
      for (const p of items) p.reject(error);
      return isOverQuota(err) ? 'renew' : 'ok';
    }
    const uids = outcome.uids;
    if (uids !== undefined) {
      items.forEach((p, i) => recordAppended(lane, folder, p, outcome.uidValidity, uids[i] ?? 0));
      return 'ok';
    }
    return receiptsByLookup(lane, conn, folder, items);
  }

  /** The server stored the items but sent no usable APPENDUID (no UIDPLUS): find them by Message-ID for receipts. */
  async function receiptsByLookup(
    lane: Lane,
    conn: ImapConnection,
    folder: FolderState,
    items: Pending[],
  ): Promise<BatchResult> {
    for (const p of items) lane.uncertain.add(p.item.key);
    try {
      await refreshOrSearch(conn, folder, items);
    } catch (err) {
      requeue(lane, items, [], err);
      return 'broken';
    }
    const missing: Pending[] = [];
    for (const p of items) {
      const ref = indexedRef(folder, p.item.key);
      if (ref === undefined) missing.push(p);
      else {
        lane.uncertain.delete(p.item.key);
        p.resolve({ ref, duplicate: false });
      }
    }
    // Not visible yet although the server said OK: leave them uncertain, so they are looked for again first.
    if (missing.length > 0) requeue(lane, missing, missing, new Error('appended message not found'));
    return 'ok';
  }

  async function refreshOrSearch(conn: ImapConnection, folder: FolderState, items: Pending[]): Promise<void> {
    if (folder.complete) await refreshIndex(conn, folder);
    else await searchInto(conn, folder, items);
  }

  /** Search mode: looks each item up in the folder and records the ones found in the index. */
  async function searchInto(conn: ImapConnection, folder: FolderState, items: Pending[]): Promise<void> {
    const wanted = items.filter((p) => !folder.index.has(p.item.key));
    if (wanted.length === 0) return;
    const found = await searchMessageIds(
      conn,
      folder,
      wanted.map((p) => p.item.messageId),
    );
    for (const p of wanted) {
      const uid = found.get(p.item.messageId.toLowerCase());
      if (uid !== undefined) folder.index.set(p.item.key, uid);
    }
  }

  async function appendEach(
    lane: Lane,
    conn: ImapConnection,
    folder: FolderState,
    items: Pending[],
  ): Promise<BatchResult> {
    let result: BatchResult = 'ok';
    for (let i = 0; i < items.length; i += 1) {
      const p = items[i];
      if (!p) continue;
      if (p.signal?.aborted) {
        p.reject(new AppError('ERR_ABORTED', `append of ${p.item.key}`, { cause: p.signal.reason }));
        continue;
      }
      try {
        const outcome = await appendOne(conn, folder.path, p.item, config.flags);
        const uid = outcome.uids?.[0];
        if (uid !== undefined) recordAppended(lane, folder, p, outcome.uidValidity, uid);
        else if ((await receiptsByLookup(lane, conn, folder, [p])) === 'broken') {
          requeue(lane, items.slice(i + 1), [], new Error('connection lost'));
          return 'broken';
        }
      } catch (err) {
        if (isConnectionLoss(err) || !isUsable(conn)) {
          requeue(lane, items.slice(i), [p], err);
          return 'broken';
        }
        if (isTryCreate(err)) {
          // The folder was deleted under us (RFC 9051 §6.3.12 TRYCREATE): nothing was stored; prepare it again.
          lane.folder = undefined;
          p.losses += 1;
          requeue(lane, items.slice(i), [], err);
          return 'ok';
        }
        const error = toImapAppError(err, {
          what: `APPEND of ${p.item.key} to ${folder.path} of ${lane.identity.label}`,
          itemCommand: true,
        });
        p.reject(error);
        if (error.code === 'ERR_SINK_THROTTLED') {
          // Everything else for this account would be throttled too (and Exchange drops the session after a few
          // more errors, destinations.md §2.4): hand it all back with the server's advice.
          failAll(lane, items.slice(i + 1), error);
          return 'renew';
        }
        // A fresh session reads quota limits again (Dovecot looks the user up at login).
        if (isOverQuota(err)) result = 'renew';
      }
    }
    return result;
  }

  /** Checks the item before it is queued; a staged file's header section is read asynchronously by `checkHeader`. */
  function validate(mailbox: string, item: DeliveryItem): string {
    const name = normaliseMailbox(mailbox);
    if (!KEY_SYNTAX.test(item.key))
      throw new AppError('ERR_SINK_REJECTED', `item key "${item.key}" is not a plain token`);
    // The folder is checked by Message-ID and the key read back from it; another shape could never be found again.
    if (keyOfMessageId(item.messageId) !== item.key) {
      throw new AppError('ERR_SINK_REJECTED', `item ${item.key}: Message-ID must be sym.${item.key}@<domain>`);
    }
    if (!(item.date instanceof Date) || Number.isNaN(item.date.getTime()) || item.date.getTime() < 0) {
      throw new AppError('ERR_SINK_REJECTED', `item ${item.key} has no valid date`);
    }
    if (Buffer.isBuffer(item.content)) checkMessageId(item, item.content);
    return name;
  }

  async function checkHeader(item: DeliveryItem): Promise<void> {
    let head: Buffer;
    try {
      head = await itemHead(item, HEADER_READ_MAX);
    } catch (err) {
      throw new AppError('ERR_STAGE_IO', `item ${item.key}: cannot read its staged file`, {
        retryable: true,
        cause: err,
      });
    }
    checkMessageId(item, head);
  }

  return {
    kind: 'imap',

    async verify(signal?: AbortSignal): Promise<void> {
      throwIfAborted(signal, 'verify');
      await readSecret(config.auth);
      await tlsOptions(config);
      if (config.verifyMailbox === undefined) {
        await probeServer(config);
        return;
      }
      const lane = laneFor(normaliseMailbox(config.verifyMailbox));
      const conn = await pool.acquire(lane.identity);
      let healthy = true;
      try {
        await ensureFolder(conn, config.folder);
      } catch (err) {
        healthy = false;
        throw err;
      } finally {
        pool.release(conn, healthy && isUsable(conn));
      }
    },

    append(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<DeliveryReceipt> {
      try {
        throwIfAborted(signal, item.key);
        if (closed) throw new AppError('ERR_SINK_IO', 'IMAP writer is closed');
        const lane = laneFor(validate(mailbox, item));
        const flightKey = `${lane.identity.key}\0${item.key}`;
        const pending = inFlight.get(flightKey);
        if (pending) return pending.then((first) => ({ ref: first.ref, duplicate: true }));
        const enqueue = () =>
          new Promise<DeliveryReceipt>((resolve, reject) => {
            const pending: Pending = { item, signal, losses: 0, resolve, reject };
            lane.queue.push(pending);
            // Still waiting in the queue when cancelled: leave at once. Once taken, the APPEND runs to its end.
            signal?.addEventListener(
              'abort',
              () => {
                const i = lane.queue.indexOf(pending);
                if (i < 0) return;
                lane.queue.splice(i, 1);
                reject(new AppError('ERR_ABORTED', `append of ${item.key}`, { cause: signal.reason }));
              },
              { once: true },
            );
            kick(lane);
          });
        // Registered before any await, so a concurrent append of the same key finds this one.
        const job = Buffer.isBuffer(item.content) ? enqueue() : checkHeader(item).then(enqueue);
        inFlight.set(flightKey, job);
        void job.then(
          () => inFlight.delete(flightKey),
          () => inFlight.delete(flightKey),
        );
        return job;
      } catch (err) {
        return Promise.reject(err);
      }
    },

    async inventory(mailbox: string, signal?: AbortSignal): Promise<Map<string, number>> {
      throwIfAborted(signal, 'inventory');
      const lane = laneFor(normaliseMailbox(mailbox));
      const conn = await pool.acquire(lane.identity);
      let healthy = true;
      const counts = new Map<string, number>();
      try {
        const path = `INBOX${await discoverSeparator(conn)}${config.folder}`;
        // A folder never created holds nothing; reading must not create it.
        if (!(await folderExists(conn, path))) return counts;
        // Read from the server, not the writer's index: reconciliation must see what a mail client would.
        const box = await examine(conn, path);
        try {
          if (box.exists > 0) {
            for (const m of await readMessageIds(conn, 1)) {
              const key = m.messageId === undefined ? undefined : keyOfMessageId(m.messageId);
              if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
            }
          }
        } finally {
          await unselect(conn);
        }
      } catch (err) {
        healthy = !isConnectionLoss(err);
        throw toImapAppError(err, { what: `reading ${config.folder} of ${lane.identity.label}` });
      } finally {
        pool.release(conn, healthy && isUsable(conn));
      }
      return counts;
    },

    async flush(): Promise<void> {
      // Each receipt was returned after the server's tagged OK; wait for appends still queued so none is left behind.
      await Promise.allSettled([...inFlight.values()]);
    },

    async close(): Promise<void> {
      await this.flush();
      closed = true;
      await Promise.allSettled([...workers]);
      await pool.close();
    },
  };
}

function isTryCreate(err: unknown): boolean {
  if (!isServerRefusal(err)) return false;
  const code = (err as { serverResponseCode?: string }).serverResponseCode?.toUpperCase();
  return code === 'TRYCREATE' || code === 'NONEXISTENT';
}

function checkMessageId(item: DeliveryItem, head: Buffer): void {
  if (!hasMessageIdHeader(head, item.messageId)) {
    throw new AppError(
      'ERR_SINK_REJECTED',
      `item ${item.key}: the message has no Message-ID header <${item.messageId}>`,
    );
  }
}

/** Whether the header section carries `Message-ID: <id>` (case-insensitive; folded or not). */
function hasMessageIdHeader(raw: Buffer, messageId: string): boolean {
  let end = raw.indexOf('\r\n\r\n');
  if (end < 0) end = raw.indexOf('\n\n');
  const header = raw
    .subarray(0, end < 0 ? raw.length : end)
    .toString('latin1')
    .toLowerCase();
  return header.includes(`<${messageId.toLowerCase()}>`) && /(^|\n)message-id[ \t]*:/.test(header);
}

/** Lower-cases the address and refuses anything that is not a plain address (it becomes a login name). */
export function normaliseMailbox(mailbox: string): string {
  const name = mailbox.trim().toLowerCase();
  if (name.length === 0 || name.length > 254 || /[\s\p{Cc}"\\]/u.test(name) || !/^[^@]+@[^@]+$/.test(name)) {
    throw new AppError('ERR_SINK_REJECTED', `mailbox ${JSON.stringify(mailbox)} is not a plain email address`);
  }
  return name;
}

function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AppError('ERR_ABORTED', what, { cause: signal.reason });
}

function backoff(failures: number): number {
  return Math.min(MAX_BACKOFF_MS, 200 * 2 ** (failures - 1));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
