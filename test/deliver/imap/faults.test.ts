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
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.ts';
import { assertExactlyOnce, imapConfig, itemsFor, makeItem, readFolder, secretFile } from './fixtures.ts';

const USERS = ['dana@bank.example', 'erik@bank.example', 'fay@bank.example', 'gus@bank.example', 'hal@bank.example'];

/** A message whose literal is well over 4 KiB, so imapflow sends it as a synchronising literal after `+`. */
function bigItem(key: string, i: number): DeliveryItem {
  return makeItem(key, new Date(Date.UTC(2024, 0, 2, 3, 4, 5) + i * 1000), 'x'.repeat(70).concat('\r\n').repeat(200));
}

/** Appends and, like the next cycle of the pipeline would, retries what failed with a retryable error. */
async function deliverAll(
  writer: MailboxWriter,
  mailbox: string,
  items: DeliveryItem[],
  rounds = 5,
): Promise<DeliveryReceipt[]> {
  const receipts = new Map<string, DeliveryReceipt>();
  for (let round = 0; round < rounds && receipts.size < items.length; round += 1) {
    const todo = items.filter((item) => !receipts.has(item.key));
    const results = await Promise.allSettled(todo.map((item) => writer.append(mailbox, item)));
    results.forEach((r, i) => {
      const item = todo[i] as DeliveryItem;
      if (r.status === 'fulfilled') receipts.set(item.key, r.value);
      else assert.ok(isAppError(r.reason) && r.reason.retryable, `only retryable failures: ${String(r.reason)}`);
    });
    if (receipts.size < items.length) await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assert.equal(receipts.size, items.length, 'every item delivered in the end');
  return items.map((item) => receipts.get(item.key) as DeliveryReceipt);
}

describe('IMAP writer under connection faults (Dovecot behind a TCP proxy)', { timeout: 120_000 }, () => {
  let tmp: string;
  let server: DovecotServer;
  let proxy: TcpProxy;
  let passwordFile: string;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-faults-'));
    await chmod(tmp, 0o755);
    server = await startDovecot({ mailRoot: path.join(tmp, 'mail'), users: USERS });
    proxy = await startTcpProxy(server);
    passwordFile = await secretFile(tmp, 'password', server.password);
  });

  after(async () => {
    await proxy?.close();
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const cases = [
    {
      name: 'cut in the middle of the APPEND literal (server never got it)',
      fault: { kind: 'cut-client-to-server', trigger: /APPEND /, afterBytes: 3000 } as const,
    },
    {
      name: 'cut right after the server stored it, before the client saw OK',
      fault: { kind: 'cut-server-to-client', trigger: /^[A-Z0-9]+ OK \[APPENDUID/m } as const,
    },
  ];
  const modes = [
    { duplicateCheck: 'index', multiappend: false },
    { duplicateCheck: 'search', multiappend: false },
    { duplicateCheck: 'index', multiappend: true },
  ] as const;

  let n = 0;
  for (const c of cases) {
    for (const mode of modes) {
      const user = USERS[n % USERS.length] as string;
      const folder = `Cut${n}`;
      n += 1;
      it(`${c.name}: retried without a duplicate (${mode.duplicateCheck}, multiappend ${mode.multiappend})`, async () => {
        const writer = createImapWriter(
          imapConfig(proxy, { method: 'password', passwordFile }, { ...mode, folder, retries: 2 }),
          { logger: silentLogger() },
        );
        const items = Array.from({ length: 4 }, (_, i) => bigItem(`${folder.toLowerCase()}i${i}`, i));
        try {
          // One item first, so the folder exists and the fault hits an APPEND, not the setup.
          assert.equal((await writer.append(user, items[0] as DeliveryItem)).duplicate, false);
          const before = proxy.connections;
          const fired = proxy.arm(c.fault);
          const receipts = await Promise.all(items.slice(1).map((item) => writer.append(user, item)));
          await fired;
          assert.ok(proxy.connections > before, 'the writer reconnected');
          assert.ok(
            receipts.every((r) => !r.duplicate && /^\d+:\d+$/.test(r.ref)),
            JSON.stringify(receipts),
          );
        } finally {
          await writer.close();
        }
        const view = await readFolder(server, { user, pass: server.password }, folder);
        assertExactlyOnce(view, items, user);
      });
    }
  }

  it('an append whose outcome stayed unknown is looked for before it is sent again', async () => {
    const user = USERS[0] as string;
    const writer = createImapWriter(
      imapConfig(proxy, { method: 'password', passwordFile }, { folder: 'Unknown', retries: 0 }),
      { logger: silentLogger() },
    );
    const items = [bigItem('unk0', 0), bigItem('unk1', 1)];
    try {
      await writer.append(user, items[0] as DeliveryItem);
      const fired = proxy.arm({ kind: 'cut-server-to-client', trigger: /^[A-Z0-9]+ OK \[APPENDUID/m });
      const err = await writer.append(user, items[1] as DeliveryItem).then(
        () => assert.fail('the cut must surface with retries: 0'),
        (e: unknown) => e,
      );
      await fired;
      assert.ok(isAppError(err, 'ERR_SINK_IO') && err.retryable, String(err));
      assert.match(err.message, /outcome is checked before the next attempt/);
      // The next attempt (next cycle) finds the message the server did store, and writes nothing.
      const receipt = await writer.append(user, items[1] as DeliveryItem);
      assert.equal(receipt.duplicate, false);
      assert.match(receipt.ref, /^\d+:\d+$/);
    } finally {
      await writer.close();
    }
    assertExactlyOnce(await readFolder(server, { user, pass: server.password }, 'Unknown'), items, user);
  });

  it('keeps exactly once over 5 mailboxes with latency, a 2-connection pool and random cuts', async () => {
    proxy.latencyMs = 5;
    const writer = createImapWriter(
      imapConfig(proxy, { method: 'password', passwordFile }, { folder: 'Pool', maxConnections: 2, retries: 3 }),
      { logger: silentLogger() },
    );
    const perUser = new Map(USERS.map((u, i) => [u, itemsFor(`p${i}`, 12)]));
    try {
      const cutter = (async () => {
        for (let i = 0; i < 3; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 40));
          proxy.dropAll();
        }
      })();
      await Promise.all([...perUser].map(([user, items]) => deliverAll(writer, user, items)));
      await cutter;
    } finally {
      proxy.latencyMs = 0;
      await writer.close();
    }
    for (const [user, items] of perUser) {
      assertExactlyOnce(await readFolder(server, { user, pass: server.password }, 'Pool'), items, user);
    }
  });
});
