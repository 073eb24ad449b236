import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { silentLogger } from '../../../src/core/logger.ts';
import { identityFor, openConnection, closeConnection } from '../../../src/deliver/imap/connection.ts';
import { createFolder, folderExists } from '../../../src/deliver/imap/folder.ts';
import { createImapWriter } from '../../../src/deliver/imap/index.ts';
import { startCyrus, type CyrusServer } from '../../helpers/cyrus.ts';
import { startDovecot, type DovecotServer } from '../../helpers/dovecot.ts';
import { assertExactlyOnce, imapConfig, itemsFor, makeItem, readFolder, secretFile } from './fixtures.ts';

// No dot in the local part: with the "." separator (unixhierarchysep: no) Cyrus cannot list the folders of a user
// whose id contains one (https://www.cyrusimap.org/imap/reference/manpages/configs/imapd.conf.html unixhierarchysep).
const ALICE = 'alice@bank.example';
const BOB = 'bob@bank.example';
const USERS = [ALICE, BOB];

describe('IMAP writer against Cyrus 3.6', { timeout: 120_000 }, () => {
  let tmp: string;
  let dotted: CyrusServer;
  let slashed: CyrusServer;
  let passwordFile: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-cyrus-'));
    [dotted, slashed] = await Promise.all([
      startCyrus({ users: USERS, separator: '.' }),
      startCyrus({ users: USERS, separator: '/' }),
    ]);
    // Both instances get their own random password; one file per instance.
    passwordFile = await secretFile(tmp, 'dotted', dotted.password);
    await secretFile(tmp, 'slashed', slashed.password);
  });

  after(async () => {
    await Promise.all([dotted?.stop(), slashed?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  for (const which of ['.', '/'] as const) {
    it(`files items into INBOX${which}Symphony with INTERNALDATE (future too), flags and APPENDUID`, async () => {
      const server = which === '.' ? dotted : slashed;
      const pwFile = which === '.' ? passwordFile : path.join(tmp, 'slashed');
      const writer = createImapWriter(
        imapConfig(server, { method: 'password', passwordFile: pwFile }, { flags: ['\\Seen', '$Symphony'] }),
        { logger: silentLogger() },
      );
      // Cyrus keeps a future INTERNALDATE (Dovecot replaces it with now, destinations.md §2.1).
      const items = [...itemsFor('cy', 3), makeItem('cyfuture', new Date(Date.UTC(2031, 0, 1, 12)))];
      try {
        await writer.verify();
        const receipts = await Promise.all(items.map((item) => writer.append(ALICE, item)));
        const view = await readFolder(server, { user: ALICE, pass: server.password });
        assert.equal(view.separator, which);
        assert.ok(view.listed, 'folder listed');
        assert.ok(view.subscribed, 'folder subscribed');
        assertExactlyOnce(view, items, ALICE);
        for (const [i, item] of items.entries()) {
          const msg = view.messages.find((m) => m.messageId === item.messageId);
          assert.ok(msg);
          assert.equal(msg.internalDate, item.date.getTime());
          assert.deepEqual(msg.flags.filter((f) => f !== '\\Recent').sort(), ['$Symphony', '\\Seen']);
          assert.equal(receipts[i]?.ref, `${view.uidValidity}:${msg.uid}`);
        }
      } finally {
        await writer.close();
      }
    });
  }

  it('accepts the bare "NO Mailbox already exists" of Cyrus for an existing folder', async () => {
    const config = imapConfig(dotted, { method: 'password', passwordFile }, { folder: 'Existing' });
    const identity = identityFor(config.auth, BOB);
    const conn = await openConnection(config, identity, silentLogger());
    try {
      await createFolder(conn, 'INBOX.Existing');
      // A second CREATE is refused without a response code; createFolder must still succeed.
      const raw = new ImapFlow({
        host: dotted.host,
        port: dotted.port,
        secure: false,
        doSTARTTLS: false,
        auth: { user: BOB, pass: dotted.password },
        logger: false,
      });
      await raw.connect();
      const refusal = await raw.mailboxCreate('INBOX.Existing').then(
        () => undefined,
        (e: { responseText?: string; serverResponseCode?: string }) => e,
      );
      await raw.logout();
      assert.ok(refusal, 'Cyrus refuses CREATE of an existing mailbox');
      assert.equal(refusal.serverResponseCode, undefined, 'without [ALREADYEXISTS]');
      await createFolder(conn, 'INBOX.Existing');
      assert.ok(await folderExists(conn, 'INBOX.Existing'));
    } finally {
      await closeConnection(conn);
    }
    const writer = createImapWriter(config, { logger: silentLogger() });
    const items = itemsFor('cyex', 2);
    try {
      await Promise.all(items.map((item) => writer.append(BOB, item)));
    } finally {
      await writer.close();
    }
    assertExactlyOnce(await readFolder(dotted, { user: BOB, pass: dotted.password }, 'Existing'), items, BOB);
  });

  it('a second writer finds every item; inventory counts them; the admin writes through the authorization identity', async () => {
    const items = itemsFor('cyd', 6);
    const config = imapConfig(dotted, { method: 'password', passwordFile }, { folder: 'Dedupe' });
    const first = createImapWriter(config, { logger: silentLogger() });
    try {
      assert.ok((await Promise.all(items.map((i) => first.append(BOB, i)))).every((r) => !r.duplicate));
    } finally {
      await first.close();
    }
    const admin = await secretFile(tmp, 'admin', dotted.password);
    const second = createImapWriter(
      imapConfig(dotted, { method: 'authzid', adminUser: dotted.admin, passwordFile: admin }, { folder: 'Dedupe' }),
      { logger: silentLogger() },
    );
    try {
      const receipts = await Promise.all(items.map((i) => second.append(BOB, i)));
      assert.ok(
        receipts.every((r) => r.duplicate),
        'all found by the admin acting as bob',
      );
      const extra = makeItem('cydextra', new Date(Date.UTC(2024, 2, 3)));
      assert.equal((await second.append(BOB, extra)).duplicate, false);
      items.push(extra);
      const counts = await second.inventory?.(BOB);
      assert.deepEqual([...(counts ?? new Map<string, number>())].sort(), items.map((i) => [i.key, 1]).sort());
    } finally {
      await second.close();
    }
    assertExactlyOnce(await readFolder(dotted, { user: BOB, pass: dotted.password }, 'Dedupe'), items, BOB);
  });
});

describe('createFolder on Dovecot', { timeout: 60_000 }, () => {
  let tmp: string;
  let server: DovecotServer;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-create-'));
    await import('node:fs/promises').then((fs) => fs.chmod(tmp, 0o755));
    server = await startDovecot({ mailRoot: path.join(tmp, 'mail'), users: [ALICE] });
  });
  after(async () => {
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('accepts NO [ALREADYEXISTS]', async () => {
    const pw = await secretFile(tmp, 'pw', server.password);
    const config = imapConfig(server, { method: 'password', passwordFile: pw });
    const conn = await openConnection(config, identityFor(config.auth, ALICE), silentLogger());
    try {
      await createFolder(conn, 'INBOX.Twice');
      await createFolder(conn, 'INBOX.Twice');
      assert.ok(await folderExists(conn, 'INBOX.Twice'));
      // A refusal for another reason still fails.
      await assert.rejects(createFolder(conn, 'INBOX.Bad/Name'));
    } finally {
      await closeConnection(conn);
    }
  });
});
