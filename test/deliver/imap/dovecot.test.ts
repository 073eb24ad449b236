import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { isAppError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { createImapWriter } from '../../../src/deliver/imap/index.ts';
import type { DeliveryItem, MailboxWriter } from '../../../src/deliver/mailbox-writer.ts';
import { startDovecot, type DovecotServer } from '../../helpers/dovecot.ts';
import { assertExactlyOnce, imapConfig, itemsFor, makeItem, readFolder, secretFile } from './fixtures.ts';

const ALICE = 'alice.smith@bank.example';
const BOB = 'bob@bank.example';
const CAROL = 'carol.o.neil@bank.example';
const USERS = [ALICE, BOB, CAROL];

async function appendAll(writer: MailboxWriter, mailbox: string, items: DeliveryItem[]) {
  return Promise.all(items.map((item) => writer.append(mailbox, item)));
}

describe('IMAP writer against Dovecot', { timeout: 120_000 }, () => {
  let tmp: string;
  let passwordFile: string;
  let masterFile: string;
  let dot: DovecotServer;
  let slash: DovecotServer;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-dovecot-'));
    await chmod(tmp, 0o755);
    [dot, slash] = await Promise.all([
      startDovecot({ mailRoot: path.join(tmp, 'dot'), users: USERS, separator: '.', masterUser: 'archiver' }),
      startDovecot({ mailRoot: path.join(tmp, 'slash'), users: USERS, separator: '/' }),
    ]);
    passwordFile = await secretFile(tmp, 'password', dot.password);
    masterFile = await secretFile(tmp, 'master', dot.master?.password ?? '');
    await secretFile(tmp, 'slash-password', slash.password);
  });

  after(async () => {
    await Promise.all([dot?.stop(), slash?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  for (const which of ['.', '/'] as const) {
    it(`creates INBOX${which}Symphony, subscribes it and appends with INTERNALDATE, flags and APPENDUID (separator "${which}")`, async () => {
      const server = which === '.' ? dot : slash;
      const pwFile = which === '.' ? passwordFile : path.join(tmp, 'slash-password');
      const writer = createImapWriter(imapConfig(server, { method: 'password', passwordFile: pwFile }), {
        logger: silentLogger(),
      });
      const items = itemsFor('sep', 3);
      try {
        await writer.verify();
        const receipts = await appendAll(writer, BOB, items);
        await writer.flush();
        const view = await readFolder(server, { user: BOB, pass: server.password });
        assert.equal(view.separator, which);
        assert.ok(view.listed, 'folder listed');
        assert.ok(view.subscribed, 'folder subscribed');
        assertExactlyOnce(view, items, BOB);
        for (const [i, item] of items.entries()) {
          const msg = view.messages.find((m) => m.messageId === item.messageId);
          assert.ok(msg);
          assert.equal(msg.internalDate, item.date.getTime(), 'INTERNALDATE is the item date');
          assert.deepEqual(
            msg.flags.filter((f) => f !== '\\Recent'),
            ['\\Seen'],
          );
          assert.equal(receipts[i]?.ref, `${view.uidValidity}:${msg.uid}`, 'ref is uidvalidity:uid');
          assert.equal(receipts[i]?.duplicate, false);
        }
      } finally {
        await writer.close();
      }
    });
  }

  it('accepts an existing folder, skips items already there (second writer) and counts them in inventory', async () => {
    // The folder exists already (created by a mail client) and holds one of the items plus a foreign message.
    const client = new ImapFlow({
      host: dot.host,
      port: dot.port,
      secure: false,
      doSTARTTLS: false,
      auth: { user: CAROL, pass: dot.password },
      logger: false,
    });
    await client.connect();
    const items = itemsFor('ex', 4);
    await client.mailboxCreate('INBOX.Symphony');
    await client.append('INBOX.Symphony', items[0]?.content ?? '', [], items[0]?.date);
    await client.append(
      'INBOX.Symphony',
      makeItem('zz', new Date()).content.toString().replace('sym.zz@', 'other.zz@'),
    );
    await client.logout();

    const config = imapConfig(dot, { method: 'password', passwordFile });
    const first = createImapWriter(config, { logger: silentLogger() });
    try {
      const receipts = await appendAll(first, CAROL, items);
      assert.deepEqual(
        receipts.map((r) => r.duplicate),
        [true, false, false, false],
      );
      // The same item again in the same writer, concurrently: one write at most.
      const again = await Promise.all([
        first.append(CAROL, items[1] as DeliveryItem),
        first.append(CAROL, items[1] as DeliveryItem),
      ]);
      assert.ok(again.every((r) => r.duplicate));
    } finally {
      await first.close();
    }
    const second = createImapWriter(config, { logger: silentLogger() });
    try {
      const receipts = await appendAll(second, CAROL, items);
      assert.ok(
        receipts.every((r) => r.duplicate),
        'a new writer finds every item',
      );
      const counts = await second.inventory?.(CAROL);
      assert.deepEqual(
        [...(counts ?? new Map<string, number>()).entries()].sort(),
        items.map((i) => [i.key, 1]).sort(),
      );
    } finally {
      await second.close();
    }
    const view = await readFolder(dot, { user: CAROL, pass: dot.password });
    assert.equal(view.messages.length, items.length + 1);
    for (const item of items) assert.equal(view.messages.filter((m) => m.messageId === item.messageId).length, 1);
  });

  it('inventory counts a key seen twice, ignores foreign messages and does not create a missing folder', async () => {
    const writer = createImapWriter(imapConfig(dot, { method: 'password', passwordFile }, { folder: 'Counted' }), {
      logger: silentLogger(),
    });
    try {
      assert.equal((await writer.inventory?.(BOB))?.size, 0);
      assert.equal((await writer.inventory?.(ALICE))?.size, 0);
      const items = itemsFor('inv', 2);
      await Promise.all(items.map((item) => writer.append(ALICE, item)));
      // A copy written behind the writer's back (another tool, a restore) shows up as a duplicate.
      const client = new ImapFlow({
        host: dot.host,
        port: dot.port,
        secure: false,
        doSTARTTLS: false,
        auth: { user: ALICE, pass: dot.password },
        logger: false,
      });
      await client.connect();
      await client.append('INBOX.Counted', items[0]?.content ?? '');
      await client.append('INBOX.Counted', 'Message-ID: <unrelated@elsewhere.example>\r\n\r\nhi\r\n');
      await client.logout();
      const counts = await writer.inventory?.(ALICE);
      assert.deepEqual([...(counts ?? [])].sort(), [
        ['invm0', 2],
        ['invm1', 1],
      ]);
    } finally {
      await writer.close();
    }
    const untouched = await readFolder(dot, { user: BOB, pass: dot.password }, 'Counted');
    assert.equal(untouched.listed, false, 'inventory of bob did not create his folder');
  });

  it('logs in as <mailbox>*<master> and through the SASL PLAIN authorization identity', async () => {
    const viaMaster = createImapWriter(
      imapConfig(dot, { method: 'master', masterUser: 'archiver', passwordFile: masterFile }, { folder: 'Master' }),
      { logger: silentLogger() },
    );
    const viaAuthzid = createImapWriter(
      imapConfig(dot, { method: 'authzid', adminUser: 'archiver', passwordFile: masterFile }, { folder: 'Authzid' }),
      { logger: silentLogger() },
    );
    const items = itemsFor('ma', 2);
    try {
      for (const user of USERS) {
        await appendAll(viaMaster, user, items);
        await appendAll(viaAuthzid, user, items);
      }
    } finally {
      await Promise.all([viaMaster.close(), viaAuthzid.close()]);
    }
    for (const user of USERS) {
      assertExactlyOnce(await readFolder(dot, { user, pass: dot.password }, 'Master'), items, user);
      assertExactlyOnce(await readFolder(dot, { user, pass: dot.password }, 'Authzid'), items, user);
    }
  });

  it('reports a refused login without the secret and a missing secret as a config error', async () => {
    const wrong = await secretFile(tmp, 'wrong', 'not-the-password-s3cr3t');
    const writer = createImapWriter(imapConfig(dot, { method: 'password', passwordFile: wrong }), {
      logger: silentLogger(),
    });
    const err = await writer.append(ALICE, makeItem('sec1', new Date())).then(
      () => assert.fail('login must fail'),
      (e: unknown) => e,
    );
    await writer.close();
    assert.ok(isAppError(err, 'ERR_SINK_IO'), String(err));
    assert.match(err.message, /login refused/);
    assert.match(err.message, /alice\.smith@bank\.example/);
    const everything = JSON.stringify(err, Object.getOwnPropertyNames(err)) + String(err.stack) + inspectCause(err);
    assert.ok(!everything.includes('not-the-password-s3cr3t'), 'secret not in the error');

    const missing = createImapWriter(
      imapConfig(dot, { method: 'password', passwordEnv: 'SYMPHONY_TEST_UNSET_PASSWORD' }),
      { logger: silentLogger() },
    );
    await assert.rejects(missing.verify(), (e: unknown) => isAppError(e, 'ERR_CONFIG_INVALID'));
    await missing.close();
  });
});

function inspectCause(err: Error): string {
  let out = '';
  for (let c: unknown = err.cause; c; c = (c as { cause?: unknown }).cause) {
    out += JSON.stringify(c, Object.getOwnPropertyNames(c));
  }
  return out;
}
