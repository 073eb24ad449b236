import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWriter, openStore, runConnector } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { idToken } from '../../src/core/ids.ts';
import { silentLogger } from '../../src/core/logger.ts';
import {
  DEFAULT_CLIENT_ID,
  DEFAULT_CLIENT_SECRET,
  startGraphEmulator,
  type GraphEmulator,
} from '../../src/emulator/graph/index.ts';
import { startSymphonyEmulator, type GroundTruth, type SymphonyEmulator } from '../../src/emulator/symphony/index.ts';
import { startCyrus, type CyrusServer } from '../helpers/cyrus.ts';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.ts';

/**
 * The "done when": one generated pod archived into Maildir, Dovecot, Cyrus and the Graph emulator gives
 * the same keys (Message-IDs) in every user's Symphony folder, equal to the ground truth; a second cycle adds nothing.
 */
describe('one pod into every destination', { timeout: 300_000 }, () => {
  let dir: string;
  let symphony: SymphonyEmulator;
  let truth: GroundTruth;
  let dovecot: DovecotServer;
  let cyrus: CyrusServer;
  let graph: GraphEmulator;
  let config: Config;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'destinations-'));
    await chmod(dir, 0o755);
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(path.join(dir, 'bot.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    symphony = await startSymphonyEmulator({
      seed: 31,
      users: 16,
      streams: 8,
      messages: 240,
      botPublicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    truth = symphony.groundTruth();
    const users = Object.keys(truth.mailboxes);
    [dovecot, cyrus, graph] = await Promise.all([
      startDovecot({ mailRoot: path.join(dir, 'dovecot-mail'), users, masterUser: 'archiver' }),
      // With the "." separator Cyrus cannot hold user ids that contain a dot (alice.smith@…).
      startCyrus({ users, separator: '/' }),
      startGraphEmulator({ tls: true, users }),
    ]);
    await writeFile(path.join(dir, 'dovecot.pass'), dovecot.master!.password, { mode: 0o600 });
    await writeFile(path.join(dir, 'cyrus.pass'), cyrus.password, { mode: 0o600 });
    await writeFile(path.join(dir, 'graph.secret'), DEFAULT_CLIENT_SECRET, { mode: 0o600 });
    await writeFile(path.join(dir, 'graph-ca.pem'), graph.caPem!);
    const source = { kind: 'symphony', podUrl: symphony.url, username: 'archiver-bot', privateKeyPath: 'bot.pem' };
    const imap = (server: { host: string; port: number }) => ({
      kind: 'imap',
      host: server.host,
      port: server.port,
      security: 'none',
    });
    config = parseConfig(
      {
        dataDir: 'data',
        connectors: [
          { id: 'maildir', source, destination: { kind: 'maildir', root: 'mail' } },
          {
            id: 'dovecot',
            source,
            destination: {
              ...imap(dovecot),
              auth: { method: 'master', masterUser: 'archiver', passwordFile: 'dovecot.pass' },
            },
          },
          {
            id: 'cyrus',
            source,
            destination: {
              ...imap(cyrus),
              auth: { method: 'authzid', adminUser: cyrus.admin, passwordFile: 'cyrus.pass' },
            },
          },
          {
            id: 'graph',
            source,
            destination: {
              kind: 'graph',
              tenantId: graph.tenantId,
              clientId: DEFAULT_CLIENT_ID,
              auth: { method: 'secret', secretFile: 'graph.secret' },
              authorityHost: graph.authorityHost,
              graphUrl: graph.graphUrl,
              caFile: 'graph-ca.pem',
            },
          },
        ],
      },
      dir,
    );
  });

  after(async () => {
    await Promise.allSettled([symphony?.close(), dovecot?.stop(), cyrus?.stop(), graph?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('files the same items everywhere, equal to the ground truth, and a second cycle adds nothing', async () => {
    const logger = silentLogger();
    const expected = Object.fromEntries(
      Object.entries(truth.mailboxes).map(([mb, ids]) => [mb, ids.map(idToken).sort()]),
    );
    const total = Object.values(expected).reduce((n, keys) => n + keys.length, 0);
    const store = openStore(config.dataDir);
    try {
      for (const connector of config.connectors) {
        const first = await runConnector(config, connector, { logger, store });
        assert.equal(first.run.status, 'succeeded', `${connector.id}: ${first.run.error ?? ''}`);
        assert.equal(first.run.delivered, total, connector.id);
        assert.equal(first.run.failed, 0, connector.id);

        const writer = createWriter(connector.destination, { logger });
        try {
          for (const [mailbox, keys] of Object.entries(expected)) {
            const inventory = await writer.inventory!(mailbox);
            assert.deepEqual([...inventory.keys()].sort(), keys, `${connector.id}: ${mailbox}`);
            assert.ok(
              [...inventory.values()].every((n) => n === 1),
              `${connector.id}: ${mailbox} exactly once`,
            );
          }
        } finally {
          await writer.close();
        }

        const second = await runConnector(config, connector, { logger, store });
        assert.equal(second.run.delivered, 0, `${connector.id}: second cycle`);
      }
    } finally {
      await store.close();
    }
  });
});
