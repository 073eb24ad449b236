import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAppError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { createImapWriter } from '../../../src/deliver/imap/index.ts';
import type { DeliveryItem, DeliveryReceipt, MailboxWriter } from '../../../src/deliver/mailbox-writer.ts';
import { startDovecot, type DovecotServer } from '../../helpers/dovecot.ts';
import { assertExactlyOnce, imapConfig, itemsFor, makeItem, readFolder, secretFile } from './fixtures.ts';

const IVY = 'ivy@bank.example';
const JON = 'jon@bank.example';
const KIM = 'kim@bank.example';
const LEO = 'leo@bank.example';
const MAY = 'may@bank.example';
const USERS = [IVY, JON, KIM, LEO, MAY];

/** Appends, then retries what failed retryably, as the pipeline's next cycles would. */
async function deliverAll(writer: MailboxWriter, mailbox: string, items: DeliveryItem[], rounds = 8) {
  const receipts = new Map<string, DeliveryReceipt>();
  for (let round = 0; round < rounds && receipts.size < items.length; round += 1) {
    const todo = items.filter((item) => !receipts.has(item.key));
    const results = await Promise.allSettled(todo.map((item) => writer.append(mailbox, item)));
    results.forEach((r, i) => {
      const item = todo[i] as DeliveryItem;
      if (r.status === 'fulfilled') receipts.set(item.key, r.value);
      else assert.ok(isAppError(r.reason) && r.reason.retryable, `only retryable failures: ${String(r.reason)}`);
    });
    if (receipts.size < items.length) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.equal(receipts.size, items.length, `${mailbox}: every item delivered in the end`);
}

describe('IMAP writer: restart, quota, size (Dovecot)', { timeout: 120_000 }, () => {
  let tmp: string;
  let server: DovecotServer;
  let passwordFile: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-resilience-'));
    await chmod(tmp, 0o755);
    server = await startDovecot({ mailRoot: path.join(tmp, 'mail'), users: USERS, quotas: { [MAY]: '30K' } });
    passwordFile = await secretFile(tmp, 'password', server.password);
  });

  after(async () => {
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('resumes without duplicates when the server restarts mid-run', async () => {
    const writer = createImapWriter(
      imapConfig(server, { method: 'password', passwordFile }, { folder: 'Restart', retries: 3, maxConnections: 4 }),
      { logger: silentLogger() },
    );
    const perUser = new Map([IVY, JON, KIM, LEO].map((u, i) => [u, itemsFor(`r${i}`, 30)]));
    const waveDone: number[] = [];
    let restartStarted = 0;
    let restartDone = 0;
    try {
      const runs = [...perUser].map(async ([user, items]) => {
        // Small paced waves, so the run spans the restart and the restart lands between and inside APPENDs.
        for (let i = 0; i < items.length; i += 3) {
          await deliverAll(writer, user, items.slice(i, i + 3));
          waveDone.push(Date.now());
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
      });
      while (waveDone.length < 6) await new Promise((resolve) => setTimeout(resolve, 5));
      restartStarted = Date.now();
      await server.restart();
      restartDone = Date.now();
      await Promise.all(runs);
    } finally {
      await writer.close();
    }
    assert.ok(
      waveDone.some((t) => t < restartStarted) && waveDone.some((t) => t > restartDone),
      'run spans the restart',
    );
    for (const [user, items] of perUser) {
      assertExactlyOnce(await readFolder(server, { user, pass: server.password }, 'Restart'), items, user);
    }
  });

  it('fails over quota with a retryable, explained error, then succeeds once the quota is raised', async () => {
    const writer = createImapWriter(
      imapConfig(server, { method: 'password', passwordFile }, { folder: 'Quota', multiappend: false }),
      { logger: silentLogger() },
    );
    // About 14 KB each: the third does not fit in 30 KB.
    const body = 'q'.repeat(70).concat('\r\n').repeat(200);
    const items = Array.from({ length: 4 }, (_, i) => makeItem(`quota${i}`, new Date(Date.UTC(2024, 1, 1) + i), body));
    try {
      const results = await Promise.allSettled(items.map((item) => writer.append(MAY, item)));
      const failed = results.filter((r) => r.status === 'rejected');
      assert.ok(failed.length >= 2, 'the items past the quota fail');
      for (const r of failed) {
        const err = r.reason as unknown;
        assert.ok(isAppError(err, 'ERR_SINK_IO'), String(err));
        assert.equal(err.retryable, true);
        assert.match(err.message, /over quota/);
        assert.match(err.message, /OVERQUOTA/);
      }
      await server.setQuota(MAY, '10M');
      const receipts = await Promise.all(items.map((item) => writer.append(MAY, item)));
      assert.equal(receipts.filter((r) => !r.duplicate).length, failed.length, 'only the failed ones are written');
    } finally {
      await writer.close();
    }
    assertExactlyOnce(await readFolder(server, { user: MAY, pass: server.password }, 'Quota'), items, MAY);
  });

  it('appends a 50 MB message', async () => {
    const writer = createImapWriter(imapConfig(server, { method: 'password', passwordFile }, { folder: 'Large' }), {
      logger: silentLogger(),
    });
    const line = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n';
    const big = makeItem(
      'large0',
      new Date(Date.UTC(2023, 6, 1)),
      line.repeat(Math.ceil((50 * 1024 * 1024) / line.length)),
    );
    const small = makeItem('large1', new Date(Date.UTC(2023, 6, 2)));
    assert.ok(big.content.length >= 50 * 1024 * 1024);
    try {
      const receipts = await Promise.all([writer.append(KIM, big), writer.append(KIM, small)]);
      assert.ok(receipts.every((r) => !r.duplicate));
      assert.equal((await writer.append(KIM, big)).duplicate, true);
    } finally {
      await writer.close();
    }
    const view = await readFolder(server, { user: KIM, pass: server.password }, 'Large');
    assertExactlyOnce(view, [big, small], KIM);
    assert.equal(view.messages.find((m) => m.messageId === big.messageId)?.size, big.content.length);
  });
});
