import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { messageIdFor } from '../../src/core/ids.ts';
import { startSymphonyEmulator, type GroundTruth } from '../../src/emulator/symphony/index.ts';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.ts';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const POD = { seed: 5, users: 20, streams: 12, messages: 400 };

/** The pod is generated from its seed alone, so a second emulator with the same parameters tells what the demo's held. */
async function groundTruthOf(pod: typeof POD): Promise<GroundTruth> {
  const publicKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
  const emulator = await startSymphonyEmulator({ ...pod, botPublicKeyPem: publicKeyPem });
  try {
    return emulator.groundTruth();
  } finally {
    await emulator.close();
  }
}

async function messageIdsOverImap(server: DovecotServer, user: string): Promise<{ folder: string; ids: string[] }> {
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: false,
    auth: { user, pass: server.password },
    logger: false,
  });
  await client.connect();
  try {
    const folder = (await client.list()).find((box) => box.path.toLowerCase() === `inbox${server.separator}symphony`);
    if (!folder) return { folder: '', ids: [] };
    await client.mailboxOpen(folder.path, { readOnly: true });
    const ids: string[] = [];
    for await (const msg of client.fetch('1:*', { envelope: true })) ids.push(msg.envelope?.messageId ?? '');
    return { folder: folder.path, ids };
  } finally {
    await client.logout();
  }
}

describe('demo', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'demo-'));
    await chmod(dir, 0o755);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('archives its pod, says where the mail is, and Dovecot serves exactly the expected items', async () => {
    const dataDir = path.join(dir, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    const args = ['demo', '--once', '--json', '--data-dir', dataDir];
    for (const [k, v] of Object.entries(POD)) args.push(`--${k}`, String(v));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', MAIN, ...args], { maxBuffer: 16 << 20 });
    const report = JSON.parse(stdout) as {
      run: { status: string; delivered: number };
      mail: string;
      reconciliation: { complete: boolean; expected: number; present: number };
    };
    assert.equal(report.run.status, 'succeeded');
    assert.equal(report.mail, path.join(dataDir, 'mail'));
    assert.ok(report.reconciliation.complete);

    const truth = await groundTruthOf(POD);
    const users = Object.keys(truth.mailboxes);
    assert.equal(report.reconciliation.expected, Object.values(truth.mailboxes).flat().length);
    for (const separator of ['.', '/'] as const) {
      const server = await startDovecot({ mailRoot: report.mail, users, separator });
      try {
        for (const user of users) {
          const seen = await messageIdsOverImap(server, user);
          assert.equal(seen.folder, `INBOX${separator}Symphony`, user);
          const expected = truth.mailboxes[user]!.map((id) => `<${messageIdFor(id, 'symphony.127.0.0.1')}>`);
          assert.deepEqual(seen.ids.sort(), expected.sort(), `${user} over IMAP (separator ${separator})`);
        }
      } finally {
        await server.stop();
      }
    }
  });
});
