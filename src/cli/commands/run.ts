import { openStore, runConnector } from '../../app.ts';
import { loadConfig } from '../../config/load.ts';
import { AppError, isAppError, reasonOf } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import type { RunRow } from '../../store/state-store.ts';
import { createReporter, reportJson, runSummary } from '../output.ts';

/** Stops the cycle cleanly on Ctrl-C / SIGTERM: the current batch is recorded, then the run ends `interrupted`. */
export function abortOnSignals(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

export async function runCommand(options: {
  config: string;
  connector?: string;
  json: boolean;
  follow?: boolean;
}): Promise<number> {
  const config = await loadConfig(options.config);
  const connectors = config.connectors.filter((c) => !options.connector || c.id === options.connector);
  if (!connectors.length)
    throw new AppError('ERR_CONFIG_INVALID', `no connector "${options.connector}" in ${options.config}`);
  // Following never returns, so it takes exactly one connector.
  if (options.follow && connectors.length !== 1)
    throw new AppError('ERR_CONFIG_INVALID', '--follow needs exactly one connector: add --connector <id>');
  const reporter = createReporter({ json: options.json });
  const logger = createLogger({ level: options.json || process.stderr.isTTY ? 'warn' : config.logLevel });
  const store = openStore(config.dataDir);
  const { signal, dispose } = abortOnSignals();
  const results: Record<string, unknown>[] = [];
  let failed = false;
  let misconfigured = false;
  try {
    for (const connector of connectors) {
      try {
        const progress = reporter.progress(connector.id);
        const report = await runConnector(config, connector, {
          logger,
          store,
          signal,
          follow: options.follow ?? false,
          ...(progress ? { onProgress: progress } : {}),
        });
        reporter.done();
        reporter.line(`${connector.id}: ${runSummary(report.run)} in ${(report.durationMs / 1000).toFixed(1)} s`);
        results.push({ connector: connector.id, ...reportJson(report) });
        failed ||= report.run.status !== 'succeeded';
      } catch (err) {
        reporter.done();
        const run = (err as { run?: RunRow }).run;
        reporter.line(`${connector.id}: ${run ? runSummary(run) : reasonOf(err)}`);
        results.push({ connector: connector.id, error: reasonOf(err), ...(run ? { run } : {}) });
        failed = true;
        misconfigured ||= isAppError(err, 'ERR_CONFIG_INVALID');
        if (signal.aborted) break;
      }
    }
  } finally {
    dispose();
    await store.close();
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ results }, null, 2)}\n`);
  // Exit 2 as for any invalid config (cli/main.ts), so a scheduler can tell set-up errors from failed cycles.
  return misconfigured ? 2 : failed ? 1 : 0;
}
