/**
 * One measured task in a process of its own (forked by run.ts): its peak RSS and CPU profile are then the
 * archiver's alone, not the emulator's or the bench's. The task arrives as JSON in argv[2]; the result goes back
 * over the IPC channel.
 */
import { openStore, runConnector } from '../../src/app.ts';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { measureStages } from './stages.ts';
import type { ArchiveResult, ChildResult, ChildTask, CycleResult } from './types.ts';

const MEMORY_SAMPLE_MS = 100;

async function archive(task: Extract<ChildTask, { kind: 'archive' }>): Promise<ArchiveResult> {
  const config = parseConfig(task.config, task.baseDir);
  const connector = config.connectors.find((c) => c.id === task.connectorId);
  if (!connector) throw new Error(`no connector ${task.connectorId} in the bench config`);
  const store = openStore(config.dataDir);
  const cycles: CycleResult[] = [];
  const startRssKb = process.memoryUsage().rss / 1024;
  let maxRssKb = 0;
  let cpuMs = 0;
  // RSS alone does not say whether a peak is JS objects or Buffers; sampling both tells which to look for.
  const peak = { heapUsed: 0, external: 0 };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.external = Math.max(peak.external, m.external);
  }, MEMORY_SAMPLE_MS);
  try {
    for (let i = 0; i < task.cycles; i++) {
      const cpu = process.cpuUsage();
      const { run, source, durationMs } = await runConnector(config, connector, { logger: silentLogger(), store });
      if (i === 0) {
        const used = process.cpuUsage(cpu);
        cpuMs = (used.user + used.system) / 1000;
        maxRssKb = process.resourceUsage().maxRSS;
        clearInterval(sampler);
      }
      if (run.status !== 'succeeded') throw new Error(`cycle ${i + 1} ended ${run.status}: ${run.error ?? ''}`);
      cycles.push({ durationMs, run, source });
    }
  } finally {
    clearInterval(sampler);
    await store.close();
  }
  return {
    kind: 'archive',
    cycles,
    maxRssKb,
    startRssKb,
    peakHeapUsedKb: peak.heapUsed / 1024,
    peakExternalKb: peak.external / 1024,
    cpuMs,
  };
}

function perform(task: ChildTask): Promise<ChildResult> {
  switch (task.kind) {
    case 'archive':
      return archive(task);
    case 'stages':
      return measureStages(task);
  }
}

const task = JSON.parse(process.argv[2] ?? 'null') as ChildTask;
try {
  const result = await perform(task);
  await new Promise<void>((resolve, reject) =>
    process.send!(result, (err: Error | null) => (err ? reject(err) : resolve())),
  );
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
}
// The channel would keep the process alive; without it the process ends once the task's handles are closed,
// which lets `--cpu-prof` write its profile on a normal exit.
process.disconnect?.();
