/**
 * `npm run bench`: end-to-end throughput of the archiver against Dovecot's own import and mbsync on the same items,
 * in one run on this machine (issue 6). See docs/performance.md.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { format } from 'prettier';
import { startSymphonyEmulator, type SymphonyEmulator } from '../../src/emulator/symphony/index.ts';
import { startDovecot, type DovecotServer } from '../../test/helpers/dovecot.ts';
import {
  dovecotConfig,
  dovecotCounts,
  doveadmImport,
  imapLogins,
  inventoryMaildir,
  mbsyncPush,
  sum,
  toolVersions,
  type Inventory,
} from './baselines.ts';
import {
  compiledRuntime,
  findProcess,
  killChildren,
  machineBusyMs,
  processGroupCpuMs,
  reapedChildrenCpuMs,
  runChild,
  tsxRuntime,
} from './processes.ts';
import { measureBigAttachment } from './big-attachment.ts';
import { summariseProfile } from './profile.ts';
import { mb, noiseWarnings, renderReport, type BenchReport, type MethodRow, type Target } from './report.ts';
import type { ArchiveResult, BigAttachmentResult, CycleResult, StagesResult } from './types.ts';

const exec = promisify(execFile);

const USAGE = `Usage: npm run bench -- [options]
  --messages N        messages in the emulated pod (default 20000; --quick 1000)
  --streams N         streams (default 100; --quick 20)
  --users N           users (default 40; --quick 20)
  --seed N            pod seed (default 1)
  --big-attachment MB size of the large-attachment probe (one message, end to end into a Maildir), 0 to skip
                      (default 200; --quick 20)
  --profile           CPU-profile the IMAP archive process (a .cpuprofile beside the JSON)
  --tsx               run the archiver from its TypeScript sources through tsx instead of a build of them
                      (quicker to start; RSS then includes the loader's ~55 MB)
  --imap KEY=VALUE    override an IMAP destination setting, e.g. --imap maxBatchItems=200 (repeatable;
                      the table is then not the defaults' any more, and the JSON says so)
  --json FILE         where to write the results (default bench/results/<timestamp>.json)
  --quick             a small pod, to check the bench itself`;

/** The login the IMAP destination, mbsync and the Dovecot master passdb share. */
const MASTER_USER = 'archiver';
const BOT_USERNAME = 'archiver-bot';
/** Issue 6 targets. */
const TARGET_VS_MBSYNC = 2.5;
const TARGET_VS_DOVEADM = 0.8;
const TARGET_CONVERT_PER_SECOND = 2000;
const TARGET_RSS_MB = 256;
const TARGET_NOTHING_NEW_MS = 2000;
const TARGET_RSS_MESSAGES = 100_000;
const TARGET_ATTACHMENT_MB = 200;
/** Requests a cycle makes whatever the pod's size: login to pod and key manager, session check, stream list. */
const FIXED_REQUESTS = 5;

interface Options {
  messages: number;
  streams: number;
  users: number;
  seed: number;
  bigAttachmentMb: number;
  profile: boolean;
  tsx: boolean;
  /** IMAP destination settings that replace the defaults (config/schema.ts checks them). */
  imap: Record<string, unknown>;
  json: string;
  quick: boolean;
}

/** `key=value`; the value is JSON when it parses as JSON (numbers, booleans), else a string. */
function setting(arg: string): [string, unknown] {
  const at = arg.indexOf('=');
  if (at < 1) throw new Error(`--imap takes KEY=VALUE, not "${arg}"`);
  const raw = arg.slice(at + 1);
  try {
    return [arg.slice(0, at), JSON.parse(raw)];
  } catch {
    return [arg.slice(0, at), raw];
  }
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string' },
      streams: { type: 'string' },
      users: { type: 'string' },
      seed: { type: 'string' },
      'big-attachment': { type: 'string' },
      imap: { type: 'string', multiple: true },
      profile: { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  const int = (name: string, value: string | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer of at least ${min}`);
    return n;
  };
  const stamp = new Date()
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d+Z$/, 'Z');
  return {
    messages: int('messages', values.messages, quick ? 1000 : 20_000, 1),
    streams: int('streams', values.streams, quick ? 20 : 100, 1),
    users: int('users', values.users, quick ? 20 : 40, 3),
    seed: int('seed', values.seed, 1, 0),
    bigAttachmentMb: int('big-attachment', values['big-attachment'], quick ? 20 : TARGET_ATTACHMENT_MB, 0),
    profile: values.profile,
    tsx: values.tsx,
    imap: Object.fromEntries((values.imap ?? []).map(setting)),
    json: path.resolve(values.json ?? path.join('bench', 'results', `${stamp}.json`)),
    quick,
  };
}

/** Last-in, first-out clean-up that runs once, whether the bench finished, failed or was interrupted. */
class Cleanup {
  readonly #steps: (() => Promise<unknown>)[] = [];
  #done = false;

  add(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    killChildren();
    for (const step of this.#steps.reverse()) {
      await step().catch((err: unknown) => console.error(`clean-up: ${err instanceof Error ? err.message : err}`));
    }
  }
}

function progress(message: string): void {
  console.error(`[bench] ${message}`);
}

async function gitState(): Promise<{ commit: string | null; dirty: boolean }> {
  try {
    const commit = (await exec('git', ['rev-parse', '--short', 'HEAD'])).stdout.trim();
    const dirty = (await exec('git', ['status', '--porcelain'])).stdout.trim() !== '';
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: false };
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const cleanup = new Cleanup();
  const interrupted = (signal: NodeJS.Signals) => {
    progress(`${signal}: cleaning up`);
    void cleanup.run().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 0)));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const report = await bench(options, startedAt, cleanup);
    await mkdir(path.dirname(options.json), { recursive: true });
    await writeFile(options.json, await format(JSON.stringify(report), { parser: 'json' }));
    console.log(renderReport(report));
    console.log(`\nResults written to ${path.relative(process.cwd(), options.json)}`);
  } finally {
    await cleanup.run();
  }
}

/** CPU spent while one method ran, split by who spent it. */
interface CpuSplit {
  /** Spawned tools and bench children reaped meanwhile. */
  reapedMs: number;
  serverMs: number | null;
  /** This process: the emulated pod answering the archiver. */
  podMs: number;
  machineMs: number;
}

/** Starts counting CPU by process; `stop` must be called before the server is stopped. */
async function cpuMeter(server?: Server): Promise<{ stop(): Promise<CpuSplit> }> {
  const at = async () => ({
    reaped: await reapedChildrenCpuMs(),
    server: server ? await processGroupCpuMs(server.leader) : 0,
    machine: await machineBusyMs(),
  });
  const pod = process.cpuUsage();
  const before = await at();
  return {
    async stop() {
      const used = process.cpuUsage(pod);
      const after = await at();
      return {
        reapedMs: after.reaped - before.reaped,
        serverMs: server ? after.server - before.server : null,
        podMs: (used.user + used.system) / 1000,
        machineMs: after.machine - before.machine,
      };
    },
  };
}

function methodRow(
  method: string,
  run: { items: number; bytes: number; ms: number; rssKb: number; clientCpuMs?: number; imapLogins?: number },
  cpu: CpuSplit,
): MethodRow {
  const seconds = run.ms / 1000;
  const accounted = cpu.reapedMs + (cpu.serverMs ?? 0) + cpu.podMs;
  return {
    method,
    items: run.items,
    bytes: run.bytes,
    seconds,
    itemsPerSecond: run.items / seconds,
    mbPerSecond: mb(run.bytes) / seconds,
    peakRssMb: run.rssKb / 1024,
    clientCpuSeconds: (run.clientCpuMs ?? cpu.reapedMs) / 1000,
    serverCpuSeconds: cpu.serverMs === null ? null : cpu.serverMs / 1000,
    podCpuSeconds: cpu.podMs / 1000,
    otherCpuSeconds: Math.max(0, cpu.machineMs - accounted) / 1000,
    imapLogins: run.imapLogins ?? null,
    vsDoveadm: null,
    vsMbsync: null,
  };
}

interface Server {
  dovecot: DovecotServer;
  /** Dovecot's master, leader of its process group. */
  leader: number;
}

async function bench(options: Options, startedAt: Date, cleanup: Cleanup): Promise<BenchReport> {
  const loadAtStart = os.loadavg()[0]!;
  const work = await mkdtemp(path.join(os.tmpdir(), 'symphony-bench-'));
  cleanup.add(() => rm(work, { recursive: true, force: true }));
  // Dovecot's mail processes (uid 5000) must traverse into the mail roots below.
  await chmod(work, 0o755);
  const keyPath = path.join(work, 'bot.pem');
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(keyPath, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const [versions, git] = await Promise.all([toolVersions(), gitState()]);
  progress(options.tsx ? 'running the archiver through tsx' : 'building the archiver');
  const runtime = options.tsx ? tsxRuntime() : await compiledRuntime(path.join(work, 'build'));

  progress(`generating a pod of ${options.messages} messages, ${options.streams} streams, ${options.users} users`);
  const generateStart = performance.now();
  const emulator: SymphonyEmulator = await startSymphonyEmulator({
    seed: options.seed,
    users: options.users,
    streams: options.streams,
    messages: options.messages,
    botUsername: BOT_USERNAME,
    botPublicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  });
  cleanup.add(() => emulator.close());
  const generateSeconds = (performance.now() - generateStart) / 1000;
  const truth = emulator.groundTruth();
  const mailboxes = Object.keys(truth.mailboxes).sort();
  const expectedItems = Object.values(truth.mailboxes).reduce((n, ids) => n + ids.length, 0);
  const source = { kind: 'symphony', podUrl: emulator.url, username: BOT_USERNAME, privateKeyPath: 'bot.pem' };

  progress('fetch only, then convert only');
  const stages = await runChild<StagesResult>(runtime, {
    kind: 'stages',
    podUrl: emulator.url,
    username: BOT_USERNAME,
    privateKeyPath: keyPath,
  });

  progress(`archiving into a Maildir (${expectedItems} items expected)`);
  const maildirRoot = path.join(work, 'maildir');
  let meter = await cpuMeter();
  const maildir = await runChild<ArchiveResult>(runtime, {
    kind: 'archive',
    config: {
      dataDir: 'data-maildir',
      connectors: [{ id: 'bench-maildir', source, destination: { kind: 'maildir', root: 'maildir' } }],
    },
    baseDir: work,
    connectorId: 'bench-maildir',
    cycles: 1,
  });
  const maildirCpu = await meter.stop();
  const inventory: Inventory = await inventoryMaildir(maildirRoot);
  if (inventory.totalItems !== expectedItems) {
    throw new Error(`the Maildir run filed ${inventory.totalItems} items, the pod's ground truth has ${expectedItems}`);
  }
  const bytes = inventory.totalBytes;

  progress('archiving into Dovecot over IMAP, then a second cycle with nothing new');
  const imapServer = await startServer(path.join(work, 'imap-mail'), mailboxes, cleanup);
  const passwordFile = path.join(work, 'master.pass');
  await writeFile(passwordFile, imapServer.dovecot.master!.password, { mode: 0o600 });
  const profile = options.profile ? options.json.replace(/\.json$/, '') + '.cpuprofile' : undefined;
  if (profile) await mkdir(path.dirname(profile), { recursive: true });
  meter = await cpuMeter(imapServer);
  const imap = await runChild<ArchiveResult>(
    runtime,
    {
      kind: 'archive',
      config: {
        dataDir: 'data-imap',
        connectors: [
          {
            id: 'bench-imap',
            source,
            destination: {
              kind: 'imap',
              host: imapServer.dovecot.host,
              port: imapServer.dovecot.port,
              security: 'none',
              auth: { method: 'master', masterUser: MASTER_USER, passwordFile: 'master.pass' },
              ...options.imap,
            },
          },
        ],
      },
      baseDir: work,
      connectorId: 'bench-imap',
      cycles: 2,
    },
    profile ? { profile } : {},
  );
  const imapCpu = await meter.stop();
  const [first, second] = imap.cycles as [CycleResult, CycleResult];
  const imapHeld = sum(await dovecotCounts(imapServer.dovecot));
  const imapSessions = await imapLogins(imapServer.dovecot);
  if (first.run.delivered !== expectedItems || imapHeld !== expectedItems) {
    throw new Error(`IMAP run delivered ${first.run.delivered}, Dovecot holds ${imapHeld}, expected ${expectedItems}`);
  }
  await stopServer(imapServer);

  // doveadm import runs as the mail user (uid 5000), so the pre-rendered tree must be theirs to read.
  await exec('chown', ['-R', '5000:5000', maildirRoot]);

  // mbsync goes first: doveadm leaves index files in the source folders, and mbsync waits out a second on any
  // folder changed within the last second before it assigns UIDs there.
  progress('baseline: mbsync pushing the pre-rendered Maildir');
  const mbsyncServer = await startServer(path.join(work, 'mbsync-mail'), mailboxes, cleanup);
  meter = await cpuMeter(mbsyncServer);
  const mbsync = await mbsyncPush(mbsyncServer.dovecot, maildirRoot, mailboxes, path.join(work, 'mbsyncrc'));
  const mbsyncCpu = await meter.stop();
  const mbsyncSessions = await imapLogins(mbsyncServer.dovecot);
  checkBaseline('mbsync', await dovecotCounts(mbsyncServer.dovecot), expectedItems);
  await stopServer(mbsyncServer);

  progress('baseline: doveadm import of the pre-rendered Maildir');
  const doveadmServer = await startServer(path.join(work, 'doveadm-mail'), mailboxes, cleanup);
  meter = await cpuMeter(doveadmServer);
  const doveadm = await doveadmImport(doveadmServer.dovecot, maildirRoot, mailboxes);
  const doveadmCpu = await meter.stop();
  checkBaseline('doveadm import', await dovecotCounts(doveadmServer.dovecot), expectedItems);
  await stopServer(doveadmServer);

  let big: BigAttachmentResult | undefined;
  if (options.bigAttachmentMb > 0) {
    progress(`one message with a ${options.bigAttachmentMb} MB attachment, end to end into a Maildir`);
    big = await measureBigAttachment(runtime, {
      megabytes: options.bigAttachmentMb,
      work,
      botUsername: BOT_USERNAME,
      botPublicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      privateKeyPath: 'bot.pem',
    });
  }

  const methods = [
    methodRow(
      'archiver → Dovecot over IMAP (end to end)',
      {
        items: first.run.delivered,
        bytes,
        ms: first.durationMs,
        rssKb: imap.maxRssKb,
        clientCpuMs: imap.cpuMs,
        imapLogins: imapSessions,
      },
      imapCpu,
    ),
    methodRow(
      'archiver → Maildir (end to end)',
      {
        items: maildir.cycles[0]!.run.delivered,
        bytes,
        ms: maildir.cycles[0]!.durationMs,
        rssKb: maildir.maxRssKb,
        clientCpuMs: maildir.cpuMs,
      },
      maildirCpu,
    ),
    methodRow(
      'doveadm import (pre-rendered Maildir)',
      { items: expectedItems, bytes, ms: doveadm.ms, rssKb: doveadm.peakRssKb },
      doveadmCpu,
    ),
    methodRow(
      'mbsync push over IMAP (pre-rendered Maildir)',
      { items: expectedItems, bytes, ms: mbsync.ms, rssKb: mbsync.peakRssKb, imapLogins: mbsyncSessions },
      mbsyncCpu,
    ),
  ];
  const doveadmRate = methods[2]!.itemsPerSecond;
  const mbsyncRate = methods[3]!.itemsPerSecond;
  for (const m of methods) {
    m.vsDoveadm = m.itemsPerSecond / doveadmRate;
    m.vsMbsync = m.itemsPerSecond / mbsyncRate;
  }
  const ours = methods[0]!;
  const convertPerSecond = stages.convert.messages / (stages.convert.wallMs / 1000);
  const streams = second.run.streams;
  const atScale = options.messages >= TARGET_RSS_MESSAGES;
  const targets: Target[] = [
    {
      name: 'end to end vs mbsync',
      goal: `≥ ${TARGET_VS_MBSYNC}×`,
      measured: `${ours.vsMbsync!.toFixed(2)}×`,
      met: ours.vsMbsync! >= TARGET_VS_MBSYNC,
    },
    {
      name: 'end to end vs doveadm import',
      goal: `≥ ${TARGET_VS_DOVEADM}×`,
      measured: `${ours.vsDoveadm!.toFixed(2)}×`,
      met: ours.vsDoveadm! >= TARGET_VS_DOVEADM,
    },
    {
      name: 'conversion on one core',
      goal: `≥ ${TARGET_CONVERT_PER_SECOND} msg/s`,
      measured: `${Math.round(convertPerSecond)} msg/s`,
      met: convertPerSecond >= TARGET_CONVERT_PER_SECOND,
    },
    {
      name: 'peak RSS, whole history',
      goal: `< ${TARGET_RSS_MB} MB at ${TARGET_RSS_MESSAGES.toLocaleString('en-US')} messages`,
      measured: `${Math.round(ours.peakRssMb)} MB at ${options.messages.toLocaleString('en-US')} messages`,
      met: ours.peakRssMb < TARGET_RSS_MB,
      ...(atScale ? {} : { note: 'smaller pod than the target names' }),
    },
    {
      name: 'peak RSS, large attachment',
      goal: `< ${TARGET_RSS_MB} MB with a ${TARGET_ATTACHMENT_MB} MB attachment`,
      measured: big ? `${Math.round(big.maxRssKb / 1024)} MB with ${options.bigAttachmentMb} MB` : '–',
      met: big ? big.maxRssKb / 1024 < TARGET_RSS_MB : null,
      note: 'end to end: download, decode, convert, stage, Maildir',
    },
    {
      name: 'nothing-new cycle',
      goal: `< ${TARGET_NOTHING_NEW_MS / 1000} s and ≤ 1 request per active stream`,
      measured: `${(second.durationMs / 1000).toFixed(2)} s, ${second.source.requests} requests for ${streams} streams`,
      met: second.durationMs < TARGET_NOTHING_NEW_MS && second.source.requests <= streams + FIXED_REQUESTS,
      ...(atScale ? {} : { note: 'smaller history than the target names' }),
    },
  ];

  const cpus = os.cpus();
  return {
    version: 1,
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    ...git,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: {
      cpus: cpus.length,
      cpuModel: cpus[0]?.model.trim() ?? 'unknown',
      memoryGb: os.totalmem() / 1024 ** 3,
      node: process.version,
      dovecot: versions.dovecot,
      mbsync: versions.mbsync,
      loadAverage: [loadAtStart, os.loadavg()[0]!],
    },
    runtime: runtime.kind,
    imapOverrides: options.imap,
    pod: {
      seed: options.seed,
      users: options.users,
      streams: options.streams,
      messages: truth.messages,
      mailboxes: mailboxes.length,
      generateSeconds,
    },
    items: { count: inventory.totalItems, bytes, meanBytes: bytes / inventory.totalItems },
    methods,
    stages: {
      fetch: {
        seconds: stages.fetch.ms / 1000,
        streams: stages.fetch.streams,
        messages: stages.fetch.messages,
        messagesPerSecond: stages.fetch.messages / (stages.fetch.ms / 1000),
        attachments: stages.fetch.attachments,
        requests: stages.fetch.requests,
      },
      convert: {
        messages: stages.convert.messages,
        failed: stages.convert.failed,
        wallSeconds: stages.convert.wallMs / 1000,
        cpuSeconds: stages.convert.cpuMs / 1000,
        messagesPerSecond: convertPerSecond,
        mbPerSecond: mb(stages.convert.bytes) / (stages.convert.wallMs / 1000),
      },
      secondCycle: {
        seconds: second.durationMs / 1000,
        requests: second.source.requests,
        streams,
        delivered: second.run.delivered,
      },
      archiverMemory: {
        startRssMb: imap.startRssKb / 1024,
        peakRssMb: imap.maxRssKb / 1024,
        peakHeapUsedMb: imap.peakHeapUsedKb / 1024,
        peakExternalMb: imap.peakExternalKb / 1024,
      },
      bigAttachment: big
        ? {
            attachmentMb: mb(big.attachmentBytes),
            itemMb: mb(big.itemBytes),
            seconds: big.ms / 1000,
            startRssMb: big.startRssKb / 1024,
            peakRssMb: big.maxRssKb / 1024,
          }
        : null,
    },
    targets,
    warnings: noiseWarnings(methods, cpus.length),
    profile: profile ? await summariseProfile(profile, runtime.root) : null,
  };
}

async function startServer(mailRoot: string, users: string[], cleanup: Cleanup): Promise<Server> {
  const dovecot = await startDovecot({ mailRoot, users, masterUser: MASTER_USER });
  const server = { dovecot, leader: 0 };
  cleanup.add(() => stopServer(server));
  const leader = await findProcess(dovecotConfig(dovecot));
  if (leader === undefined) throw new Error(`no Dovecot master process for ${dovecotConfig(dovecot)}`);
  server.leader = leader;
  return server;
}

/** Stops a Dovecot and frees its mail (a bench of 100,000 messages leaves half a million files per server). */
async function stopServer(server: Server): Promise<void> {
  await server.dovecot.stop();
  await rm(server.dovecot.mailRoot, { recursive: true, force: true });
}

function checkBaseline(name: string, counts: Map<string, number>, expected: number): void {
  const held = sum(counts);
  if (held !== expected) throw new Error(`${name} left ${held} items in Dovecot, expected ${expected}`);
}

await main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
