import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createSymphonyMimeConverter } from '../../src/convert/index.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { runCycle, type CycleDeps } from '../../src/core/pipeline.ts';
import { isComplete, reconcile } from '../../src/core/reconcile.ts';
import { createMaildirWriter } from '../../src/deliver/maildir/index.ts';
import { startSymphonyEmulator, type SymphonyEmulator } from '../../src/emulator/symphony/index.ts';
import type { Source, SourcePage } from '../../src/source/source.ts';
import { createSymphonySource } from '../../src/source/symphony/index.ts';
import { createLocalStager } from '../../src/stage/local/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/index.ts';

/** The real source, with two records a pod could send that cannot be keyed added to one stream's first page. */
function withMalformedRecords(source: Source, streamId: () => string | undefined): Source {
  return {
    kind: source.kind,
    check: (signal) => source.check(signal),
    conversations: (signal) => source.conversations(signal),
    members: (conversation, signal) => source.members(conversation, signal),
    users: (ids, signal) => source.users(ids, signal),
    attachment: (c, m, a, consume, signal) => source.attachment(c, m, a, consume, signal),
    readFeed: (kind, from, signal) => source.readFeed(kind, from, signal),
    stats: () => source.stats(),
    close: () => source.close(),
    messages: async function* (conversationId, from, signal): AsyncIterable<SourcePage> {
      let first = true;
      for await (const page of source.messages(conversationId, from, signal)) {
        if (first && conversationId === streamId() && from.ts === 0) {
          const ts = page.messages[0]!.timestamp;
          yield {
            ...page,
            malformed: [
              {
                key: `malformed.${conversationId}.0.0.900`,
                reason: 'no messageId',
                record: { timestamp: ts },
                timestamp: ts,
              },
              { key: `malformed.${conversationId}.0.0.901`, reason: 'not an object', record: 'oops' },
            ],
          };
        } else yield page;
        first = false;
      }
    },
  };
}

describe('a page with records that cannot be keyed', () => {
  let emulator: SymphonyEmulator;
  let dir: string;
  let privateKeyPem: string;
  before(async () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    privateKeyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    emulator = await startSymphonyEmulator({
      seed: 4,
      users: 16,
      streams: 6,
      messages: 200,
      botPublicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'malformed-'));
  });
  after(async () => {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('quarantines them with their reason and archives the rest of the stream', async () => {
    const logger = silentLogger();
    const store = openSqliteStore(path.join(dir, 'state.db'));
    await store.ensureConnector({ id: 'c', name: 'c', sourceKind: 'symphony', destinationKind: 'maildir' });
    let target: string | undefined;
    const cycle = async () => {
      const real = createSymphonySource(
        {
          podUrl: emulator.url,
          agentUrl: emulator.url,
          keyManagerUrl: emulator.url,
          username: 'archiver-bot',
          privateKeyPem,
        },
        { logger },
      );
      if (!target) for await (const c of real.conversations()) target ??= c.lastMessageDate ? c.id : undefined;
      const deps: CycleDeps = {
        connectorId: 'c',
        source: withMalformedRecords(real, () => target),
        converter: createSymphonyMimeConverter(),
        stager: createLocalStager({ root: path.join(dir, 'staging') }),
        writer: createMaildirWriter({ root: path.join(dir, 'mail') }, { logger }),
        store,
        logger,
        mapping: { overrides: {} },
        convert: { messageIdDomain: 'symphony.test', syntheticDomain: 'symphony.invalid' },
        maxAttempts: 3,
        concurrency: 4,
      };
      return runCycle(deps);
    };
    try {
      const first = await cycle();
      assert.equal(first.run.status, 'succeeded');
      assert.equal(first.run.quarantined, 2);
      const quarantine = await store.quarantined('c');
      assert.deepEqual(quarantine.map((q) => [q.messageId, q.reason]).sort(), [
        [`malformed.${target}.0.0.900`, 'malformed message record: no messageId'],
        [`malformed.${target}.0.0.901`, 'malformed message record: not an object'],
      ]);
      assert.equal(quarantine.find((q) => q.reason.endsWith('not an object'))?.raw, '"oops"');
      const events = await store.events(first.run.id);
      assert.equal(events.filter((e) => e.kind === 'quarantined').length, 2);

      const writer = createMaildirWriter({ root: path.join(dir, 'mail') }, { logger });
      assert.ok(isComplete(await reconcile(emulator.groundTruth().mailboxes, (mb) => writer.inventory!(mb))));

      // Kept and counted on every cycle until an operator deals with them; never dropped, never delivered.
      const second = await cycle();
      assert.equal(second.run.quarantined, 2);
      assert.equal(second.run.delivered, 0);
      assert.ok((await store.quarantined('c')).every((q) => q.attempts === 2));
    } finally {
      await store.close();
    }
  });
});
