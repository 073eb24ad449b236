import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import {
  chmod,
  copyFile,
  mkdir,
  open,
  opendir,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import path from 'node:path';
import { syncDir } from '../../core/fs.ts';
import { AppError, type AppErrorOptions } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { itemSize } from '../content.ts';
import { KeyIndex } from '../key-index.ts';
import type { DeliveryItem, DeliveryReceipt, MailboxWriter } from '../mailbox-writer.ts';

export interface MaildirWriterConfig {
  /** Directory holding one Maildir++ tree per mailbox (`mail_location = maildir:<root>/%u` in Dovecot). */
  root: string;
  /** Child of INBOX the items are filed into; default `Symphony`. */
  folder?: string;
  /** IMAP system flags set on every item; default `['\\Seen']`. */
  flags?: string[];
}

export interface MaildirWriterDeps {
  logger: Logger;
}

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const HOST_PART = 'symphony-archiver';

/** maildir(5) info flags; the info part must list them in ASCII order. */
const FLAG_LETTERS: Readonly<Record<string, string>> = {
  '\\draft': 'D',
  '\\flagged': 'F',
  '\\answered': 'R',
  '\\seen': 'S',
};

/**
 * Our unique names carry the key as `Q<key>.`; Dovecot keeps the base name when it renames a file (new/ → cur/,
 * flag changes) but may append `,S=`/`,W=` extensions, so the key is read from the token, not the whole name.
 */
const KEY_IN_NAME = /^[0-9]+\.M0P0Q([A-Za-z0-9_-]+)\./;
const KEY_SYNTAX = /^[A-Za-z0-9_-]{1,200}$/;
/** Maildir++ encodes `.` as the hierarchy separator and Dovecot stores names in modified UTF-7, so keep folders plain. */
const FOLDER_SYNTAX = /^[A-Za-z0-9_ -]{1,100}$/;

/**
 * Transient conditions worth a later retry: resource exhaustion and interrupted calls. Full disks and quotas are
 * included because the item is not at fault and an operator can free space; EACCES/EROFS/ENOTDIR are setup errors
 * that a retry will not fix.
 */
const RETRYABLE_ERRNO = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'EMFILE', 'ENFILE', 'ENOSPC', 'EDQUOT', 'ETIMEDOUT']);

interface FolderState {
  /** Keys of the items in cur/ and new/, as found when the folder was opened and as written since. */
  index: KeyIndex;
  folderDir: string;
  curDir: string;
  tmpDir: string;
}

/**
 * Files items into `<root>/<mailbox>/.INBOX.<folder>/cur/` following maildir(5) (http://cr.yp.to/proto/maildir.html)
 * and the Maildir++ folder layout Dovecot uses, so Dovecot serves the tree unchanged with
 * `mail_location = maildir:<root>/%u`. A single writer per mailbox is assumed (destinations.md §6.3).
 */
export function createMaildirWriter(config: MaildirWriterConfig, deps: MaildirWriterDeps): MailboxWriter {
  const root = path.resolve(config.root);
  const folder = config.folder ?? 'Symphony';
  if (!FOLDER_SYNTAX.test(folder)) {
    throw new AppError('ERR_CONFIG_INVALID', `Maildir folder name "${folder}" must match ${FOLDER_SYNTAX}`);
  }
  const infoFlags = flagLetters(config.flags ?? ['\\Seen']);
  const folderDirName = `.INBOX.${folder}`;
  const subscriptionName = `INBOX.${folder}`;
  const log = deps.logger.child({ sink: 'maildir' });

  /** Per mailbox: the folder state, loaded once per writer life (a new process rebuilds it from disk). */
  const folders = new Map<string, Promise<FolderState>>();
  /** Appends in flight per `mailbox\0key`, so a concurrent second append of the same key reports a duplicate. */
  const inFlight = new Map<string, Promise<DeliveryReceipt>>();
  /** Directories whose entries changed since the last flush; fsync makes the renames/creates durable. */
  let dirty = new Set<string>();

  function openFolder(mailbox: string): Promise<FolderState> {
    let state = folders.get(mailbox);
    if (!state) {
      state = prepareFolder(mailbox);
      folders.set(mailbox, state);
      // A failed preparation must not poison later attempts.
      state.catch(() => folders.delete(mailbox));
    }
    return state;
  }

  async function prepareFolder(mailbox: string): Promise<FolderState> {
    const mailboxDir = path.join(root, mailbox);
    const folderDir = path.join(mailboxDir, folderDirName);
    try {
      if (await makeDir(mailboxDir)) {
        dirty.add(root);
        dirty.add(mailboxDir);
      }
      // The mailbox dir itself is the Maildir++ INBOX; Dovecot expects cur/new/tmp there too.
      for (const sub of ['cur', 'new', 'tmp']) {
        if (await makeDir(path.join(mailboxDir, sub))) dirty.add(mailboxDir);
      }
      if (await makeDir(folderDir)) dirty.add(mailboxDir);
      for (const sub of ['cur', 'new', 'tmp']) {
        if (await makeDir(path.join(folderDir, sub))) dirty.add(folderDir);
      }
      // Maildir++: an empty `maildirfolder` file marks a subfolder (Dovecot creates it on CREATE as well).
      if (await createEmptyFile(path.join(folderDir, 'maildirfolder'))) dirty.add(folderDir);
      if (await subscribe(mailboxDir, subscriptionName)) dirty.add(mailboxDir);

      const index = new KeyIndex();
      for (const sub of ['cur', 'new']) {
        for await (const entry of await opendir(path.join(folderDir, sub))) {
          const key = KEY_IN_NAME.exec(entry.name)?.[1];
          if (key !== undefined) index.set(key);
        }
      }
      log.debug({ mailbox, folder: subscriptionName, items: index.size }, 'maildir folder ready');
      return { index, folderDir, curDir: path.join(folderDir, 'cur'), tmpDir: path.join(folderDir, 'tmp') };
    } catch (err) {
      throw ioError(err, `preparing ${folderDir}`);
    }
  }

  /**
   * The file name of an item the index says is in the folder: the name this writer gives it, unless a mail client
   * changed its flags (the `:2,` info part) or it is still in `new/`, which takes a scan of the folder.
   */
  async function findItem(state: FolderState, key: string, fileName: string): Promise<string | undefined> {
    try {
      await stat(path.join(state.curDir, fileName));
      return fileName;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw ioError(err, `looking for ${fileName}`);
    }
    for (const sub of ['cur', 'new']) {
      for await (const entry of await opendir(path.join(state.folderDir, sub))) {
        if (KEY_IN_NAME.exec(entry.name)?.[1] === key) return entry.name;
      }
    }
    return undefined;
  }

  async function write(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<DeliveryReceipt> {
    const state = await openFolder(mailbox);
    const seconds = Math.floor(item.date.getTime() / 1000);
    // maildir(5) unique name: <time>.<delivery id>.<host>; the key in the Q part makes it deterministic.
    const base = `${seconds}.M0P0Q${item.key}.${HOST_PART},S=${itemSize(item)}`;
    const fileName = `${base}:2,${infoFlags}`;
    if (state.index.has(item.key)) {
      const existing = await findItem(state, item.key, fileName);
      if (existing !== undefined) return { ref: existing, duplicate: true };
    }
    throwIfAborted(signal, item.key);
    const tmpPath = path.join(
      state.tmpDir,
      `${seconds}.M${randomBytes(6).toString('hex')}P${process.pid}Q${item.key}.${HOST_PART}`,
    );
    const curPath = path.join(state.curDir, fileName);

    let created = false;
    try {
      const { content } = item;
      let handle: FileHandle;
      if (Buffer.isBuffer(content)) {
        handle = await open(tmpPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, FILE_MODE);
        created = true;
      } else {
        // A staged file is copied by the kernel (copy_file_range, or a reflink where the file system has them), so a
        // large item never passes through memory.
        await copyFile(content.path, tmpPath, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE).catch(
          (err: unknown) => {
            // A copy that failed part way (ENOSPC) leaves its file; EEXIST means the name was never ours.
            created = errnoOf(err) !== 'EEXIST';
            throw err;
          },
        );
        created = true;
        await chmod(tmpPath, FILE_MODE);
        handle = await open(tmpPath, fsConstants.O_WRONLY);
      }
      try {
        if (Buffer.isBuffer(content)) await handle.writeFile(content);
        // Dovecot takes INTERNALDATE from the file's mtime (destinations.md §4), set before the rename publishes it.
        await handle.utimes(item.date, item.date);
        await handle.sync();
      } finally {
        await handle.close();
      }
      throwIfAborted(signal, item.key);
      // rename(2) is atomic: readers see either nothing or the complete file in cur/, never a partial one.
      await rename(tmpPath, curPath);
      created = false;
    } catch (err) {
      if (created) await unlink(tmpPath).catch(() => undefined);
      throw ioError(err, `writing ${curPath}`);
    }
    state.index.set(item.key);
    dirty.add(state.curDir);
    return { ref: fileName, duplicate: false };
  }

  return {
    kind: 'maildir',

    async verify(signal?: AbortSignal): Promise<void> {
      throwIfAborted(signal, 'verify');
      const probe = path.join(root, `.symphony-archiver-verify.${process.pid}.${randomBytes(6).toString('hex')}`);
      try {
        await mkdir(root, { recursive: true, mode: DIR_MODE });
        // access(2) says yes to root on read-only mounts; a real create/unlink is the honest check.
        const handle = await open(probe, 'wx', FILE_MODE);
        await handle.close();
        await unlink(probe);
      } catch (err) {
        throw ioError(err, `maildir root ${root} is not writable`);
      }
    },

    async append(mailbox: string, item: DeliveryItem, signal?: AbortSignal): Promise<DeliveryReceipt> {
      throwIfAborted(signal, item.key);
      const name = normaliseMailbox(mailbox);
      if (!KEY_SYNTAX.test(item.key)) {
        throw new AppError('ERR_SINK_REJECTED', `item key "${item.key}" is not a plain token`);
      }
      if (!(item.date instanceof Date) || Number.isNaN(item.date.getTime()) || item.date.getTime() < 0) {
        throw new AppError('ERR_SINK_REJECTED', `item ${item.key} has no valid date`);
      }
      const flightKey = `${name}\0${item.key}`;
      const pending = inFlight.get(flightKey);
      if (pending) {
        const first = await pending;
        return { ref: first.ref, duplicate: true };
      }
      const job = write(name, item, signal);
      inFlight.set(flightKey, job);
      try {
        return await job;
      } finally {
        inFlight.delete(flightKey);
      }
    },

    async inventory(mailbox: string, signal?: AbortSignal): Promise<Map<string, number>> {
      throwIfAborted(signal, 'inventory');
      const folderDir = path.join(root, normaliseMailbox(mailbox), folderDirName);
      const counts = new Map<string, number>();
      // Read from disk, not the writer's index: reconciliation must see what a mail server would serve.
      for (const sub of ['cur', 'new']) {
        let names: string[];
        try {
          names = await readdir(path.join(folderDir, sub));
        } catch (err) {
          if (errnoOf(err) === 'ENOENT') continue;
          throw ioError(err, `listing ${folderDir}`);
        }
        for (const name of names) {
          const key = KEY_IN_NAME.exec(name)?.[1];
          if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      }
      return counts;
    },

    async flush(): Promise<void> {
      const dirs = dirty;
      dirty = new Set();
      try {
        // fsync(2) on the directory persists the renamed/created entries (maildir(5) delivery relies on this).
        await Promise.all([...dirs].map(syncDir));
      } catch (err) {
        for (const dir of dirs) dirty.add(dir);
        throw ioError(err, 'syncing maildir directories');
      }
    },

    async close(): Promise<void> {
      await this.flush();
    },
  };
}

/** Lower-cases the address and refuses anything that could escape `<root>/` or confuse Maildir++. */
export function normaliseMailbox(mailbox: string): string {
  const name = mailbox.trim().toLowerCase();
  const bad =
    name.length === 0 ||
    name.length > 254 ||
    name.startsWith('.') ||
    name.includes('/') ||
    name.includes('\\') ||
    name.includes('..') ||
    /[\s\p{Cc}]/u.test(name) ||
    !/^[^@]+@[^@]+$/.test(name);
  if (bad) throw new AppError('ERR_SINK_REJECTED', `mailbox ${JSON.stringify(mailbox)} is not a plain email address`);
  return name;
}

function flagLetters(flags: string[]): string {
  const letters = new Set<string>();
  for (const flag of flags) {
    const letter = FLAG_LETTERS[flag.toLowerCase()];
    if (letter === undefined) {
      throw new AppError(
        'ERR_CONFIG_INVALID',
        `Maildir flag ${flag} is not one of \\Seen \\Flagged \\Answered \\Draft`,
      );
    }
    letters.add(letter);
  }
  return [...letters].sort().join('');
}

/** Returns true when the directory was created now. */
async function makeDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir, { mode: DIR_MODE });
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return false;
    if (errnoOf(err) === 'ENOENT') {
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
      return true;
    }
    throw err;
  }
}

async function createEmptyFile(file: string): Promise<boolean> {
  try {
    const handle = await open(file, 'wx', FILE_MODE);
    await handle.close();
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Adds the folder to Dovecot's `subscriptions` file in the mailbox root, so clients that show only subscribed folders
 * list it. Dovecot reads two formats (lib-storage/list/subscription-file.c): v1, one name per line with the storage
 * separator (`INBOX.Symphony`), and v2, a `V\t2\n\n` header then names split by tabs. A new file is written as v2
 * (what Dovecot itself writes; independent of the namespace separator); an existing file keeps its format.
 */
async function subscribe(mailboxDir: string, name: string): Promise<boolean> {
  const file = path.join(mailboxDir, 'subscriptions');
  let current: string | undefined;
  try {
    current = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const v2Header = 'V\t2\n\n';
  const isV2 = current === undefined || current.startsWith(v2Header);
  const line = isV2 ? name.split('.').join('\t') : name;
  const body = current === undefined ? '' : isV2 ? current.slice(v2Header.length) : current;
  if (body.split('\n').includes(line)) return false;
  const next = `${isV2 ? v2Header : ''}${body}${body === '' || body.endsWith('\n') ? '' : '\n'}${line}\n`;
  // Replace atomically (as Dovecot does with its dotlock + rename) so a crash never truncates the list.
  const tmp = path.join(mailboxDir, `tmp/subscriptions.${process.pid}.${randomBytes(6).toString('hex')}`);
  const handle = await open(tmp, 'wx', FILE_MODE);
  try {
    await handle.writeFile(next);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  return true;
}

function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AppError('ERR_ABORTED', what, { cause: signal.reason });
}

function ioError(err: unknown, detail: string): AppError {
  if (err instanceof AppError) return err;
  const code = errnoOf(err);
  const options: AppErrorOptions = { cause: err, retryable: code !== undefined && RETRYABLE_ERRNO.has(code) };
  const message = err instanceof Error ? err.message : String(err);
  return new AppError('ERR_SINK_IO', `${detail}: ${message}`, options);
}
