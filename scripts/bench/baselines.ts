import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ensureDovecotInstalled, type DovecotServer } from '../../test/helpers/dovecot.ts';
import { runCommand } from './processes.ts';

/** Where the product files items: `INBOX → Symphony`, which Dovecot's Maildir++ layout keeps in this directory. */
export const FOLDER = 'INBOX.Symphony';
const FOLDER_DIR = `.${FOLDER}`;

export interface BaselineRun {
  ms: number;
  /** Of the tool's own process (the largest one for a tool run once per user). */
  peakRssKb: number;
}

export interface Inventory {
  /** Per mailbox address: items in its archive folder. */
  items: Map<string, number>;
  totalItems: number;
  totalBytes: number;
}

/** The helper keeps its config beside its log (test/helpers/dovecot.ts). */
export function dovecotConfig(server: DovecotServer): string {
  return path.join(path.dirname(server.logFile), 'dovecot.conf');
}

/** Counts and sizes the items a Maildir run left in each mailbox's archive folder. */
export async function inventoryMaildir(root: string): Promise<Inventory> {
  const items = new Map<string, number>();
  let totalItems = 0;
  let totalBytes = 0;
  for (const mailbox of (await readdir(root)).sort()) {
    const cur = path.join(root, mailbox, FOLDER_DIR, 'cur');
    const names = await readdir(cur).catch(() => [] as string[]);
    for (const name of names) {
      // maildir(5) `,S=<size>` is the exact size the writer wrote; stat only a name without it.
      const size = /,S=(\d+)/.exec(name)?.[1];
      totalBytes += size !== undefined ? Number(size) : (await stat(path.join(cur, name))).size;
    }
    if (names.length) items.set(mailbox, names.length);
    totalItems += names.length;
  }
  return { items, totalItems, totalBytes };
}

/** Items in every user's archive folder, as Dovecot itself counts them. */
export async function dovecotCounts(server: DovecotServer): Promise<Map<string, number>> {
  // -A walks the passwd-file userdb; a user without the folder makes doveadm exit non-zero but still lists the rest.
  const { stdout } = await runCommand(
    'doveadm',
    ['-c', dovecotConfig(server), '-f', 'tab', 'mailbox', 'status', '-A', 'messages', FOLDER],
    { check: false },
  );
  const counts = new Map<string, number>();
  for (const line of stdout.split('\n').slice(1)) {
    const [user, mailbox, messages] = line.split('\t');
    if (user && mailbox === FOLDER) counts.set(user, Number(messages));
  }
  return counts;
}

/**
 * `doveadm import` (Dovecot 2.3: `import [-u user] [-s] <source location> <dest parent> <search query>`) of each
 * user's pre-rendered folder, one user after the other as an operator's script would. The source index is kept in
 * memory so the import does not also build index files in the source tree.
 */
export async function doveadmImport(server: DovecotServer, maildirRoot: string, users: string[]): Promise<BaselineRun> {
  const config = dovecotConfig(server);
  const started = performance.now();
  let peakRssKb = 0;
  for (const user of users) {
    const source = `maildir:${path.join(maildirRoot, user)}:INDEX=MEMORY`;
    const r = await runCommand('doveadm', [
      '-c',
      config,
      // Maildir to Maildir on one file system, Dovecot links the files instead of saving them (its default
      // `maildir_copy_with_hardlinks = yes`): ~8× faster, and not the save that an APPEND or a real import does.
      '-o',
      'maildir_copy_with_hardlinks=no',
      'import',
      '-u',
      user,
      '-s',
      source,
      '',
      'mailbox',
      FOLDER,
    ]);
    peakRssKb = Math.max(peakRssKb, r.peakRssKb);
  }
  return { ms: performance.now() - started, peakRssKb };
}

/**
 * mbsync (isync 1.4) pushing each user's pre-rendered folder to the server over IMAP, one channel per user logged
 * in through the master user. mbsync names a Far mailbox with `/` as the hierarchy separator and refuses one that
 * contains the server's (`.`), hence `INBOX/Symphony`.
 */
export async function mbsyncPush(
  server: DovecotServer,
  maildirRoot: string,
  users: string[],
  rcFile: string,
): Promise<BaselineRun> {
  const master = server.master;
  if (!master) throw new Error('mbsync needs a Dovecot started with a master user');
  const sections = users.map((user, i) =>
    [
      `IMAPAccount account${i}`,
      `Host ${server.host}`,
      `Port ${server.port}`,
      `User ${user}*${master.user}`,
      `Pass ${master.password}`,
      'SSLType None',
      'AuthMechs LOGIN',
      '',
      `IMAPStore far${i}`,
      `Account account${i}`,
      '',
      `MaildirStore near${i}`,
      `Path ${path.join(maildirRoot, user)}/`,
      `Inbox ${path.join(maildirRoot, user, FOLDER_DIR)}`,
      '',
      `Channel channel${i}`,
      `Far :far${i}:INBOX/Symphony`,
      `Near :near${i}:INBOX`,
      'Create Far',
      'Sync Push New',
      'Expunge None',
      'Remove None',
      'SyncState *',
      '',
    ].join('\n'),
  );
  await writeFile(rcFile, sections.join('\n'), { mode: 0o600 });
  await chmod(rcFile, 0o600);
  const r = await runCommand('mbsync', ['-q', '-c', rcFile, '-a']);
  return { ms: r.ms, peakRssKb: r.peakRssKb };
}

/** IMAP logins the server has accepted so far: each is a new imap process and a fresh mailbox open in Dovecot 2.3. */
export async function imapLogins(server: DovecotServer): Promise<number> {
  const log = await readFile(server.logFile, 'utf8');
  return log.match(/ imap-login: Info: Login: /g)?.length ?? 0;
}

export function sum(counts: Map<string, number>): number {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
}

/** The bench's servers and baselines come from Debian's packages; a fresh machine gets them here (needs root). */
async function ensureTools(): Promise<void> {
  await ensureDovecotInstalled();
  if ((await runCommand('mbsync', ['--version']).catch(() => undefined)) !== undefined) return;
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  await runCommand('apt-get', [...lock, 'install', '-y', '--no-install-recommends', 'isync']).catch(async () => {
    await runCommand('apt-get', [...lock, 'update']);
    await runCommand('apt-get', [...lock, 'install', '-y', '--no-install-recommends', 'isync']);
  });
}

export async function toolVersions(): Promise<{ dovecot: string; mbsync: string }> {
  await ensureTools();
  // /usr/sbin is not on every PATH (non-login shells).
  const dovecot = (
    await runCommand('dovecot', ['--version']).catch(() => runCommand('/usr/sbin/dovecot', ['--version']))
  ).stdout.trim();
  const mbsync = (await runCommand('mbsync', ['--version'])).stdout.trim();
  return { dovecot, mbsync };
}
