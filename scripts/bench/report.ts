import type { ProfileSummary } from './profile.ts';

/** One way of getting the same items into mailboxes, measured in the same run. */
export interface MethodRow {
  method: string;
  items: number;
  bytes: number;
  seconds: number;
  itemsPerSecond: number;
  mbPerSecond: number;
  /** The client process only (the archiver, doveadm, mbsync); the server's memory is not counted for anyone. */
  peakRssMb: number;
  /** CPU of the client process(es): the archiver's first cycle, doveadm, mbsync. */
  clientCpuSeconds: number;
  /** CPU of the Dovecot serving it (null: no server involved). */
  serverCpuSeconds: number | null;
  /** CPU of the bench process meanwhile, i.e. the emulated pod serving the archiver (≈ 0 for the baselines). */
  podCpuSeconds: number;
  /** Sessions Dovecot logged in (null: no IMAP involved). */
  imapLogins: number | null;
  /** Busy CPU of the rest of the machine meanwhile (kernel threads, anything else running): noise when large. */
  otherCpuSeconds: number;
  vsDoveadm: number | null;
  vsMbsync: number | null;
}

export interface Target {
  name: string;
  goal: string;
  measured: string;
  /** null: not measured in this run. */
  met: boolean | null;
  note?: string;
}

export interface BenchReport {
  version: 1;
  startedAt: string;
  durationSeconds: number;
  commit: string | null;
  /** Uncommitted changes in the tree when the bench ran. */
  dirty: boolean;
  command: string;
  /** How the archiver ran: a build of the sources (as shipped) or the sources through tsx. */
  runtime: 'compiled' | 'tsx';
  /** IMAP destination settings changed from their defaults for this run (`--imap`). */
  imapOverrides: Record<string, unknown>;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGb: number;
    node: string;
    dovecot: string;
    mbsync: string;
    /** 1-minute load average when the bench started and ended: above ~0.5 the machine was not idle. */
    loadAverage: [number, number];
  };
  pod: { seed: number; users: number; streams: number; messages: number; mailboxes: number; generateSeconds: number };
  items: { count: number; bytes: number; meanBytes: number };
  methods: MethodRow[];
  stages: {
    fetch: {
      seconds: number;
      streams: number;
      messages: number;
      messagesPerSecond: number;
      attachments: number;
      requests: number;
    };
    convert: {
      messages: number;
      failed: number;
      wallSeconds: number;
      cpuSeconds: number;
      messagesPerSecond: number;
      mbPerSecond: number;
    };
    secondCycle: { seconds: number; requests: number; streams: number; delivered: number };
    /** The IMAP archive process: RSS once its modules are loaded, and peaks sampled during the first cycle. */
    archiverMemory: { startRssMb: number; peakRssMb: number; peakHeapUsedMb: number; peakExternalMb: number };
    bigAttachment: {
      attachmentMb: number;
      itemMb: number;
      seconds: number;
      startRssMb: number;
      peakRssMb: number;
    } | null;
  };
  targets: Target[];
  /** Methods during which the rest of the machine was busy enough to skew the ratios. */
  warnings: string[];
  profile: ProfileSummary | null;
}

const MB = 1024 * 1024;

/**
 * Share of the machine's CPU that other work may take while a method runs before its figure is suspect. Kernel
 * threads writing back the method's own files count as other work too, hence not zero.
 */
const NOISE_SHARE = 0.25;

/** One warning per method that ran while the machine was busy with something else. */
export function noiseWarnings(methods: readonly MethodRow[], cpus: number): string[] {
  return methods
    .filter((m) => m.otherCpuSeconds / (m.seconds * cpus) > NOISE_SHARE)
    .map(
      (m) =>
        `other work took ${Math.round((m.otherCpuSeconds / (m.seconds * cpus)) * 100)}% of the machine's CPU during ` +
        `"${m.method}"; its ratios are not reliable. Run the bench again on an idle machine.`,
    );
}

export function mb(bytes: number): number {
  return bytes / MB;
}

function fixed(n: number | null, digits = 0): string {
  if (n === null || !Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(header: string[], rows: string[][], rightAligned: (i: number) => boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (rightAligned(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAligned(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The report as Markdown tables: what the bench prints and what docs/performance.md quotes. */
export function renderReport(r: BenchReport): string {
  const methods = table(
    [
      'method',
      'items',
      's',
      'items/s',
      'MB/s',
      'peak RSS MB',
      'CPU s: client',
      'Dovecot',
      'pod',
      'other',
      'IMAP logins',
      '× doveadm import',
      '× mbsync',
    ],
    r.methods.map((m) => [
      m.method,
      fixed(m.items),
      fixed(m.seconds, 1),
      fixed(m.itemsPerSecond),
      fixed(m.mbPerSecond, 2),
      fixed(m.peakRssMb),
      fixed(m.clientCpuSeconds, 1),
      fixed(m.serverCpuSeconds, 1),
      fixed(m.podCpuSeconds, 1),
      fixed(m.otherCpuSeconds, 1),
      fixed(m.imapLogins),
      fixed(m.vsDoveadm, 2),
      fixed(m.vsMbsync, 2),
    ]),
    (i) => i > 0,
  );
  const s = r.stages;
  const stageRows = [
    [
      'fetch only (source, no convert)',
      `${fixed(s.fetch.messages)} messages of ${fixed(s.fetch.streams)} streams, ${fixed(s.fetch.attachments)} attachments, ${fixed(s.fetch.requests)} requests`,
      `${fixed(s.fetch.seconds, 1)} s = ${fixed(s.fetch.messagesPerSecond)} msg/s`,
    ],
    [
      'convert only (one thread)',
      `${fixed(s.convert.messages)} messages, ${fixed(s.convert.failed)} refused; CPU ${fixed(s.convert.cpuSeconds, 1)} s`,
      `${fixed(s.convert.wallSeconds, 1)} s = ${fixed(s.convert.messagesPerSecond)} msg/s, ${fixed(s.convert.mbPerSecond, 1)} MB/s`,
    ],
    [
      'second cycle, nothing new (IMAP)',
      `${fixed(s.secondCycle.requests)} requests for ${fixed(s.secondCycle.streams)} streams, ${fixed(s.secondCycle.delivered)} delivered`,
      `${fixed(s.secondCycle.seconds, 2)} s`,
    ],
    [
      `archiver process memory (IMAP run, ${r.runtime === 'tsx' ? 'through tsx' : 'built'})`,
      'RSS with modules loaded → peak RSS; peak JS heap used, peak external (Buffers)',
      `${fixed(s.archiverMemory.startRssMb)} → ${fixed(s.archiverMemory.peakRssMb)} MB; ` +
        `heap ${fixed(s.archiverMemory.peakHeapUsedMb)} MB, external ${fixed(s.archiverMemory.peakExternalMb)} MB`,
    ],
  ];
  if (s.bigAttachment) {
    stageRows.push([
      'one message with a large attachment (end to end into a Maildir)',
      `${fixed(s.bigAttachment.attachmentMb)} MB attachment → ${fixed(s.bigAttachment.itemMb)} MB item`,
      `${fixed(s.bigAttachment.seconds, 1)} s, RSS ${fixed(s.bigAttachment.startRssMb)} → ` +
        `${fixed(s.bigAttachment.peakRssMb)} MB`,
    ]);
  }
  const stages = table(['stage', 'what', 'result'], stageRows, () => false);
  const targets = table(
    ['target', 'goal', 'measured', 'status'],
    r.targets.map((t) => [
      t.name,
      t.goal,
      t.note ? `${t.measured} (${t.note})` : t.measured,
      t.met === null ? 'not measured' : t.met ? 'met' : 'NOT MET',
    ]),
    () => false,
  );
  const head =
    `Pod: seed ${r.pod.seed}, ${fixed(r.pod.users)} users, ${fixed(r.pod.streams)} streams, ` +
    `${fixed(r.pod.messages)} messages → ${fixed(r.items.count)} mailbox items in ${fixed(r.pod.mailboxes)} mailboxes, ` +
    `${fixed(mb(r.items.bytes), 1)} MB (mean ${fixed(r.items.meanBytes)} bytes).\n` +
    `Machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${fixed(r.machine.memoryGb)} GB; Node ${r.machine.node}; ` +
    `Dovecot ${r.machine.dovecot}; ${r.machine.mbsync}; load average ${fixed(r.machine.loadAverage[0], 2)} at start, ` +
    `${fixed(r.machine.loadAverage[1], 2)} at end. Commit ${r.commit ?? 'unknown'}${r.dirty ? ' (with local changes)' : ''}.`;
  const overrides = Object.entries(r.imapOverrides).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const settings = overrides.length
    ? `\nIMAP destination settings changed from the defaults: ${overrides.join(', ')}.`
    : '';
  const parts = [head + settings, methods, stages, targets];
  if (r.warnings.length) parts.push(r.warnings.map((w) => `WARNING: ${w}`).join('\n'));
  if (r.profile) {
    const spots = (heading: string, list: ProfileSummary['functions']) =>
      table(
        [heading, 'ms', '% of busy'],
        list.map((h) => [h.name, fixed(h.ms), fixed(h.share * 100, 1)]),
        (i) => i > 0,
      );
    const p = r.profile;
    parts.push(
      `CPU profile of the IMAP archive process (${p.file}): ${fixed(p.totalMs / 1000, 1)} s sampled, main thread ` +
        `idle (waiting on Dovecot, the pod or the disk) ${fixed((p.idleMs / p.totalMs) * 100)}% of it. ` +
        'The busy rest by component (its own code and the dependencies and native calls it makes), then by function:',
      spots('component', p.components),
      spots('function (self time)', p.functions),
    );
  }
  return parts.join('\n\n');
}
