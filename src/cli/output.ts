import cliProgress from 'cli-progress';
import type { CycleProgress, CycleReport } from '../core/pipeline.ts';
import type { RunRow } from '../store/state-store.ts';

/** Where a command reports: a progress bar on a terminal, plain lines otherwise, one JSON document with --json. */
export interface Reporter {
  readonly json: boolean;
  progress(connectorId: string): ((p: CycleProgress) => void) | undefined;
  done(): void;
  line(text: string): void;
}

export function createReporter(options: { json: boolean }): Reporter {
  const tty = !options.json && process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  return {
    json: options.json,
    progress(connectorId) {
      if (!tty) return undefined;
      return (p) => {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            {
              format: `${connectorId} [{bar}] {value}/{total} conversations | {messages} messages | {delivered} filed`,
              hideCursor: true,
              clearOnComplete: true,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.streamsTotal, p.streamsDone, { messages: 0, delivered: 0 });
        }
        bar.setTotal(p.streamsTotal);
        bar.update(p.streamsDone, { messages: p.counts.messages, delivered: p.counts.delivered });
      };
    },
    done() {
      bar?.stop();
      bar = undefined;
    },
    line(text) {
      if (!options.json) process.stdout.write(`${text}\n`);
    },
  };
}

export function runSummary(run: RunRow): string {
  const parts = [
    `${run.streams} conversations`,
    `${run.messages} messages read`,
    `${run.delivered} items filed`,
    `${run.duplicates} already present`,
    `${run.unmapped} unmapped`,
    `${run.quarantined} quarantined`,
    ...(run.partial ? [`${run.partial} partially imported`] : []),
    `${run.failed} failed`,
    `${run.warnings} warnings`,
  ];
  return `run ${run.id} ${run.status}: ${parts.join(', ')}${run.error ? `\n  ${run.error}` : ''}`;
}

export function reportJson(report: CycleReport): Record<string, unknown> {
  return { run: report.run, source: report.source, durationMs: Math.round(report.durationMs) };
}
