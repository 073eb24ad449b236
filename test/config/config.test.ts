import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { AppError, isAppError } from '../../src/core/errors.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sa-config-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function connector(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'acme',
    source: {
      kind: 'symphony',
      podUrl: 'https://acme.symphony.com',
      username: 'archiver-bot',
      privateKeyPath: 'keys/bot.pem',
    },
    destination: { kind: 'maildir', root: 'mail' },
    ...overrides,
  };
}

/** The problems of an invalid config, one `path: message` per line. */
function problems(input: unknown): string[] {
  try {
    parseConfig(input, '/etc/archiver');
  } catch (err) {
    assert.ok(isAppError(err, 'ERR_CONFIG_INVALID'), `expected ERR_CONFIG_INVALID, got ${String(err)}`);
    return err.message.split('\n').slice(1);
  }
  assert.fail('the config was accepted');
}

function assertProblem(lines: string[], path: string, message?: RegExp): void {
  const hit = lines.filter((l) => l.startsWith(`${path}: `));
  assert.ok(hit.length > 0, `no problem reported at ${path}; got:\n${lines.join('\n')}`);
  if (message)
    assert.ok(
      hit.some((l) => message.test(l)),
      `${path}: ${hit.join(' | ')} does not match ${message}`,
    );
}

describe('loadConfig', () => {
  it('loads a valid YAML with defaults and paths resolved against the config directory', async () => {
    const sub = join(dir, 'etc');
    const file = join(sub, 'archiver.yaml');
    mkdirSync(sub, { recursive: true });
    writeFileSync(
      file,
      [
        'connectors:',
        '  - id: acme',
        '    source:',
        '      kind: symphony',
        '      podUrl: https://acme.symphony.com',
        '      username: archiver-bot',
        '      privateKeyPath: keys/bot.pem',
        '    destination:',
        '      kind: maildir',
        '      root: /srv/mail',
        '    mapping:',
        '      overrides:',
        '        "7215545078461": Alice.Martin@Bank.Example',
        '      catchAll: Compliance@Bank.Example',
        '      domains: [Bank.Example]',
        '',
      ].join('\n'),
    );
    const cfg = await loadConfig(file);
    assert.equal(cfg.dataDir, join(sub, 'data'));
    assert.equal(cfg.logLevel, 'info');
    const c = cfg.connectors[0]!;
    assert.equal(c.source.privateKeyPath, join(sub, 'keys/bot.pem'));
    assert.equal(c.source.pageSize, 500);
    assert.equal(c.destination.kind, 'maildir');
    assert.equal(c.destination.kind === 'maildir' && c.destination.root, '/srv/mail', 'absolute paths are kept');
    assert.equal(c.destination.folder, 'Symphony');
    assert.deepEqual(c.mapping.overrides, { '7215545078461': 'alice.martin@bank.example' });
    assert.equal(c.mapping.catchAll, 'compliance@bank.example');
    assert.deepEqual(c.mapping.domains, ['bank.example']);
    assert.equal(c.convert.syntheticDomain, 'symphony.invalid');
    assert.equal(c.convert.messageIdDomain, undefined);
    assert.equal(c.delivery.maxAttempts, 10);
  });

  it('freezes the whole config object', () => {
    const cfg = parseConfig({ connectors: [connector()] }, '/etc/archiver');
    assert.ok(Object.isFrozen(cfg));
    assert.ok(Object.isFrozen(cfg.connectors));
    assert.ok(Object.isFrozen(cfg.connectors[0]!.source));
    assert.ok(Object.isFrozen(cfg.connectors[0]!.mapping.overrides));
    assert.throws(() => {
      (cfg as { dataDir: string }).dataDir = '/tmp';
    }, TypeError);
    assert.throws(() => {
      (cfg.connectors as unknown[]).push({});
    }, TypeError);
  });

  it('does not mutate or keep the input', () => {
    const input = { dataDir: 'state', connectors: [connector()] };
    const snapshot = structuredClone(input);
    const cfg = parseConfig(input, '/etc/archiver');
    assert.deepEqual(input, snapshot);
    assert.equal(cfg.dataDir, '/etc/archiver/state');
    assert.ok(!Object.isFrozen(input.connectors[0]));
  });

  it('reports an unreadable file and invalid YAML as ERR_CONFIG_INVALID', async () => {
    await assert.rejects(loadConfig(join(dir, 'missing.yaml')), (err: unknown) => {
      assert.ok(isAppError(err, 'ERR_CONFIG_INVALID'));
      assert.match(err.message, /missing\.yaml/);
      return true;
    });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'connectors: [\n  - id: : :\n');
    await assert.rejects(loadConfig(bad), (err: unknown) => isAppError(err, 'ERR_CONFIG_INVALID'));
    // A key pasted into the file breaks the YAML; the error names the place but never echoes the text.
    const pasted = join(dir, 'pasted.yaml');
    writeFileSync(
      pasted,
      'connectors:\n  - id: a\n    source:\n      privateKey: -----BEGIN RSA PRIVATE KEY-----\nMIIEsecretKEYmaterial\n',
    );
    await assert.rejects(loadConfig(pasted), (err: unknown) => {
      assert.ok(isAppError(err, 'ERR_CONFIG_INVALID'));
      assert.match(err.message, /pasted\.yaml is not valid YAML: .*line 5, column 1$/);
      assert.ok(!err.message.includes('MIIEsecretKEYmaterial'), err.message);
      assert.ok(!err.message.includes('BEGIN RSA'), err.message);
      return true;
    });
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '');
    await assert.rejects(loadConfig(empty), (err: unknown) => isAppError(err, 'ERR_CONFIG_INVALID'));
  });
});

describe('config validation', () => {
  it('reports every problem, each with its path', () => {
    const lines = problems({
      logLevel: 'loud',
      surprise: true,
      connectors: [
        connector({
          id: 'Not Valid',
          source: { kind: 'symphony', podUrl: 'ftp://pod.example', username: '', privateKeyPath: 'k', pageSize: 501 },
          destination: { kind: 'maildir', root: 'm', folder: '../etc' },
          mapping: { overrides: { '1': 'not-an-address' }, catchAll: 'nope', domains: ['not a domain'] },
          delivery: { maxAttempts: 0 },
        }),
        connector({ id: 'second', destination: { kind: 'pigeon-post' } }),
      ],
    });
    assertProblem(lines, 'logLevel');
    assertProblem(lines, '(root)', /surprise/);
    assertProblem(lines, 'connectors.0.id', /lower-case/);
    assertProblem(lines, 'connectors.0.source.podUrl', /https/);
    assertProblem(lines, 'connectors.0.source.username');
    assertProblem(lines, 'connectors.0.source.pageSize');
    assertProblem(lines, 'connectors.0.destination.folder');
    assertProblem(lines, 'connectors.0.mapping.overrides.1');
    assertProblem(lines, 'connectors.0.mapping.catchAll');
    assertProblem(lines, 'connectors.0.mapping.domains.0', /domain/);
    assertProblem(lines, 'connectors.0.delivery.maxAttempts');
    assertProblem(lines, 'connectors.1.destination.kind');
  });

  it('reports missing required fields with their paths', () => {
    const lines = problems({
      connectors: [{ id: 'a', source: { kind: 'symphony' }, destination: { kind: 'maildir' } }],
    });
    for (const p of ['podUrl', 'username', 'privateKeyPath']) assertProblem(lines, `connectors.0.source.${p}`);
    assertProblem(lines, 'connectors.0.destination.root');
    assertProblem(problems({}), 'connectors');
    assertProblem(problems({ connectors: [] }), 'connectors');
    assertProblem(problems(null), '(root)');
    assertProblem(problems('connectors'), '(root)');
  });

  it('reports a URL that is not a URL as a problem with its path, not a crash', () => {
    const lines = problems({
      connectors: [connector({ source: { ...(connector().source as object), podUrl: 'not a url', agentUrl: '::' } })],
    });
    assertProblem(lines, 'connectors.0.source.podUrl');
    assertProblem(lines, 'connectors.0.source.agentUrl');
  });

  it('rejects duplicate connector ids', () => {
    const lines = problems({ connectors: [connector(), connector({ id: 'other' }), connector()] });
    assertProblem(lines, 'connectors.2.id', /duplicate id "acme"/);
    assert.equal(lines.length, 1);
  });

  it('reports duplicate ids alongside other problems', () => {
    const lines = problems({ connectors: [connector(), connector({ destination: { kind: 'maildir' } })] });
    assertProblem(lines, 'connectors.1.destination.root');
    assertProblem(lines, 'connectors.1.id', /duplicate/);
  });

  it('accepts https and loopback http, rejects http elsewhere and credentials in URLs', () => {
    const withUrl = (podUrl: string) => ({
      connectors: [connector({ source: { ...(connector().source as object), podUrl } })],
    });
    for (const ok of [
      'https://acme.symphony.com',
      'http://127.0.0.1:8443',
      'http://localhost:8080',
      'http://[::1]:9',
    ]) {
      assert.doesNotThrow(() => parseConfig(withUrl(ok), '/'), ok);
    }
    for (const bad of [
      'http://acme.symphony.com',
      'http://10.0.0.1',
      'http://127.0.0.1.nip.io',
      'http://localhost.evil.example',
      'ftp://acme.symphony.com',
      'https://user:secret@acme.symphony.com',
      'https://acme.symphony.com/?token=1',
    ]) {
      assertProblem(problems(withUrl(bad)), 'connectors.0.source.podUrl');
    }
    const keyManager = problems({
      connectors: [connector({ source: { ...(connector().source as object), keyManagerUrl: 'http://km.example' } })],
    });
    assertProblem(keyManager, 'connectors.0.source.keyManagerUrl');
  });

  it('normalises override keys so an email override matches case-insensitively', () => {
    const cfg = parseConfig(
      {
        connectors: [
          connector({ mapping: { overrides: { 'Alice.Martin@Bank.Example': 'archive-alice@bank.example' } } }),
        ],
      },
      '/',
    );
    assert.deepEqual(cfg.connectors[0]!.mapping.overrides, {
      'alice.martin@bank.example': 'archive-alice@bank.example',
    });
    const lines = problems({
      connectors: [
        connector({ mapping: { overrides: { 'a@b.example': 'x@b.example', 'A@B.example': 'y@b.example' } } }),
      ],
    });
    assertProblem(lines, 'connectors.0.mapping.overrides.A@B.example', /a@b\.example/);
  });

  it('throws AppError with the table message and the problems in the detail', () => {
    assert.throws(
      () => parseConfig({ connectors: [connector({ id: '' })] }, '/'),
      (err: unknown) =>
        err instanceof AppError &&
        err.code === 'ERR_CONFIG_INVALID' &&
        err.message.startsWith('Configuration is invalid:') &&
        err.message.includes('connectors.0.id: '),
    );
  });
});
