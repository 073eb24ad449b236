import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isAppError } from '../../../src/core/errors.ts';
import { advanceCursor, START_CURSOR, type Conversation, type SourceMessage } from '../../../src/core/types.ts';
import {
  startSymphonyEmulator,
  type FaultOptions,
  type SymphonyEmulator,
} from '../../../src/emulator/symphony/index.ts';
import type { Source } from '../../../src/source/source.ts';
import { botKeys, collect, collectPages, otherKeys, sourceFor } from './helpers.ts';

const POD = { seed: 7, users: 20, streams: 10, messages: 400 };

async function emulator(faults: FaultOptions = {}): Promise<SymphonyEmulator> {
  return startSymphonyEmulator({ ...POD, botPublicKeyPem: botKeys().publicKeyPem, faults });
}

/** Every message the ground truth expects somewhere: in a mailbox or on the unmapped list. */
function expectedIds(emu: SymphonyEmulator): Set<string> {
  const truth = emu.groundTruth();
  const ids = new Set<string>(Object.values(truth.mailboxes).flat());
  for (const u of truth.unmapped) ids.add(u.messageId);
  return ids;
}

async function readStream(source: Source, id: string, from = START_CURSOR): Promise<SourceMessage[]> {
  return (await collectPages(source.messages(id, from))).flat();
}

async function readAll(source: Source): Promise<{ conversations: Conversation[]; messages: SourceMessage[] }> {
  const conversations = await collect(source.conversations());
  const messages: SourceMessage[] = [];
  for (const c of conversations) messages.push(...(await readStream(source, c.id)));
  return { conversations, messages };
}

/** `Map.groupBy` arrived in Node 21; the project targets Node 20. */
function groupBy<T, K>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

function assertExactlyOnce(messages: SourceMessage[], expected: Set<string>): void {
  const ids = messages.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no message is read twice');
  assert.deepEqual(new Set(ids), expected);
}

describe('against the Symphony emulator', () => {
  let emu: SymphonyEmulator;
  let clean: { conversations: Conversation[]; messages: SourceMessage[] };
  before(async () => {
    emu = await emulator({ unknownStreamType: true });
    clean = await readAll(sourceFor(emu.url));
  });
  after(() => emu.close());

  it('a full read equals the ground truth', () => {
    const truth = emu.groundTruth();
    assert.equal(clean.conversations.length, truth.streams);
    assert.equal(clean.messages.length, truth.messages);
    assertExactlyOnce(clean.messages, expectedIds(emu));
    for (const id of truth.unknownStreamTypes) {
      assert.equal(clean.conversations.find((c) => c.id === id)?.type, 'CHATROOM');
    }
    for (const m of clean.messages) {
      assert.equal(m.timestamp, m.raw.timestamp);
      assert.ok(clean.conversations.some((c) => c.id === m.streamId));
    }
  });

  it('members and directory lookups resolve the senders', async () => {
    const source = sourceFor(emu.url);
    const senders = new Set(clean.messages.map((m) => String(m.raw.user.userId)));
    const members = new Set<string>();
    for (const c of clean.conversations) for (const m of await source.members(c)) members.add(m.person.userId);
    const found = await source.users([...senders]);
    for (const id of senders) assert.ok(members.has(id) || found.has(id), `sender ${id} is known`);
    const requests = source.stats().requests;
    await source.users([...senders]);
    assert.equal(source.stats().requests, requests, 'second lookup is served from the cache');
  });

  it('a page size of 3 crosses same-millisecond groups and yields every message exactly once', async () => {
    const source = sourceFor(emu.url, { pageSize: 3 });
    const messages: SourceMessage[] = [];
    for (const c of clean.conversations) messages.push(...(await readStream(source, c.id)));
    assertExactlyOnce(messages, expectedIds(emu));
    const perTs = new Map<string, number>();
    for (const m of messages)
      perTs.set(`${m.streamId}/${m.timestamp}`, (perTs.get(`${m.streamId}/${m.timestamp}`) ?? 0) + 1);
    assert.ok(Math.max(...perTs.values()) >= 12, 'the pod has a same-millisecond group longer than a page');
  });

  it('resuming from a mid-stream cursor yields the remainder, re-reading at most the slack at its millisecond', async () => {
    const source = sourceFor(emu.url, { pageSize: 4 });
    const byStream = groupBy(clean.messages, (m) => m.streamId);
    for (const [streamId, all] of byStream) {
      // Cut inside the largest same-millisecond group when there is one, else in the middle.
      const counts = groupBy(all, (m) => m.timestamp);
      const [groupTs] = [...counts].sort((a, b) => b[1].length - a[1].length)[0] ?? [];
      const firstOfGroup = all.findIndex((m) => m.timestamp === groupTs);
      const cut = (counts.get(groupTs ?? -1)?.length ?? 0) > 2 ? firstOfGroup + 2 : Math.floor(all.length / 2);
      const cursor = advanceCursor(
        START_CURSOR,
        all.slice(0, cut).map((m) => m.timestamp),
      );
      const rest = await readStream(source, streamId, cursor);
      // Half a page (2 here) of the messages already read at the cursor's millisecond come again (§2.8 removals).
      const from = Math.max(cut - Math.min(2, cursor.count), 0);
      assert.deepEqual(
        rest.map((m) => m.id),
        all.slice(from).map((m) => m.id),
      );
    }
  });

  it('attachments decode to their declared size; broken ones are ERR_SOURCE_ATTACHMENT', async () => {
    const source = sourceFor(emu.url);
    const withFiles = clean.messages.filter((m) => (m.raw.attachments ?? []).length > 0).slice(0, 8);
    assert.ok(withFiles.length > 0);
    for (const m of withFiles) {
      for (const a of m.raw.attachments ?? []) {
        const bytes = await source.attachment(m.streamId, m.id, { id: a.id, size: a.size }, async (b) =>
          Buffer.concat(await collect(b)),
        );
        assert.equal(bytes.length, a.size);
      }
    }
  });

  it('a wrong private key is ERR_SOURCE_AUTH and the error carries no key or JWT', async () => {
    const source = sourceFor(emu.url, { privateKeyPem: otherKeys().privateKeyPem });
    await assert.rejects(source.check(), (err) => {
      assert.ok(isAppError(err, 'ERR_SOURCE_AUTH'));
      const text = `${err.message} ${String(err.cause ?? '')} ${JSON.stringify(err)}`;
      assert.doesNotMatch(text, /eyJ|BEGIN|PRIVATE/);
      assert.equal(err.retryable, false);
      return true;
    });
  });
});

describe('against the Symphony emulator with faults', () => {
  const started: SymphonyEmulator[] = [];
  after(() => Promise.all(started.map((e) => e.close())));

  it('survives session expiry every few calls', async () => {
    const emu = await emulator({ sessionExpiryEvery: 5 });
    started.push(emu);
    const source = sourceFor(emu.url, { pageSize: 10 });
    const { messages } = await readAll(source);
    assertExactlyOnce(messages, expectedIds(emu));
    assert.ok(source.stats().reauthentications >= 3, `reauthentications: ${source.stats().reauthentications}`);
  });

  it('survives 429 with Retry-After and 500s', async () => {
    const emu = await emulator({ rate429: 0.15, retryAfterSeconds: 0, rate500: 0.1 });
    started.push(emu);
    const source = sourceFor(emu.url, { pageSize: 50, maxRetries: 10 });
    const { messages } = await readAll(source);
    assertExactlyOnce(messages, expectedIds(emu));
    const stats = source.stats();
    assert.ok(stats.throttled > 0 && stats.retries > stats.throttled, JSON.stringify(stats));
    assert.equal(stats.requests, emu.requestCount());
  });

  it('broken attachments fail with a retryable ERR_SOURCE_ATTACHMENT', async () => {
    const emu = await emulator({ brokenAttachments: true });
    started.push(emu);
    const broken = emu.groundTruth().brokenAttachments;
    assert.ok(broken.length > 0);
    const source = sourceFor(emu.url, { maxRetries: 1 });
    for (const b of broken) {
      await assert.rejects(
        source.attachment(b.streamId, b.messageId, { id: b.attachmentId }, async (b) =>
          Buffer.concat(await collect(b)),
        ),
        (err) => {
          assert.ok(isAppError(err, 'ERR_SOURCE_ATTACHMENT'));
          assert.equal(err.status, 500);
          assert.equal(err.retryable, true);
          return true;
        },
      );
    }
  });
});
