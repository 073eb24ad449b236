/**
 * Transcript mode end to end (issue 4 item 6): emulated pod → daily transcripts in a Maildir. Each mailbox must hold
 * every item of the ground truth exactly once in its latest transcript of each conversation-day, every item on the
 * right day of the configured zone; a second cycle with nothing new files nothing; an item arriving after its day's
 * transcript was filed makes a labelled revision threaded under it, never an unlabelled second copy.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { dayOf } from '../../src/convert/transcript.ts';
import { canonicalId } from '../../src/core/ids.ts';
import { startArchiveHarness, type ArchiveHarness } from '../helpers/archive.ts';

const ZONE = 'America/New_York';
const POD = { seed: 11, users: 14, streams: 10, messages: 400 } as const;
const CONVERT = { format: 'daily-transcript', timeZone: ZONE, transcriptSettleMinutes: 0 };

interface Transcript {
  file: string;
  messageId: string;
  streamId: string;
  day: string;
  revision: number;
  references: string[];
  subject: string;
  items: { id: string; ts: number }[];
}

async function transcripts(mailRoot: string): Promise<Map<string, Transcript[]>> {
  const out = new Map<string, Transcript[]>();
  for (const mailbox of await readdir(mailRoot)) {
    const cur = path.join(mailRoot, mailbox, '.INBOX.Symphony', 'cur');
    const list: Transcript[] = [];
    for (const file of (await readdir(cur)).sort()) {
      const mail = await simpleParser(await readFile(path.join(cur, file)));
      const json = mail.attachments.find((a) => a.filename === 'symphony-transcript.json');
      assert.ok(json, `${file} has its transcript source`);
      // An event item's source is `{event, …, message}` (convert/index.ts), a message's the V4Message itself.
      type Message = { messageId: string; timestamp: number };
      const source = JSON.parse(json.content.toString('utf8')) as {
        entries: (Message | { event: string; message: Message })[];
      };
      const messages = source.entries.map((e) => ('event' in e ? e.message : e));
      const refs = mail.references;
      list.push({
        file,
        messageId: mail.messageId!,
        streamId: String(mail.headers.get('x-symphony-stream-id')),
        day: String(mail.headers.get('x-symphony-transcript-day')),
        revision: Number(mail.headers.get('x-symphony-transcript-revision')),
        references: refs === undefined ? [] : Array.isArray(refs) ? refs : [refs],
        subject: mail.subject ?? '',
        items: messages.map((m) => ({ id: canonicalId(m.messageId), ts: m.timestamp })),
      });
    }
    out.set(mailbox, list);
  }
  return out;
}

/** Per mailbox, the items of its latest transcript of each conversation-day, checking days and revisions. */
function latestItems(all: Map<string, Transcript[]>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [mailbox, list] of all) {
    const latest = new Map<string, Transcript>();
    const ids = new Set<string>();
    for (const t of list) {
      assert.ok(!ids.has(t.messageId), `${mailbox} holds ${t.messageId} twice`);
      ids.add(t.messageId);
      for (const item of t.items) assert.equal(dayOf(item.ts, ZONE), t.day, `${item.id} filed on ${t.day}`);
      const key = `${t.streamId} ${t.day}`;
      const before = latest.get(key);
      if (before) {
        // Two transcripts of one conversation-day in one mailbox: the later is a labelled revision of the earlier.
        const [older, newer] = before.revision < t.revision ? [before, t] : [t, before];
        assert.ok(newer.revision > 1 && newer.subject.includes(`revision ${newer.revision}`), newer.subject);
        assert.ok(newer.references.includes(older.messageId), 'a revision references what it supersedes');
        assert.ok(
          older.items.every((i) => newer.items.some((n) => n.id === i.id)),
          'a revision holds the whole day',
        );
        latest.set(key, newer);
      } else latest.set(key, t);
    }
    out.set(
      mailbox,
      [...latest.values()].flatMap((t) => t.items.map((i) => i.id)),
    );
  }
  return out;
}

function assertMatchesTruth(h: ArchiveHarness, latest: Map<string, string[]>): void {
  const truth = h.emulator.groundTruth().mailboxes;
  assert.deepEqual([...latest.keys()].sort(), Object.keys(truth).sort());
  for (const [mailbox, expected] of Object.entries(truth)) {
    const held = latest.get(mailbox)!;
    assert.equal(new Set(held).size, held.length, `${mailbox}: an item twice in its latest transcripts`);
    assert.deepEqual([...held].sort(), [...new Set(expected.map(canonicalId))].sort(), mailbox);
  }
}

describe('daily transcripts', { timeout: 180_000 }, () => {
  it('file every item once, on its day in the configured zone, and nothing again when nothing is new', async () => {
    const h = await startArchiveHarness(POD, { connector: { convert: CONVERT } });
    try {
      const first = await h.cycle();
      assert.equal(first.run.status, 'succeeded');
      const all = await transcripts(h.mailRoot);
      assert.ok([...all.values()].every((list) => list.every((t) => t.revision === 1)));
      assertMatchesTruth(h, latestItems(all));
      const filed = [...all.values()].reduce((n, list) => n + list.length, 0);
      assert.equal(first.run.delivered, filed);
      assert.ok(filed < first.run.messages, `${filed} transcripts for ${first.run.messages} messages`);

      const second = await h.cycle();
      assert.equal(second.run.delivered, 0);
      assert.equal(second.run.messages, 0);
      const again = await transcripts(h.mailRoot);
      assert.equal(
        [...again.values()].reduce((n, list) => n + list.length, 0),
        filed,
      );
    } finally {
      await h.close();
    }
  });

  it('an item arriving after its day was filed makes a labelled revision, threaded under the first', async () => {
    const h = await startArchiveHarness(
      { ...POD, seed: 12, longPollMs: 20, live: { startFraction: 0.5, capture: 'datahose' } },
      { source: { capture: 'datahose' }, connector: { convert: CONVERT } },
    );
    try {
      await h.cycle();
      h.emulator.releaseAll();
      await h.cycle();
      const all = await transcripts(h.mailRoot);
      const revisions = [...all.values()].flat().filter((t) => t.revision > 1);
      assert.ok(revisions.length > 0, 'the day running at the first sweep was revised');
      assertMatchesTruth(h, latestItems(all));
    } finally {
      await h.close();
    }
  });
});
