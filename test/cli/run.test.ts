import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { silentLogger } from '../../src/core/logger.ts';
import { isComplete, reconcile } from '../../src/core/reconcile.ts';
import { createMaildirWriter } from '../../src/deliver/maildir/index.ts';
import type { GroundTruth } from '../../src/emulator/symphony/index.ts';

const exec = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return exec(process.execPath, ['--import', 'tsx', MAIN, ...args], { maxBuffer: 64 << 20 });
}

/** Starts `symphony-archiver emulator symphony` and resolves with its URL once it prints it. */
function startEmulatorCli(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'emulator', 'symphony', ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = /serving .* at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      if (url) resolve({ child, url });
    });
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}: ${out}`)));
  });
}

describe('emulator and run commands', () => {
  let dir: string;
  let emulator: { child: ChildProcess; url: string };
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cli-run-'));
    emulator = await startEmulatorCli([
      '--port',
      '0',
      '--seed',
      '3',
      '--users',
      '16',
      '--streams',
      '10',
      '--messages',
      '300',
      '--bot-private-key-out',
      path.join(dir, 'bot.pem'),
      '--rate-500',
      '0.05',
      '--session-expiry-every',
      '25',
    ]);
  });
  after(async () => {
    emulator?.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('archives through injected faults, reports JSON, writes an import log, and a second run adds nothing', async () => {
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(
      configPath,
      stringify({
        dataDir: 'data',
        connectors: [
          {
            id: 'pod1',
            source: {
              kind: 'symphony',
              podUrl: emulator.url,
              username: 'archiver-bot',
              privateKeyPath: 'bot.pem',
              backoffBaseMs: 10,
            },
            destination: { kind: 'maildir', root: 'mail' },
          },
        ],
      }),
    );
    const first = JSON.parse((await cli(['run', '--config', configPath, '--json'])).stdout) as {
      results: {
        connector: string;
        run: { id: number; status: string; delivered: number; unmapped: number };
        source: { retries: number; reauthentications: number };
      }[];
    };
    const result = first.results[0]!;
    assert.equal(result.run.status, 'succeeded');
    assert.ok(result.source.retries > 0, 'the injected 500s were retried');
    assert.ok(result.source.reauthentications > 0, 'expired sessions were renewed');

    const truth = (await (await fetch(`${emulator.url}/emulator/ground-truth`)).json()) as GroundTruth;
    const writer = createMaildirWriter({ root: path.join(dir, 'mail') }, { logger: silentLogger() });
    const r = await reconcile(truth.mailboxes, (mb) => writer.inventory!(mb));
    assert.ok(isComplete(r));
    assert.equal(result.run.delivered, r.expected);

    const log = JSON.parse((await cli(['log', '--config', configPath, '--json'])).stdout) as {
      run: { id: number };
      ledger: { status: string; reason: string | null }[];
      events: { kind: string }[];
    };
    assert.equal(log.run.id, result.run.id);
    assert.equal(log.ledger.filter((row) => row.status === 'delivered').length, result.run.delivered);
    assert.equal(log.ledger.filter((row) => row.status === 'unmapped').length, result.run.unmapped);
    const text = (await cli(['log', '--config', configPath])).stdout;
    assert.match(text, /unmapped-user/);

    const second = JSON.parse((await cli(['run', '--config', configPath, '--json'])).stdout) as typeof first;
    assert.equal(second.results[0]!.run.delivered, 0);
    assert.ok(isComplete(await reconcile(truth.mailboxes, (mb) => writer.inventory!(mb))));
    // The key file's content never reaches the output.
    const key = await readFile(path.join(dir, 'bot.pem'), 'utf8');
    assert.ok(!text.includes(key.split('\n')[1]!));
  });
});
