import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway Dovecot 2.3 IMAP server (destinations.md §5.1) serving Maildir++ trees under `mailRoot/<user>`. */
export interface DovecotServer {
  host: '127.0.0.1';
  port: number;
  /** Password of every user. */
  password: string;
  mailRoot: string;
  separator: '.' | '/';
  stop(): Promise<void>;
}

/** The uid/gid the mail files belong to; `first_valid_uid` keeps Dovecot from serving any other. */
const MAIL_UID = 5000;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

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

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
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

function configText(runDir: string, mailRoot: string, port: number, separator: '.' | '/'): string {
  const users = path.join(runDir, 'users');
  // destinations.md §5.1: own base_dir/state_dir/instance_name so it runs beside any system Dovecot.
  return `protocols = imap
listen = 127.0.0.1
base_dir = ${runDir}/base
state_dir = ${runDir}/state
instance_name = dovecot-test-${path.basename(runDir)}
log_path = ${runDir}/dovecot.log
info_log_path = ${runDir}/dovecot.log
ssl = no
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
    port = 0
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
export async function startDovecot(options: {
  mailRoot: string;
  users: string[];
  separator?: '.' | '/';
}): Promise<DovecotServer> {
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
  let master: ChildProcess | undefined;
  try {
    await mkdir(mailRoot, { recursive: true });
    await assertTraversable(mailRoot);
    const lines = options.users.map(
      (user) => `${user}:{PLAIN}${password}:${MAIL_UID}:${MAIL_UID}::${mailRoot}/${user}::`,
    );
    await writeFile(usersFile, `${lines.join('\n')}\n`, { mode: 0o640 });
    // passwd-file is read by the auth process, which runs as the dovecot user (0640 root:dovecot, §5.1).
    await run('chown', ['root:dovecot', usersFile]);
    await chmod(usersFile, 0o640);
    await chown(mailRoot, MAIL_UID, MAIL_UID);
    await chownTree(mailRoot);

    const port = await freePort();
    await writeFile(confFile, configText(runDir, mailRoot, port, separator));
    // Foreground (-F) as our own child: no daemonised master to find by pid file, no inherited pipes keeping
    // execFile waiting, and the process dies with its handle.
    const child = spawn(binary, ['-F', '-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    master = child;
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
        const why = exitCode !== undefined ? `exited with ${String(exitCode)}` : 'did not accept connections';
        throw new Error(`Dovecot on 127.0.0.1:${port} ${why}: ${stderr}\n${await logTail(logFile)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      password,
      mailRoot,
      separator,
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopAndClean(child, exited, runDir);
      },
    };
  } catch (err) {
    if (master) await stopAndClean(master, undefined, runDir).catch(() => undefined);
    else await rm(runDir, { recursive: true, force: true });
    throw err;
  }
}

async function stopAndClean(child: ChildProcess, exited: Promise<unknown> | undefined, runDir: string): Promise<void> {
  const done = exited ?? new Promise((resolve) => child.once('exit', resolve));
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await done;
    clearTimeout(timer);
  }
  await rm(runDir, { recursive: true, force: true });
}
