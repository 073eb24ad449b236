import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.ts';

const run = promisify(execFile);

/**
 * A throwaway Cyrus IMAP 3.6 server (destinations.md §5.2), the second server the IMAP writer is tested against:
 * it answers CREATE of an existing mailbox with a bare `NO Mailbox already exists`, honours future INTERNALDATEs
 * and advertises APPENDLIMIT.
 */
export interface CyrusServer {
  host: '127.0.0.1';
  port: number;
  /** Password of every user and of the admin. */
  password: string;
  /** Member of `admins`: may act as any user through the SASL PLAIN authorization identity. */
  admin: string;
  separator: '.' | '/';
  stop(): Promise<void>;
}

/**
 * Where the extracted packages are kept between runs. Installing `cyrus-imapd` would remove `dovecot-imapd` (both
 * provide imap-server, destinations.md §5.2), so the binaries are unpacked with `dpkg -x` instead.
 */
const CACHE_DIR = process.env.SYMPHONY_TEST_CYRUS_DIR ?? path.join(os.tmpdir(), 'symphony-archiver-cyrus-3.6');
const PACKAGES = ['cyrus-imapd', 'cyrus-common', 'sasl2-bin'];
const LIB_DIRS = ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu', 'usr/lib', 'lib'];
const BINARIES = [
  'usr/lib/cyrus/bin/master',
  'usr/lib/cyrus/bin/imapd',
  'usr/lib/cyrus/bin/ctl_cyrusdb',
  'usr/sbin/saslpasswd2',
];
const START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 3_000;

let preparing: Promise<string> | undefined;

function libraryPath(root: string): string {
  return LIB_DIRS.map((d) => path.join(root, d)).join(':');
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** Shared libraries the extracted binaries cannot find (ldd "not found" lines). */
async function missingLibraries(root: string): Promise<string[]> {
  const missing = new Set<string>();
  for (const bin of BINARIES) {
    const { stdout } = await run('ldd', [path.join(root, bin)], {
      env: { ...process.env, LD_LIBRARY_PATH: libraryPath(root) },
    });
    for (const m of stdout.matchAll(/^\s*(\S+) => not found/gm)) if (m[1]) missing.add(m[1]);
  }
  return [...missing];
}

async function aptDownload(dir: string, packages: string[]): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await run('apt-get', ['download', ...packages], { cwd: dir, env, maxBuffer: 64 * 1024 * 1024 });
  } catch {
    // An empty or stale package list is the usual cause; refresh it once.
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, maxBuffer: 64 * 1024 * 1024 });
    await run('apt-get', ['download', ...packages], { cwd: dir, env, maxBuffer: 64 * 1024 * 1024 });
  }
}

/** `lib*` packages the downloaded .debs depend on that are not installed. */
async function uninstalledLibraryDepends(dir: string): Promise<string[]> {
  const wanted = new Set<string>();
  for (const deb of (await readdir(dir)).filter((f) => f.endsWith('.deb'))) {
    const { stdout } = await run('dpkg-deb', ['-f', path.join(dir, deb), 'Depends']);
    for (const alternative of stdout.split(',')) {
      const name = alternative.trim().split(/[\s|(]/)[0];
      if (name && /^lib/.test(name)) wanted.add(name);
    }
  }
  const out: string[] = [];
  for (const name of wanted) {
    try {
      const { stdout } = await run('dpkg-query', ['-W', '-f=${Status}', name]);
      if (!stdout.includes('install ok installed')) out.push(name);
    } catch {
      out.push(name);
    }
  }
  return out;
}

/**
 * Downloads Cyrus 3.6 and the SASL tools from the Debian archive and unpacks them (with any library they need that
 * is not installed) into the cache directory, once. Returns the unpacked root.
 */
export async function ensureCyrusUnpacked(): Promise<string> {
  const root = path.join(CACHE_DIR, 'root');
  if ((await exists(path.join(root, BINARIES[1] as string))) && (await missingLibraries(root)).length === 0) {
    return root;
  }
  preparing ??= (async () => {
    await mkdir(CACHE_DIR, { recursive: true });
    const work = await mkdtemp(path.join(CACHE_DIR, 'download-'));
    try {
      const debs = path.join(work, 'debs');
      const staged = path.join(work, 'root');
      await mkdir(debs);
      // apt's download sandbox user must be able to write here.
      await chmod(work, 0o755);
      await chmod(debs, 0o777);
      await aptDownload(debs, PACKAGES);
      let extracted = new Set<string>();
      const extractAll = async () => {
        for (const deb of (await readdir(debs)).filter((f) => f.endsWith('.deb'))) {
          if (extracted.has(deb)) continue;
          await run('dpkg', ['-x', path.join(debs, deb), staged]);
          extracted = new Set([...extracted, deb]);
        }
      };
      await extractAll();
      if ((await missingLibraries(staged)).length > 0) {
        const libs = await uninstalledLibraryDepends(debs);
        if (libs.length > 0) await aptDownload(debs, libs);
        await extractAll();
      }
      const missing = await missingLibraries(staged);
      if (missing.length > 0) {
        throw new Error(`Cyrus binaries unpacked to ${staged} still miss shared libraries: ${missing.join(', ')}`);
      }
      await rm(root, { recursive: true, force: true });
      await rename(staged, root);
      return root;
    } catch (err) {
      preparing = undefined;
      const detail = err instanceof Error ? err.message : String(err);
      throw new Error(
        `Could not prepare Cyrus IMAP from the Debian archive (apt-get download ${PACKAGES.join(' ')} + dpkg -x; needs network to the archive): ${detail}`,
        { cause: err },
      );
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  })();
  return preparing;
}

/** Cyrus's master drops privileges to the compiled-in user `cyrus` (group `mail`); create it when missing. */
async function ensureCyrusUser(): Promise<void> {
  try {
    await run('id', ['-u', 'cyrus']);
    return;
  } catch {
    // Missing: created below.
  }
  try {
    await run('useradd', [
      '--system',
      '--gid',
      'mail',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      'cyrus',
    ]);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(`Cyrus needs a system user "cyrus" in group "mail" and useradd failed (needs root): ${detail}`);
  }
}

/** Resolves true once the server sends an IMAP greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => finish(false));
    socket.once('data', (chunk: Buffer) => finish(chunk.toString('latin1').startsWith('* OK')));
    socket.once('error', () => finish(false));
  });
}

/**
 * Starts Cyrus on a free 127.0.0.1 port with a throwaway config and spool. Users log in as `<local>@<domain>`
 * (`virtdomains: userid`), with SASL passwords in a private sasldb. Throws with a clear message when Cyrus cannot be
 * prepared or does not come up; nothing is skipped.
 */
export async function startCyrus(options: {
  users: string[];
  separator?: '.' | '/';
  admin?: string;
}): Promise<CyrusServer> {
  const root = await ensureCyrusUnpacked();
  await ensureCyrusUser();
  const separator = options.separator ?? '.';
  const admin = options.admin ?? 'cyrusadmin';
  const password = randomBytes(12).toString('hex');
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'cyrus-run-'));
  const bin = path.join(root, 'usr/lib/cyrus/bin');
  const conf = path.join(runDir, 'imapd.conf');
  const env = { ...process.env, LD_LIBRARY_PATH: libraryPath(root) };
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> | undefined;
  try {
    for (const d of ['conf', 'spool', 'run/socket', 'run/proc', 'run/lock']) {
      await mkdir(path.join(runDir, d), { recursive: true });
    }
    const port = await freePort();
    // destinations.md §5.2. Every path is private to this instance, so it runs beside any other Cyrus or Dovecot.
    await writeFile(
      conf,
      [
        `configdirectory: ${runDir}/conf`,
        'defaultpartition: default',
        `partition-default: ${runDir}/spool`,
        `proc_path: ${runDir}/run/proc`,
        `mboxname_lockpath: ${runDir}/run/lock`,
        `lmtpsocket: ${runDir}/run/socket/lmtp`,
        `idlesocket: ${runDir}/run/socket/idle`,
        `notifysocket: ${runDir}/run/socket/notify`,
        'servername: localhost',
        `admins: ${admin}`,
        'allowplaintext: yes',
        'sasl_pwcheck_method: auxprop',
        'sasl_auxprop_plugin: sasldb',
        `sasl_sasldb_path: ${runDir}/sasldb2`,
        'sasl_mech_list: PLAIN LOGIN',
        // Logins are email addresses: the domain part selects a virtual domain and the SASL realm.
        'virtdomains: userid',
        'autocreate_quota: 0',
        'autocreate_post: yes',
        `unixhierarchysep: ${separator === '/' ? 'yes' : 'no'}`,
        '',
      ].join('\n'),
    );
    // Every cmd carries -C: the master's own -C is not passed on, and imapd would read /etc/imapd.conf (§5.2).
    // One entry per line: the master's parser ignored entries written on the same line as the brace.
    await writeFile(
      path.join(runDir, 'cyrus.conf'),
      `START {
  recover cmd="${bin}/ctl_cyrusdb -C ${conf} -r"
}
SERVICES {
  imap cmd="${bin}/imapd -C ${conf}" listen="127.0.0.1:${port}" prefork=0 maxchild=50
}
EVENTS {
  checkpoint cmd="${bin}/ctl_cyrusdb -C ${conf} -c" period=30
}
DAEMON {
}
`,
    );
    const saslpasswd = path.join(root, 'usr/sbin/saslpasswd2');
    for (const user of [...options.users, admin]) {
      const at = user.lastIndexOf('@');
      const [name, realm] = at > 0 ? [user.slice(0, at), user.slice(at + 1)] : [user, 'localhost'];
      await new Promise<void>((resolve, reject) => {
        const p = spawn(saslpasswd, ['-c', '-p', '-f', path.join(runDir, 'sasldb2'), '-u', realm, name], {
          env,
          stdio: ['pipe', 'ignore', 'pipe'],
        });
        let stderr = '';
        p.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
        p.on('error', reject);
        p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`saslpasswd2 ${user}: ${stderr}`))));
        p.stdin?.end(password);
      });
    }
    await run('chown', ['-R', 'cyrus:mail', runDir]);
    await chmod(runDir, 0o755);

    const spawned = spawn(
      path.join(bin, 'master'),
      ['-C', conf, '-M', path.join(runDir, 'cyrus.conf'), '-p', path.join(runDir, 'run/master.pid')],
      { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    child = spawned;
    let stderr = '';
    spawned.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    exited = new Promise((resolve) => spawned.once('exit', resolve));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await greets(port))) {
      if (spawned.exitCode !== null || Date.now() > deadline) {
        throw new Error(
          `Cyrus master (${path.join(bin, 'master')}, config ${conf}) ${spawned.exitCode !== null ? `exited with ${spawned.exitCode}` : 'did not greet'} on 127.0.0.1:${port}; Cyrus logs only to syslog (/dev/log). ${stderr}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      password,
      admin,
      separator,
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopGroup(spawned, exited as Promise<unknown>);
        await rm(runDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (child && exited) await stopGroup(child, exited).catch(() => undefined);
    await rm(runDir, { recursive: true, force: true });
    throw err;
  }
}

async function stopGroup(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      child.kill(sig);
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}
