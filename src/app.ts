import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config, ConnectorConfig, DestinationConfig } from './config/schema.ts';
import { createSymphonyMimeConverter } from './convert/index.ts';
import { AppError, isAppError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import { ArchiveCycle, type CycleDeps, type CycleProgress, type CycleReport } from './core/pipeline.ts';
import type { MailboxWriter } from './deliver/mailbox-writer.ts';
import { createGraphWriter } from './deliver/graph/index.ts';
import { createImapWriter } from './deliver/imap/index.ts';
import { createMaildirWriter } from './deliver/maildir/index.ts';
import type { Source } from './source/source.ts';
import { createSymphonySource } from './source/symphony/index.ts';
import { createLocalStager } from './stage/local/index.ts';
import { openSqliteStore } from './store/sqlite/index.ts';
import type { StateStore } from './store/state-store.ts';

type DestinationFactory<K extends DestinationConfig['kind']> = (
  config: Extract<DestinationConfig, { kind: K }>,
  deps: { logger: Logger },
) => MailboxWriter;

/** Every destination kind maps to its factory here, checked at compile time (style.md §4.2). */
export const DESTINATIONS: { [K in DestinationConfig['kind']]: DestinationFactory<K> } = {
  maildir: (config, deps) => createMaildirWriter({ root: config.root, folder: config.folder }, deps),
  imap: (config, deps) => createImapWriter(config, deps),
  graph: (config, deps) => createGraphWriter(config, deps),
};

export function createWriter(config: DestinationConfig, deps: { logger: Logger }): MailboxWriter {
  const factory = DESTINATIONS[config.kind] as DestinationFactory<typeof config.kind>;
  return factory(config, deps);
}

export function statePath(dataDir: string): string {
  return join(dataDir, 'state.db');
}

export function openStore(dataDir: string): StateStore {
  return openSqliteStore(statePath(dataDir));
}

async function readPrivateKey(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    // The path is configuration, not a secret; the file's content never appears in an error.
    throw new AppError('ERR_CONFIG_INVALID', `cannot read the bot private key file ${path}`, {
      cause: (err as NodeJS.ErrnoException).code,
    });
  }
}

/** The key's problems are reported against the file the operator configured, never with its content. */
function openSource(s: ConnectorConfig['source'], connectorId: string, privateKeyPem: string, logger: Logger): Source {
  try {
    return createSymphonySource(
      {
        podUrl: s.podUrl,
        agentUrl: s.agentUrl ?? s.podUrl,
        keyManagerUrl: s.keyManagerUrl ?? s.podUrl,
        username: s.username,
        privateKeyPem,
        feedTag: s.feedTag ?? `symphony-archiver-${connectorId}`,
        pageSize: s.pageSize,
        requestTimeoutMs: s.requestTimeoutMs,
        maxRetries: s.maxRetries,
        backoffBaseMs: s.backoffBaseMs,
        requestsPerSecond: s.requestsPerSecond,
        caFile: s.caFile,
      },
      { logger },
    );
  } catch (err) {
    const why = isAppError(err, 'ERR_CONFIG_INVALID') ? /privateKeyPem (.*)$/.exec(err.message)?.[1] : undefined;
    if (why) throw new AppError('ERR_CONFIG_INVALID', `the bot private key file ${s.privateKeyPath}: ${why}`);
    throw err;
  }
}

export interface RunDeps {
  logger: Logger;
  store: StateStore;
  onProgress?: (p: CycleProgress) => void;
  signal?: AbortSignal;
  /**
   * With `capture: datafeed | datahose`: keep following the feed after the sweep, sweeping history again when the
   * feed had to be restarted and every `sweepIntervalHours`, until the signal aborts.
   */
  follow?: boolean;
}

/**
 * Runs one archive cycle for one connector of a validated config. With a real-time capture the feed is read up
 * to now first (creating it, so nothing sent during the sweep falls between the two), then history is swept.
 */
export async function runConnector(config: Config, connector: ConnectorConfig, deps: RunDeps): Promise<CycleReport> {
  const { source: s } = connector;
  await deps.store.ensureConnector({
    id: connector.id,
    name: connector.name ?? connector.id,
    sourceKind: s.kind,
    destinationKind: connector.destination.kind,
  });
  const source = openSource(s, connector.id, await readPrivateKey(s.privateKeyPath), deps.logger);
  const cycle = () => new ArchiveCycle(cycleDeps(config, connector, source, deps), deps.signal);
  try {
    if (s.capture === 'history') return await cycle().run();
    const kind = s.capture;
    await cycle().follow({ kind, untilIdle: true });
    let report = await cycle().run();
    while (deps.follow && !deps.signal?.aborted) {
      const until = Date.now() + s.sweepIntervalHours * 3_600_000;
      await cycle().follow({ kind, stopOnGap: true, until });
      report = await cycle().run();
    }
    return report;
  } finally {
    await source.close();
  }
}

function cycleDeps(config: Config, connector: ConnectorConfig, source: Source, deps: RunDeps): CycleDeps {
  const podHost = new URL(connector.source.podUrl).hostname;
  return {
    connectorId: connector.id,
    source,
    converter: createSymphonyMimeConverter(),
    stager: createLocalStager({ root: join(config.dataDir, 'staging', connector.id) }),
    writer: createWriter(connector.destination, { logger: deps.logger }),
    store: deps.store,
    logger: deps.logger,
    mapping: connector.mapping,
    convert: {
      messageIdDomain: connector.convert.messageIdDomain ?? `symphony.${podHost}`.toLowerCase(),
      syntheticDomain: connector.convert.syntheticDomain,
      roomEvents: connector.convert.roomEvents,
      ...(connector.convert.subjectTemplate ? { subjectTemplate: connector.convert.subjectTemplate } : {}),
    },
    maxAttempts: connector.delivery.maxAttempts,
    concurrency: connector.delivery.concurrency,
    streamConcurrency: connector.source.streamConcurrency,
    ...(connector.convert.format === 'daily-transcript'
      ? {
          transcript: {
            timeZone: connector.convert.timeZone,
            settleMs: connector.convert.transcriptSettleMinutes * 60_000,
          },
        }
      : {}),
    ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
  };
}
