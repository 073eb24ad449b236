import { openStore } from '../../app.ts';
import { loadConfig } from '../../config/load.ts';
import { AppError } from '../../core/errors.ts';
import { runSummary } from '../output.ts';

/** The import log of one run (the Purview connector's "Download log", kept as long as the state database). */
export async function logCommand(options: {
  config: string;
  connector?: string;
  run?: number;
  json: boolean;
}): Promise<number> {
  const config = await loadConfig(options.config);
  const connectorId = options.connector ?? config.connectors[0]!.id;
  const store = openStore(config.dataDir);
  try {
    const run = options.run !== undefined ? await store.run(options.run) : (await store.runs(connectorId, 1))[0];
    if (!run || run.connectorId !== connectorId) {
      throw new AppError(
        'ERR_INPUT_INVALID',
        options.run !== undefined ? `no run ${options.run} for ${connectorId}` : `${connectorId} has no runs yet`,
      );
    }
    const [events, ledger] = [await store.events(run.id), await store.runLedger(run.id)];
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ run, events, ledger }, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(
      `${runSummary(run)}\nstarted ${run.startedAt}, finished ${run.finishedAt ?? '-'}\n\nevents:\n`,
    );
    for (const e of events) process.stdout.write(`${e.at}\t${e.level}\t${e.kind}\t${e.itemId ?? ''}\t${e.reason}\n`);
    process.stdout.write('\nitems (message, mailbox, status, receipt or reason):\n');
    for (const r of ledger) {
      process.stdout.write(
        `${new Date(r.messageTs).toISOString()}\t${r.messageId}\t${r.mailbox}\t${r.status}\t${r.receipt ?? r.reason ?? ''}\n`,
      );
    }
    return 0;
  } finally {
    await store.close();
  }
}
