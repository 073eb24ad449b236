import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildResult, ChildTask } from './types.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** A child that has reported but not exited by then holds a leaked handle; the result is already in hand. */
const EXIT_GRACE_MS = 30_000;
/**
 * The bench shares the machine with what it measures: a synchronous read of a /proc file every 50 ms costs next to
 * nothing, where a promise-based one as often as every 20 ms showed up as seconds of CPU against the baselines.
 */
const RSS_POLL_MS = 50;

/** Children still running, so an interrupted bench can end them instead of leaving them behind. */
const live = new Set<ChildProcess>();

export function killChildren(): void {
  for (const child of live) child.kill('SIGKILL');
}

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** How child processes run the archiver: the TypeScript sources through tsx, or a build of them. */
export interface ChildRuntime {
  kind: 'compiled' | 'tsx';
  entry: string;
  execArgv: string[];
  /** Directory that stands for the repository in the child's file URLs (profiles name files under it). */
  root: string;
}

export function tsxRuntime(): ChildRuntime {
  return {
    kind: 'tsx',
    entry: path.join(REPO, 'scripts/bench/child.ts'),
    execArgv: ['--import', 'tsx', ...productNodeFlags()],
    root: REPO,
  };
}

/**
 * Builds child.ts and everything it imports into `outDir` as JavaScript, so the measured process is the archiver as
 * shipped: under tsx the loader alone adds about 55 MB of RSS and its own frames to the profile. Type-checking is
 * left to `npm run typecheck` (`noCheck`), which keeps this to a few seconds.
 */
export async function compiledRuntime(outDir: string): Promise<ChildRuntime> {
  const tsconfig = path.join(outDir, 'tsconfig.json');
  await mkdir(outDir, { recursive: true });
  await writeFile(
    tsconfig,
    JSON.stringify({
      extends: path.join(REPO, 'tsconfig.json'),
      compilerOptions: {
        outDir,
        rootDir: REPO,
        noEmit: false,
        noCheck: true,
        sourceMap: false,
        declaration: false,
        // `types` is looked up from the config file's directory, which is not under the repository.
        typeRoots: [path.join(REPO, 'node_modules/@types')],
      },
      files: [path.join(REPO, 'scripts/bench/child.ts')],
      include: [],
    }),
  );
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  await runCommand(process.execPath, [tsc, '-p', tsconfig]);
  // The build sits outside the repository: it needs the dependencies, the SQL migrations the store reads beside
  // its sources (src/store/sqlite/migrate.ts) and the package's module type.
  await symlink(path.join(REPO, 'node_modules'), path.join(outDir, 'node_modules'));
  await symlink(path.join(REPO, 'migrations'), path.join(outDir, 'migrations'));
  await writeFile(path.join(outDir, 'package.json'), JSON.stringify({ type: 'module' }));
  return {
    kind: 'compiled',
    entry: path.join(outDir, 'scripts/bench/child.js'),
    execArgv: productNodeFlags(),
    root: outDir,
  };
}

/** The V8 flags the installed command runs with (its `#!/usr/bin/env -S node …` line), so the bench measures those. */
export function productNodeFlags(): string[] {
  const first = readFileSync(path.join(REPO, 'bin/symphony-archiver.js'), 'utf8').split('\n', 1)[0]!;
  const flags = /^#!\/usr\/bin\/env -S node((?: --[a-z-]+=\S+)*)$/.exec(first);
  if (!flags) throw new Error(`bin/symphony-archiver.js starts with an unexpected line: ${first}`);
  return flags[1]!.split(' ').filter(Boolean);
}

/** Runs one task in a fresh Node process; with `profile`, V8 writes a CPU profile to that file on exit. */
export function runChild<R extends ChildResult>(
  runtime: ChildRuntime,
  task: ChildTask,
  options: { profile?: string } = {},
): Promise<R> {
  const execArgv = [...runtime.execArgv];
  if (options.profile) {
    execArgv.push('--cpu-prof', '--cpu-prof-dir', path.dirname(options.profile));
    execArgv.push('--cpu-prof-name', path.basename(options.profile));
  }
  const child = fork(runtime.entry, [JSON.stringify(task)], { execArgv, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  track(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise<R>((resolve, reject) => {
    let result: R | undefined;
    let timer: NodeJS.Timeout | undefined;
    child.on('message', (message) => {
      result = message as R;
      timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result) resolve(result);
      else reject(new Error(`bench child (${task.kind}) exited with ${signal ?? code}: ${stderr.trim()}`));
    });
  });
}

export interface CommandResult {
  ms: number;
  /** Highest VmHWM seen while polling /proc: the client's own peak, sampled every 50 ms. */
  peakRssKb: number;
  stdout: string;
  stderr: string;
}

function highWaterKb(pid: number): number {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // Exited between polls.
  }
  return Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

/** Runs a command to completion, timing it and sampling its peak RSS; a non-zero exit is an error unless `check` is false. */
export function runCommand(command: string, args: string[], options: { check?: boolean } = {}): Promise<CommandResult> {
  const started = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let stdout = '';
  let stderr = '';
  let peakRssKb = 0;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const poll = setInterval(() => {
    if (child.pid !== undefined) peakRssKb = Math.max(peakRssKb, highWaterKb(child.pid));
  }, RSS_POLL_MS);
  return new Promise((resolve, reject) => {
    child.on('error', (err) => {
      clearInterval(poll);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearInterval(poll);
      const ms = performance.now() - started;
      if (code === 0 || options.check === false) resolve({ ms, peakRssKb, stdout, stderr });
      else {
        // tsc reports on stdout, most tools on stderr.
        const output = `${stderr}\n${stdout}`.trim();
        reject(new Error(`${command} ${args.join(' ')} exited with ${signal ?? code}: ${output}`));
      }
    });
  });
}

/** Fields of /proc/<pid>/stat after the command name, 0 = state (proc(5) field 3). */
async function statFields(pid: number | 'self'): Promise<string[] | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** USER_HZ is 100 on every Linux the bench runs on. */
const TICK_MS = 10;
const PGRP = 2;
const UTIME = 11;
const STIME = 12;
const CUTIME = 13;
const CSTIME = 14;

function ticks(fields: string[], ...at: number[]): number {
  return at.reduce((n, i) => n + Number(fields[i] ?? 0), 0) * TICK_MS;
}

/** CPU of every child this process has reaped so far, in ms: spawned tools are accounted once they exit. */
export async function reapedChildrenCpuMs(): Promise<number> {
  const self = await statFields('self');
  return self ? ticks(self, CUTIME, CSTIME) : 0;
}

/**
 * CPU used so far by a server started in its own process group (Dovecot's master and its login, imap and auth
 * processes), in ms: the live ones, plus what the leader has reaped of those that already exited.
 */
export async function processGroupCpuMs(leader: number): Promise<number> {
  let ms = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = await statFields(Number(entry));
    if (!fields || Number(fields[PGRP]) !== leader) continue;
    ms += ticks(fields, UTIME, STIME);
    if (Number(entry) === leader) ms += ticks(fields, CUTIME, CSTIME);
  }
  return ms;
}

/** The pid of the process whose command line contains `needle` (a config file path only one server uses). */
export async function findProcess(needle: string): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(needle)) return Number(entry);
  }
  return undefined;
}

/** Busy CPU time of the whole machine so far (/proc/stat, all cores), in ms. */
export async function machineBusyMs(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal …; idle and iowait are the not-busy ones (proc(5)).
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return fields.reduce((sum, t, i) => (i === 3 || i === 4 ? sum : sum + t), 0) * TICK_MS;
}
