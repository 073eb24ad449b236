import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createWriter, openStore, runConnector } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { CycleReport } from '../../src/core/pipeline.ts';
import { reconcile, type Reconciliation } from '../../src/core/reconcile.ts';
import {
  startSymphonyEmulator,
  type EmulatorOptions,
  type SymphonyEmulator,
} from '../../src/emulator/symphony/index.ts';
import type { StateStore } from '../../src/store/state-store.ts';

let keys: { privateKeyPem: string; publicKeyPem: string } | undefined;

function botKeys(): { privateKeyPem: string; publicKeyPem: string } {
  keys ??= (() => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return {
      privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
  })();
  return keys;
}

/** An emulated pod, a config file pointing a Maildir connector at it, and helpers to run and check cycles. */
export interface ArchiveHarness {
  dir: string;
  configPath: string;
  config: Config;
  emulator: SymphonyEmulator;
  mailRoot: string;
  /** One cycle in this process, with its own store opened and closed around it. */
  cycle(): Promise<CycleReport>;
  withStore<T>(fn: (store: StateStore) => Promise<T>): Promise<T>;
  /** The Maildir's content against the emulator's ground truth. */
  reconcile(): Promise<Reconciliation>;
  close(): Promise<void>;
}

export async function startArchiveHarness(
  pod: Omit<EmulatorOptions, 'botPublicKeyPem'>,
  extra: { source?: Record<string, unknown>; connector?: Record<string, unknown> } = {},
): Promise<ArchiveHarness> {
  const { privateKeyPem, publicKeyPem } = botKeys();
  const emulator = await startSymphonyEmulator({ ...pod, botPublicKeyPem: publicKeyPem });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'archive-'));
  // Dovecot's imap process (uid 5000) must be able to traverse to the mail root.
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'bot.pem'), privateKeyPem, { mode: 0o600 });
  const configPath = path.join(dir, 'config.yaml');
  await writeFile(
    configPath,
    stringify({
      dataDir: 'data',
      connectors: [
        {
          id: 'test',
          source: {
            kind: 'symphony',
            podUrl: emulator.url,
            username: 'archiver-bot',
            privateKeyPath: 'bot.pem',
            ...extra.source,
          },
          destination: { kind: 'maildir', root: 'mail' },
          ...extra.connector,
        },
      ],
    }),
  );
  const config = await loadConfig(configPath);
  const connector = config.connectors[0]!;
  const logger = silentLogger();
  const withStore = async <T>(fn: (store: StateStore) => Promise<T>): Promise<T> => {
    const store = openStore(config.dataDir);
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  };
  return {
    dir,
    configPath,
    config,
    emulator,
    mailRoot: path.join(dir, 'mail'),
    cycle: () => withStore((store) => runConnector(config, connector, { logger, store })),
    withStore,
    async reconcile() {
      const writer = createWriter(connector.destination, { logger });
      try {
        return await reconcile(emulator.groundTruth().mailboxes, (mb) => writer.inventory!(mb));
      } finally {
        await writer.close();
      }
    },
    async close() {
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
