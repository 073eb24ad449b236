import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliResult } from '../helpers/cli.ts';

/** Stands in for key material: it must never appear in anything the CLI prints. */
const SECRET = 'c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtcHJpbnQ';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, { ...process.env, LOG_LEVEL: 'trace' });
}

function connectorYaml(id: string, keyPath: string, extra: string[] = []): string[] {
  return [
    `  - id: ${id}`,
    '    source:',
    '      kind: symphony',
    // Loopback and a closed port: nothing is contacted before the key is checked.
    '      podUrl: http://127.0.0.1:9',
    '      username: archiver-bot',
    `      privateKeyPath: ${JSON.stringify(keyPath)}`,
    ...extra,
    '    destination:',
    '      kind: maildir',
    '      root: mail',
  ];
}

let dir: string;
let badConfig: Promise<Result>;
let badKeys: Promise<Result>;
const pemWithSecret = `-----BEGIN RSA PRIVATE KEY-----\n${SECRET}\n${SECRET}\n-----END RSA PRIVATE KEY-----\n`;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sa-config-cli-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    [
      'logLevel: chatty',
      'connectors:',
      '  - id: Acme Pod',
      '    source:',
      '      kind: symphony',
      '      podUrl: http://acme.symphony.com',
      '      username: ""',
      '      privateKeyPath: bot.pem',
      // Pasting the key into the config is a mistake the error must name without echoing.
      '      privateKey: |',
      ...pemWithSecret
        .trimEnd()
        .split('\n')
        .map((l) => `        ${l}`),
      '    destination:',
      '      kind: maildir',
      '  - id: second',
      '    source:',
      '      kind: symphony',
      '      podUrl: https://acme.symphony.com',
      '      username: bot',
      '      privateKeyPath: bot.pem',
      '      pageSize: 9000',
      '    destination:',
      '      kind: pigeon-post',
      '',
    ].join('\n'),
  );

  const keys = join(dir, 'keys');
  mkdirSync(join(keys, 'a-directory'), { recursive: true });
  writeFileSync(join(keys, 'garbage.pem'), pemWithSecret);
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' });
  writeFileSync(join(keys, 'ec.pem'), ec);
  const keyConfig = join(dir, 'keys.yaml');
  writeFileSync(
    keyConfig,
    [
      'dataDir: data',
      'connectors:',
      ...connectorYaml('unreadable', 'keys/a-directory'),
      ...connectorYaml('missing', 'keys/none.pem'),
      ...connectorYaml('garbage', 'keys/garbage.pem'),
      ...connectorYaml('not-rsa', 'keys/ec.pem'),
      '',
    ].join('\n'),
  );
  // Both runs start at once; each spawn costs a couple of seconds.
  badConfig = cli(['run', '--config', bad]);
  badKeys = cli(['run', '--config', keyConfig]);
  badKeys.then(() => undefined).catch(() => undefined);
  return Promise.all([badConfig, badKeys]).then(() => undefined);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('run --config with an invalid config', () => {
  it('exits 2 and prints every problem with its path', async () => {
    const r = await badConfig;
    assert.equal(r.code, 2, r.stderr);
    for (const line of [
      /^logLevel: /m,
      /^connectors\.0\.id: must be lower-case/m,
      /^connectors\.0\.source\.podUrl: must be an https URL/m,
      /^connectors\.0\.source\.username: /m,
      /^connectors\.0\.source: Unrecognized key: "privateKey"/m,
      /^connectors\.0\.destination\.root: /m,
      /^connectors\.1\.source\.pageSize: /m,
      /^connectors\.1\.destination\.kind: /m,
    ]) {
      assert.match(r.stderr, line);
    }
    assert.match(r.stderr, /ERR_CONFIG_INVALID/);
    assert.ok(!r.stderr.includes('    at '), 'no stack trace');
  });

  it('does not echo a key pasted into the config', async () => {
    const r = await badConfig;
    assert.ok(!`${r.stdout}${r.stderr}`.includes(SECRET));
    assert.ok(!`${r.stdout}${r.stderr}`.includes('BEGIN RSA'));
  });
});

describe('run --config with an unusable private key file', () => {
  it('fails each connector with a reason that names the file, never its contents', async () => {
    const r = await badKeys;
    assert.notEqual(r.code, 0);
    const out = `${r.stdout}${r.stderr}`;
    assert.ok(!out.includes(SECRET), out);
    assert.ok(!out.includes('BEGIN'), out);
    assert.ok(!out.includes('PRIVATE KEY'), out);
    assert.match(out, /unreadable: .*cannot read the bot private key file .*a-directory/);
    assert.match(out, /missing: .*cannot read the bot private key file .*none\.pem/);
    assert.match(out, /garbage: .*private key file .*garbage\.pem: is not a readable PEM private key/);
    assert.match(out, /not-rsa: .*private key file .*\.pem: must be an RSA key/);
  });

  it('exits 2, as for any other config problem', async () => {
    assert.equal((await badKeys).code, 2);
  });
});
