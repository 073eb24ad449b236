import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { statePath } from '../../src/app.ts';
import { isComplete } from '../../src/core/reconcile.ts';
import { startArchiveHarness, type ArchiveHarness } from '../helpers/archive.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** xorshift32: the kill times are reproducible from CRASH_SEED and printed, so a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Ledger rows whose outcome is recorded; -1 while the database or its schema does not exist yet. */
function settledRows(dbPath: string): number {
  if (!existsSync(dbPath)) return -1;
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 1000');
    const row = db.prepare("SELECT count(*) AS n FROM ledger WHERE status IN ('delivered', 'unmapped')").get();
    return (row as { n: number }).n;
  } catch {
    // The child may be creating the schema.
    return -1;
  } finally {
    db.close();
  }
}

interface Outcome {
  killed: boolean;
  code: number | null;
  output: string;
}

/**
 * Runs `symphony-archiver run` in a child process. With `kill`, SIGKILLs it `kill.afterMs` after the ledger has
 * grown past `kill.rows` rows (so the kill lands among deliveries, not in the tsx start-up), unless it ends first.
 */
function runChild(
  configPath: string,
  kill: { dbPath: string; rows: number; afterMs: number } | undefined,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'run', '--config', configPath, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    const poll = kill
      ? setInterval(() => {
          if (timer) return;
          if (settledRows(kill.dbPath) > kill.rows) {
            timer = setTimeout(() => (killed = child.kill('SIGKILL')), kill.afterMs);
          }
        }, 10)
      : undefined;
    child.once('error', reject);
    child.once('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ killed, code, output });
    });
  });
}

describe('a cycle killed with SIGKILL at random points', () => {
  let h: ArchiveHarness;
  before(async () => {
    h = await startArchiveHarness({ seed: 23, users: 24, streams: 16, messages: 700 });
  });
  after(() => h.close());

  it('ends, once restarted, with every expected item delivered exactly once', async (t) => {
    const seed = Number(process.env.CRASH_SEED ?? 20261125);
    const random = prng(seed);
    const expected = Object.values(h.emulator.groundTruth().mailboxes).reduce((n, ids) => n + ids.length, 0);
    const history: string[] = [];
    let midCycleKills = 0;
    const dbPath = statePath(h.config.dataDir);
    for (let attempt = 0; attempt < 6; attempt++) {
      const rows = Math.max(0, settledRows(dbPath));
      const delay = Math.round(random() * 700);
      const outcome = await runChild(h.configPath, { dbPath, rows, afterMs: delay });
      const r = await h.reconcile();
      history.push(`kill ${delay} ms after row ${rows}: killed=${outcome.killed} present=${r.present}/${expected}`);
      // A kill must never leave an item twice, whenever it lands.
      assert.deepEqual(r.duplicated, [], history.join('\n'));
      assert.deepEqual(r.unexpected, [], history.join('\n'));
      if (!outcome.killed) {
        assert.equal(outcome.code, 0, outcome.output);
        break;
      }
      if (r.present > 0 && r.present < expected) midCycleKills += 1;
    }
    assert.ok(midCycleKills >= 3, `at least three kills must land mid-cycle (seed ${seed}):\n${history.join('\n')}`);

    t.diagnostic(`seed ${seed}\n${history.join('\n')}`);
    const last = await runChild(h.configPath, undefined);
    assert.equal(last.code, 0, last.output);
    const r = await h.reconcile();
    assert.ok(isComplete(r), `${history.join('\n')}\n${JSON.stringify({ ...r, missing: r.missing.slice(0, 5) })}`);
    assert.equal(r.present, expected);

    const runs = await h.withStore((s) => s.runs('test', 100));
    // Every killed run is found and marked interrupted by the next start; none is left "running".
    assert.ok(runs.every((run) => run.status !== 'running'));
    assert.ok(runs.filter((run) => run.status === 'interrupted').length >= midCycleKills);
    const pending = await h.withStore((s) => s.pendingCopies('test'));
    assert.deepEqual(pending, []);
  });
});
