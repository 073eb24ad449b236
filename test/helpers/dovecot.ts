import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  access,
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.ts';

const run = promisify(execFile);

/** A throwaway Dovecot 2.3 IMAP server (destinations.md §5.1) serving Maildir++ trees under `mailRoot/<user>`. */
export interface DovecotServer {
  host: '127.0.0.1';
  port: number;
  /** Password of every user. */
  password: string;
  mailRoot: string;
  separator: '.' | '/';
  /** The master user, when started with `masterUser` (login as `<user>*<master>` or SASL PLAIN authzid). */
  master?: { user: string; password: string };
  /** Dovecot's log file (kept until stop). */
  logFile: string;
  /** With `tls: true`: the implicit-TLS port (RFC 8314) and the PEM of the private CA that signed the certificate. */
  tlsPort?: number;
  caFile?: string;
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same port and mail root; open connections are dropped. */
  restart(): Promise<void>;
  /**
   * Sets a user's storage quota (Dovecot `quota_rule` syntax, e.g. `20K`, `1M`; `undefined` for none). Needs
   * `quota: true` at start. Takes effect for sessions logged in afterwards (userdb is read at login).
   */
  setQuota(user: string, storage: string | undefined): Promise<void>;
}

export interface DovecotOptions {
  mailRoot: string;
  users: string[];
  separator?: '.' | '/';
  /** Adds a master passdb (`master = yes`, `auth_master_user_separator = *`) with this user name. */
  masterUser?: string;
  /** Loads the quota plugin (maildir backend) so `setQuota` can limit a user; unlimited until set. */
  quota?: boolean;
  /** Initial per-user storage quotas, as for `setQuota`. */
  quotas?: Record<string, string>;
  /**
   * Serves TLS: STARTTLS on the main port and implicit TLS on `tlsPort`, with a certificate for `localhost` and
   * 127.0.0.1 signed by a throwaway CA (`caFile`). Needs the openssl CLI.
   */
  tls?: boolean;
}

/** A throwaway CA and a server certificate for localhost/127.0.0.1, written into `dir`. */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  try {
    await run('openssl', ['version']);
  } catch {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const lock = ['-o', 'DPkg::Lock::Timeout=300'];
    await run('apt-get', [...lock, 'install', '-y', '--no-install-recommends', 'openssl'], { env }).catch(async () => {
      await run('apt-get', [...lock, 'update'], { env, maxBuffer: 64 * 1024 * 1024 });
      await run('apt-get', [...lock, 'install', '-y', '--no-install-recommends', 'openssl'], { env });
    });
  }
  const ca = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  const cert = path.join(dir, 'server.pem');
  const key = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const ext = path.join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '2',
    '-subj',
    '/CN=Archiver Test CA',
  ]);
  await run('openssl', ['req', ...ec, '-keyout', key, '-out', csr, '-subj', '/CN=localhost']);
  await writeFile(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { ca, cert, key };
}

/** The uid/gid the mail files belong to; `first_valid_uid` keeps Dovecot from serving any other. */
const MAIL_UID = 5000;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 1_500;

let installing: Promise<void> | undefined;

async function dovecotBinary(): Promise<string | undefined> {
  // /usr/sbin is not on every PATH (non-login shells), so look there too.
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, 'dovecot');
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Installs `dovecot-imapd` from the Debian archive when the `dovecot` binary is missing (once per process). */
export async function ensureDovecotInstalled(): Promise<void> {
  if (await dovecotBinary()) return;
  installing ??= (async () => {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    // Wait for a concurrent apt/dpkg run (another test worker) instead of failing on the lock.
    const lock = ['-o', 'DPkg::Lock::Timeout=300'];
    try {
      await run('apt-get', [...lock, 'update'], { env, maxBuffer: 64 * 1024 * 1024 });
      await run('apt-get', [...lock, 'install', '-y', '--no-install-recommends', 'dovecot-imapd'], {
        env,
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (err) {
      installing = undefined;
      const detail = err instanceof Error ? err.message : String(err);
      throw new Error(`Could not install dovecot-imapd with apt-get (needs root and network): ${detail}`, {
        cause: err,
      });
    }
    if (!(await dovecotBinary())) {
      installing = undefined;
      throw new Error('apt-get installed dovecot-imapd but no dovecot binary was found');
    }
  })();
  await installing;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

async function logTail(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

async function chownTree(dir: string): Promise<void> {
  await run('chown', ['-R', `${MAIL_UID}:${MAIL_UID}`, dir]);
}

/** The imap process runs as uid 5000, so every ancestor of the mail root must be searchable by "other". */
async function assertTraversable(mailRoot: string): Promise<void> {
  for (let dir = path.dirname(mailRoot); ; dir = path.dirname(dir)) {
    const st = await stat(dir);
    if ((st.mode & 0o001) === 0) {
      throw new Error(
        `${dir} is not searchable by uid ${MAIL_UID} (chmod o+x it, e.g. 0755) so Dovecot can reach ${mailRoot}`,
      );
    }
    if (path.dirname(dir) === dir) return;
  }
}

function configText(
  runDir: string,
  mailRoot: string,
  port: number,
  separator: '.' | '/',
  options: { master: boolean; quota: boolean; tls?: { port: number; cert: string; key: string } },
): string {
  const users = path.join(runDir, 'users');
  // https://doc.dovecot.org/2.3/configuration_manual/authentication/master_users/: the master passdb comes first and
  // `result_success = continue` makes the target user's own passdb entry required (no logins as unknown users).
  const master = options.master
    ? `auth_master_user_separator = *
passdb {
  driver = passwd-file
  master = yes
  args = scheme=PLAIN ${runDir}/masters
  result_success = continue
}
`
    : '';
  // https://doc.dovecot.org/2.3/configuration_manual/quota_plugin/: limits come from the userdb extra field
  // `userdb_quota_rule`, so a user's quota is changed by rewriting the passwd-file (re-read when it changes).
  const quota = options.quota
    ? `mail_plugins = $mail_plugins quota
protocol imap {
  mail_plugins = $mail_plugins imap_quota
}
plugin {
  quota = maildir:User quota
}
`
    : '';
  // destinations.md §5.1: own base_dir/state_dir/instance_name so it runs beside any system Dovecot.
  return `${master}${quota}protocols = imap
listen = 127.0.0.1
base_dir = ${runDir}/base
state_dir = ${runDir}/state
instance_name = dovecot-test-${path.basename(runDir)}
log_path = ${runDir}/dovecot.log
info_log_path = ${runDir}/dovecot.log
${options.tls ? `ssl = yes\nssl_cert = <${options.tls.cert}\nssl_key = <${options.tls.key}` : 'ssl = no'}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = ${MAIL_UID}
last_valid_uid = ${MAIL_UID}
mail_location = maildir:${mailRoot}/%u
mail_fsync = optimized
namespace inbox {
  inbox = yes
  separator = ${separator}
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${users}
}
userdb {
  driver = passwd-file
  args = username_format=%u ${users}
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${options.tls ? `${options.tls.port}\n    ssl = yes` : '0'}
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
`;
}

/**
 * Starts a private Dovecot on a free 127.0.0.1 port serving `mailRoot/<user>` for each user (email addresses are fine:
 * `@` is in Dovecot's default `auth_username_chars`). The mail root is chowned to uid 5000 recursively; callers that
 * write into it afterwards as root must expect Dovecot to own the tree.
 */
export async function startDovecot(options: DovecotOptions): Promise<DovecotServer> {
  await ensureDovecotInstalled();
  const binary = (await dovecotBinary()) ?? 'dovecot';
  const separator = options.separator ?? '.';
  const mailRoot = path.resolve(options.mailRoot);
  const password = randomBytes(12).toString('hex');

  const runDir = await mkdtemp(path.join(os.tmpdir(), 'dovecot-run-'));
  // Auth and login processes run as the dovecot/dovenull users and must traverse the run dir.
  await chmod(runDir, 0o755);
  const logFile = path.join(runDir, 'dovecot.log');
  const confFile = path.join(runDir, 'dovecot.conf');
  const usersFile = path.join(runDir, 'users');
  const quotas = new Map(Object.entries(options.quotas ?? {}));
  const masterUser = options.masterUser;
  let usersStamp = 0;
  const writeUsers = async () => {
    const lines = options.users.map((user) => {
      const storage = quotas.get(user);
      const extra = storage === undefined ? '' : `userdb_quota_rule=*:storage=${storage}`;
      return `${user}:{PLAIN}${password}:${MAIL_UID}:${MAIL_UID}::${mailRoot}/${user}::${extra}`;
    });
    // Written to a temporary name and renamed, so the auth process never reads half a file.
    const tmp = `${usersFile}.tmp`;
    await writeFile(tmp, `${lines.join('\n')}\n`, { mode: 0o640 });
    // passwd-file is read by the auth process, which runs as the dovecot user (0640 root:dovecot, §5.1).
    await run('chown', ['root:dovecot', tmp]);
    await chmod(tmp, 0o640);
    // Dovecot notices a changed passwd-file by its mtime in whole seconds (db-passwd-file.c), so a rewrite within
    // the same second as the last one would go unseen: every version gets a later second than the one before.
    usersStamp = Math.max(Math.floor(Date.now() / 1000), usersStamp + 1);
    await utimes(tmp, usersStamp, usersStamp);
    await rename(tmp, usersFile);
  };
  let running: Launched | undefined;
  try {
    await mkdir(mailRoot, { recursive: true });
    await assertTraversable(mailRoot);
    await writeUsers();
    if (masterUser !== undefined) {
      const mastersFile = path.join(runDir, 'masters');
      await writeFile(mastersFile, `${masterUser}:{PLAIN}${password}\n`, { mode: 0o640 });
      await run('chown', ['root:dovecot', mastersFile]);
      await chmod(mastersFile, 0o640);
    }
    await chown(mailRoot, MAIL_UID, MAIL_UID);
    await chownTree(mailRoot);

    const port = await freePort();
    const tlsPort = options.tls ? await freePort() : undefined;
    const certs = options.tls ? await makeCertificates(runDir) : undefined;
    await writeFile(
      confFile,
      configText(runDir, mailRoot, port, separator, {
        master: masterUser !== undefined,
        quota: options.quota === true || quotas.size > 0,
        tls: certs && tlsPort !== undefined ? { port: tlsPort, cert: certs.cert, key: certs.key } : undefined,
      }),
    );
    running = await launch(binary, confFile, port, logFile);

    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      password,
      mailRoot,
      separator,
      master: masterUser === undefined ? undefined : { user: masterUser, password },
      logFile,
      tlsPort,
      caFile: certs?.ca,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (running) await stopChild(running.child, running.exited);
        await rm(runDir, { recursive: true, force: true });
      },
      async restart() {
        if (stopped) throw new Error('Dovecot was stopped');
        if (running) await stopChild(running.child, running.exited);
        running = undefined;
        running = await launch(binary, confFile, port, logFile);
      },
      async setQuota(user: string, storage: string | undefined) {
        if (storage === undefined) quotas.delete(user);
        else quotas.set(user, storage);
        await writeUsers();
        // The auth process stats the passwd-file at most once per second (db-passwd-file.c passwd_file_sync).
        await new Promise((resolve) => setTimeout(resolve, 1100));
      },
    };
  } catch (err) {
    if (running) await stopChild(running.child, running.exited).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
    throw err;
  }
}

interface Launched {
  child: ChildProcess;
  exited: Promise<unknown>;
}

/** Runs `dovecot -F` as our child and waits until it accepts connections on `port`. */
async function launch(binary: string, confFile: string, port: number, logFile: string): Promise<Launched> {
  // Foreground (-F) as our own child: no daemonised master to find by pid file, no inherited pipes keeping
  // execFile waiting, and the process dies with its handle.
  // Its own process group, so a stop reaches the login, imap and auth processes at once instead of through the
  // master, which otherwise lingers for seconds when stopped with sessions open.
  const child = spawn(binary, ['-F', '-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await canConnect(port))) {
    if (exitCode !== undefined || Date.now() > deadline) {
      if (exitCode === undefined) await stopChild(child, exited);
      const why = exitCode !== undefined ? `exited with ${String(exitCode)}` : 'did not accept connections';
      throw new Error(`Dovecot on 127.0.0.1:${port} ${why}: ${stderr}\n${await logTail(logFile)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, exited };
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
        else child.kill(sig);
      } catch {
        child.kill(sig);
      }
    };
    signal('SIGTERM');
    // A Dovecot stopped while still starting (a login process waiting on the stats-writer handshake) takes over 5 s
    // to exit; it is a throwaway server and Maildir is crash-safe, so it gets a short grace period, then SIGKILL.
    const timer = setTimeout(() => signal('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
  // The master exits before its children have finished; a stats or log process still exiting unlinks the sockets
  // of a Dovecot started next on the same base_dir, whose logins then stall for seconds (stats-writer handshake).
  if (child.pid !== undefined) await groupGone(child.pid, STOP_TIMEOUT_MS);
}

/** Waits until no live (non-zombie) process is left in the process group. */
async function groupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let alive = false;
    for (const entry of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      // Fields after the parenthesised command: state, ppid, pgrp (proc(5)).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') {
        alive = true;
        break;
      }
    }
    if (!alive) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
