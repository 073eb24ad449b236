import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWriter, openStore, runConnector } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { isComplete, reconcile } from '../../src/core/reconcile.ts';
import {
  DEFAULT_CLIENT_ID,
  DEFAULT_CLIENT_SECRET,
  startGraphEmulator,
  type GraphEmulator,
} from '../../src/emulator/graph/index.ts';
import { startSymphonyEmulator, type SymphonyEmulator } from '../../src/emulator/symphony/index.ts';

describe('a destination that keeps asking to slow down', () => {
  let dir: string;
  let symphony: SymphonyEmulator;
  let graph: GraphEmulator;
  let config: Config;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'throttle-'));
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(path.join(dir, 'bot.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(path.join(dir, 'graph.secret'), DEFAULT_CLIENT_SECRET);
    symphony = await startSymphonyEmulator({
      seed: 8,
      users: 10,
      streams: 4,
      messages: 60,
      botPublicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    graph = await startGraphEmulator();
    // Three imports answer 429 with Retry-After: 1 s, longer than the writer's own patience below, so the writer
    // hands the pause to the cycle.
    graph.injectFault({ fault: 'throttle', path: '/importMime', after: 4, times: 3, retryAfterSeconds: 1 });
    config = parseConfig(
      {
        dataDir: 'data',
        connectors: [
          {
            id: 'graph',
            source: { kind: 'symphony', podUrl: symphony.url, username: 'archiver-bot', privateKeyPath: 'bot.pem' },
            destination: {
              kind: 'graph',
              tenantId: graph.tenantId,
              clientId: DEFAULT_CLIENT_ID,
              auth: { method: 'secret', secretFile: 'graph.secret' },
              authorityHost: graph.authorityHost,
              graphUrl: graph.graphUrl,
              maxRetryWaitMs: 100,
            },
          },
        ],
      },
      dir,
    );
  });
  after(async () => {
    await Promise.allSettled([symphony?.close(), graph?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('pauses the mailbox for the asked time and files everything in the same cycle, once', async () => {
    const logger = silentLogger();
    const store = openStore(config.dataDir);
    try {
      const report = await runConnector(config, config.connectors[0]!, { logger, store });
      const failures = (await store.runLedger(report.run.id)).filter((r) => r.status === 'failed');
      assert.equal(
        report.run.failed,
        0,
        failures
          .slice(0, 3)
          .map((r) => r.reason)
          .join('\n'),
      );
      assert.ok(
        graph.requests().some((r) => r.status === 429),
        'the emulator did throttle',
      );
    } finally {
      await store.close();
    }
    const writer = createWriter(config.connectors[0]!.destination, { logger });
    const r = await reconcile(symphony.groundTruth().mailboxes, (mb) => writer.inventory!(mb));
    await writer.close();
    assert.ok(isComplete(r), JSON.stringify({ missing: r.missing.length, duplicated: r.duplicated }));
  });
});
