import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MailboxWriter } from '../../src/deliver/mailbox-writer.ts';
import { inFile, makeItem } from './maildir/fixtures.ts';

/** A destination under test: `open()` gives a new writer on it each time, as a new process would. */
export interface WriterTarget {
  open(): MailboxWriter;
  /** Mailboxes that exist on the destination (at least three). */
  mailboxes: readonly string[];
  close(): Promise<void>;
}

const BASE = Date.UTC(2026, 10, 3, 9, 15, 0);

/**
 * What every MailboxWriter must do, whatever it writes to (Maildir, IMAP servers, Graph): create the folder
 * when missing, file each key once per mailbox however often and however concurrently it is appended, from
 * any number of writer instances, and report what the folder holds.
 */
export function describeWriterContract(name: string, start: () => Promise<WriterTarget>): void {
  describe(`MailboxWriter contract: ${name}`, () => {
    let target: WriterTarget;
    let box: (i: number) => string;
    before(async () => {
      target = await start();
      assert.ok(target.mailboxes.length >= 3);
      box = (i) => target.mailboxes[i]!;
    });
    after(() => target?.close());

    it('verifies, creates the folder on first use and files an item once', async () => {
      const writer = target.open();
      try {
        await writer.verify();
        assert.equal((await writer.inventory!(box(0))).size, 0);
        const item = makeItem('c0first', new Date(BASE));
        const first = await writer.append(box(0), item);
        assert.equal(first.duplicate, false);
        assert.ok(first.ref.length > 0);
        await writer.flush();
        const again = await writer.append(box(0), item);
        assert.equal(again.duplicate, true);
        assert.deepEqual([...(await writer.inventory!(box(0)))], [['c0first', 1]]);
      } finally {
        await writer.close();
      }
    });

    it('a new writer instance sees what an earlier one filed', async () => {
      const writer = target.open();
      try {
        assert.equal((await writer.append(box(0), makeItem('c0first', new Date(BASE)))).duplicate, true);
        assert.equal((await writer.inventory!(box(0))).get('c0first'), 1);
      } finally {
        await writer.close();
      }
    });

    it('concurrent appends, repeats included, leave each key exactly once in each mailbox', async () => {
      const writer = target.open();
      try {
        const items = Array.from({ length: 12 }, (_, i) => makeItem(`c1k${i}`, new Date(BASE + i * 60_000)));
        const jobs = [];
        for (const mb of [box(1), box(2)]) {
          for (const item of items) jobs.push(writer.append(mb, item));
          // The same key twice at once: one is written, the other reports the duplicate.
          jobs.push(writer.append(mb, items[0]!));
        }
        const receipts = await Promise.all(jobs);
        await writer.flush();
        assert.equal(receipts.filter((r) => !r.duplicate).length, items.length * 2);
        for (const mb of [box(1), box(2)]) {
          const inventory = await writer.inventory!(mb);
          assert.deepEqual([...inventory.keys()].sort(), items.map((i) => i.key).sort(), mb);
          assert.ok(
            [...inventory.values()].every((n) => n === 1),
            mb,
          );
        }
        assert.equal((await writer.inventory!(box(0))).has('c1k0'), false, 'nothing leaks into another mailbox');
      } finally {
        await writer.close();
      }
    });

    it('files a 1 MB item with non-ASCII content unchanged in count', async () => {
      const writer = target.open();
      try {
        const body = `Prix: 12 € — ${'données '.repeat(1)}\r\n${'x'.repeat(76)}\r\n`.repeat(13_000);
        const item = makeItem('c2big', new Date(BASE), body);
        assert.ok(item.content.length > 1_000_000);
        assert.equal((await writer.append(box(2), item)).duplicate, false);
        await writer.flush();
        assert.equal((await writer.inventory!(box(2))).get('c2big'), 1);
      } finally {
        await writer.close();
      }
    });

    it('files items held in staged files, alone and among items in memory', async () => {
      const writer = target.open();
      const dir = await mkdtemp(path.join(os.tmpdir(), 'contract-files-'));
      try {
        const body = `${'Zeile mit Umlauten: äöü '.repeat(3)}\r\n`.repeat(20_000);
        const items = [
          await inFile(makeItem('c3file0', new Date(BASE), body), dir),
          makeItem('c3mem1', new Date(BASE + 60_000)),
          await inFile(makeItem('c3file2', new Date(BASE + 120_000)), dir),
        ];
        const receipts = await Promise.all(items.map((item) => writer.append(box(1), item)));
        assert.ok(receipts.every((r) => !r.duplicate));
        await writer.flush();
        assert.equal((await writer.append(box(1), items[0]!)).duplicate, true);
        const inventory = await writer.inventory!(box(1));
        for (const item of items) assert.equal(inventory.get(item.key), 1, item.key);
      } finally {
        await writer.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
