import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { createWriter, openStore, runConnector } from '../../app.ts';
import { loadConfig } from '../../config/load.ts';
import { reasonOf } from '../../core/errors.ts';
import { createLogger, silentLogger } from '../../core/logger.ts';
import { isComplete, reconcile, type Reconciliation } from '../../core/reconcile.ts';
import { startSymphonyEmulator, type GroundTruth } from '../../emulator/symphony/index.ts';
import type { RunRow } from '../../store/state-store.ts';
import { createReporter, reportJson, runSummary, type Reporter } from '../output.ts';
import { abortOnSignals } from './run.ts';

export interface DemoOptions {
  dataDir: string;
  once: boolean;
  json: boolean;
  seed: number;
  users: number;
  streams: number;
  messages: number;
  every: number;
}

/** The bot key pair survives between demo runs so the data directory keeps working with `run --config`. */
async function botKey(path: string): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  let privateKeyPem: string;
  try {
    privateKeyPem = await readFile(path, 'utf8');
  } catch {
    privateKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    await writeFile(path, privateKeyPem, { mode: 0o600 });
  }
  const publicKeyPem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }) as string;
  return { privateKeyPem, publicKeyPem };
}

function describeReconciliation(r: Reconciliation, truth: GroundTruth): string[] {
  const lines = [
    `completeness against the emulator's ground truth: ${r.present}/${r.expected} expected items in ${r.mailboxes} mailboxes` +
      (isComplete(r) ? ', each exactly once, nothing extra' : ''),
  ];
  if (r.missing.length)
    lines.push(`  missing: ${r.missing.length} (quarantined or failed items are listed by \`symphony-archiver log\`)`);
  if (r.duplicated.length) lines.push(`  duplicated: ${r.duplicated.length}`);
  if (r.unexpected.length) lines.push(`  unexpected: ${r.unexpected.length}`);
  const unmappedUsers = new Set(truth.unmapped.map((u) => u.userId)).size;
  if (unmappedUsers)
    lines.push(
      `  ${unmappedUsers} participant${unmappedUsers === 1 ? ' has' : 's have'} no email address: their copies are recorded as unmapped`,
    );
  return lines;
}

export async function demoCommand(o: DemoOptions): Promise<number> {
  const dataDir = resolve(o.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const keyPath = join(dataDir, 'bot-key.pem');
  const key = await botKey(keyPath);
  const emulator = await startSymphonyEmulator({
    seed: o.seed,
    users: o.users,
    streams: o.streams,
    messages: o.messages,
    botPublicKeyPem: key.publicKeyPem,
  });
  const configPath = join(dataDir, 'demo-config.yaml');
  await writeFile(
    configPath,
    `# Written by \`symphony-archiver demo\`; the emulator's port changes on every demo start.\n` +
      stringify({
        dataDir: '.',
        connectors: [
          {
            id: 'demo',
            name: 'Demo pod (bundled emulator)',
            source: { kind: 'symphony', podUrl: emulator.url, username: 'archiver-bot', privateKeyPath: 'bot-key.pem' },
            destination: { kind: 'maildir', root: 'mail' },
          },
        ],
      }),
  );
  const config = await loadConfig(configPath);
  const connector = config.connectors[0]!;
  const mailRoot = join(dataDir, 'mail');
  const reporter = createReporter({ json: o.json });
  const logger = o.json || process.stderr.isTTY ? silentLogger() : createLogger({ level: 'warn' });
  const { signal, dispose } = abortOnSignals();

  const cycle = async (): Promise<number> => {
    const store = openStore(config.dataDir);
    try {
      const progress = reporter.progress(connector.id);
      const report = await runConnector(config, connector, {
        logger,
        store,
        signal,
        ...(progress ? { onProgress: progress } : {}),
      });
      reporter.done();
      const truth = emulator.groundTruth();
      const writer = createWriter(connector.destination, { logger });
      const r = await reconcile(truth.mailboxes, (mb) => writer.inventory!(mb));
      await writer.close();
      printDemoReport(reporter, report.run, report.durationMs, r, truth, mailRoot, configPath);
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ ...reportJson(report), mail: mailRoot, config: configPath, reconciliation: summaryOf(r) }, null, 2)}\n`,
        );
      }
      return report.run.status === 'succeeded' && isComplete(r) ? 0 : 1;
    } catch (err) {
      reporter.done();
      const run = (err as { run?: RunRow }).run;
      reporter.line(run ? runSummary(run) : `demo cycle failed: ${reasonOf(err)}`);
      if (o.json) process.stdout.write(`${JSON.stringify({ error: reasonOf(err), run }, null, 2)}\n`);
      return 1;
    } finally {
      await store.close();
    }
  };

  try {
    const code = await cycle();
    if (o.once || signal.aborted) return code;
    reporter.line(
      `\nthe emulator keeps serving at ${emulator.url}; next cycle in ${o.every} s (archive it yourself with ` +
        `\`symphony-archiver run --config ${configPath}\`). Ctrl-C stops.`,
    );
    while (!signal.aborted) {
      await new Promise<void>((done) => {
        const t = setTimeout(done, o.every * 1000);
        signal.addEventListener('abort', () => (clearTimeout(t), done()), { once: true });
      });
      if (!signal.aborted) await cycle();
    }
    return 0;
  } finally {
    dispose();
    await emulator.close();
  }
}

function summaryOf(r: Reconciliation) {
  return {
    mailboxes: r.mailboxes,
    expected: r.expected,
    present: r.present,
    missing: r.missing.length,
    duplicated: r.duplicated.length,
    unexpected: r.unexpected.length,
    complete: isComplete(r),
  };
}

function printDemoReport(
  reporter: Reporter,
  run: RunRow,
  durationMs: number,
  r: Reconciliation,
  truth: GroundTruth,
  mailRoot: string,
  configPath: string,
): void {
  reporter.line(
    `archived the demo pod (${truth.streams} conversations, ${truth.messages} messages) in ${(durationMs / 1000).toFixed(1)} s`,
  );
  reporter.line(runSummary(run));
  for (const l of describeReconciliation(r, truth)) reporter.line(l);
  reporter.line(
    `mail: ${mailRoot}/<address>/.INBOX.Symphony (Maildir++; Dovecot serves it with mail_location = maildir:${mailRoot}/%u)`,
  );
  reporter.line(`import log: symphony-archiver log --config ${configPath}`);
}
