import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { silentLogger } from '../../../src/core/logger.ts';
import type { DeliveryItem } from '../../../src/deliver/mailbox-writer.ts';
import { createMaildirWriter } from '../../../src/deliver/maildir/index.ts';
import { ensureDovecotInstalled, startDovecot, type DovecotServer } from '../../helpers/dovecot.ts';
import { makeItem } from './fixtures.ts';

const USERS = ['alice.smith@bank.example', 'bob@bank.example', 'carol.o.neil@bank.example'];

function itemsFor(userIndex: number): DeliveryItem[] {
  const base = Date.UTC(2024, 4, 17, 9, 30, 0) + userIndex * 86_400_000;
  return Array.from({ length: 3 + userIndex }, (_, i) => makeItem(`u${userIndex}m${i}`, new Date(base + i * 61_000)));
}

interface Seen {
  messageId: string;
  internalDate: number;
  flags: string[];
}

async function readFolder(
  server: DovecotServer,
  user: string,
): Promise<{ listed: boolean; subscribed: boolean; messages: Seen[] }> {
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: false,
    auth: { user, pass: server.password },
    logger: false,
  });
  await client.connect();
  try {
    const folderPath = `INBOX${server.separator}Symphony`;
    const list = await client.list();
    const entry = list.find((box) => box.path === folderPath);
    const messages: Seen[] = [];
    if (entry) {
      await client.mailboxOpen(folderPath, { readOnly: true });
      for await (const msg of client.fetch('1:*', { envelope: true, internalDate: true, flags: true })) {
        const date = msg.internalDate;
        messages.push({
          messageId: msg.envelope?.messageId ?? '',
          internalDate: date instanceof Date ? date.getTime() : Date.parse(String(date)),
          flags: [...(msg.flags ?? [])],
        });
      }
    }
    return { listed: entry !== undefined, subscribed: entry?.subscribed === true, messages };
  } finally {
    await client.logout();
  }
}

describe('Maildir tree served by Dovecot', { timeout: 300_000 }, () => {
  let tmp: string;

  before(async () => {
    await ensureDovecotInstalled();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'maildir-dovecot-'));
    // Dovecot's imap process runs as uid 5000 and must traverse to the mail root.
    await chmod(tmp, 0o755);
  });

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  for (const separator of ['.', '/'] as const) {
    it(`lists INBOX${separator}Symphony with exactly the written items (separator "${separator}")`, async () => {
      const mailRoot = path.join(tmp, separator === '.' ? 'dot' : 'slash');
      const writer = createMaildirWriter({ root: mailRoot }, { logger: silentLogger() });
      await writer.verify();
      for (const [i, user] of USERS.entries()) {
        for (const item of itemsFor(i)) {
          const receipt = await writer.append(user, item);
          assert.equal(receipt.duplicate, false);
        }
      }
      await writer.close();

      const server = await startDovecot({ mailRoot, users: USERS, separator });
      try {
        for (const [i, user] of USERS.entries()) {
          const expected = itemsFor(i);
          const seen = await readFolder(server, user);
          assert.ok(seen.listed, `${user}: folder listed`);
          assert.ok(seen.subscribed, `${user}: folder subscribed`);
          assert.deepEqual(
            seen.messages.map((m) => m.messageId).sort(),
            expected.map((item) => `<${item.messageId}>`).sort(),
          );
          for (const msg of seen.messages) {
            const item = expected.find((it) => `<${it.messageId}>` === msg.messageId);
            assert.equal(msg.internalDate, item?.date.getTime(), `${user}: INTERNALDATE of ${msg.messageId}`);
            assert.ok(msg.flags.includes('\\Seen'), `${user}: \\Seen on ${msg.messageId}`);
          }
        }

        // A new writer (as in a new process) finds everything already there, even after Dovecot touched the files.
        const again = createMaildirWriter({ root: mailRoot }, { logger: silentLogger() });
        for (const [i, user] of USERS.entries()) {
          for (const item of itemsFor(i)) {
            assert.equal((await again.append(user, item)).duplicate, true);
          }
        }
        await again.close();
        const recount = await readFolder(server, USERS[0] ?? '');
        assert.equal(recount.messages.length, itemsFor(0).length);
      } finally {
        await server.stop();
      }
    });
  }
});
