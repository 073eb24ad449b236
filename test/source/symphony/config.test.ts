import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import { isAppError } from '../../../src/core/errors.ts';
import { checkBaseUrl, resolveConfig, type SymphonySourceConfig } from '../../../src/source/symphony/config.ts';
import { botKeys } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'symphony-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function config(options: Partial<SymphonySourceConfig> = {}): SymphonySourceConfig {
  return {
    podUrl: 'https://acme.symphony.com',
    agentUrl: 'https://acme.symphony.com',
    keyManagerUrl: 'https://acme-km.symphony.com',
    username: 'archiver-bot',
    privateKeyPem: botKeys().privateKeyPem,
    ...options,
  };
}

function refuses(options: Partial<SymphonySourceConfig>, message: RegExp): void {
  assert.throws(
    () => resolveConfig(config(options)),
    (err) => isAppError(err, 'ERR_CONFIG_INVALID') && message.test(err.message),
  );
}

function selfSignedPem(): string {
  const out = join(dir, 'ca.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'ca.key'),
    ].concat(['-out', out, '-days', '1', '-subj', '/CN=Config Test CA']),
    { stdio: 'pipe' },
  );
  return out;
}

describe('source configuration', () => {
  it('requestsPerSecond: unset means no limit; any positive rate up to 10 000', () => {
    assert.equal(resolveConfig(config()).requestsPerSecond, undefined);
    assert.equal(resolveConfig(config({ requestsPerSecond: 0.5 })).requestsPerSecond, 0.5);
    assert.equal(resolveConfig(config({ requestsPerSecond: 400 })).requestsPerSecond, 400);
    for (const requestsPerSecond of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 10_001]) {
      refuses({ requestsPerSecond }, /requestsPerSecond must be a number above 0 and at most 10000/);
    }
  });

  it('caFile is read once, each certificate kept as its own PEM', () => {
    const ca = selfSignedPem();
    const bundle = join(dir, 'bundle.pem');
    writeFileSync(bundle, `# comment\n${readFileSync(ca, 'utf8')}\n${readFileSync(ca, 'utf8')}`);
    const resolved = resolveConfig(config({ caFile: bundle }));
    assert.equal(resolved.ca?.length, 2);
    assert.match(resolved.ca?.[0] ?? '', /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----$/);
    assert.equal(resolveConfig(config()).ca, undefined);
  });

  it('caFile problems are configuration errors that name the file, never its content', () => {
    refuses({ caFile: join(dir, 'missing.pem') }, /caFile .*missing\.pem cannot be read \(ENOENT\)/);
    const key = join(dir, 'key.pem');
    writeFileSync(key, botKeys().privateKeyPem);
    assert.throws(
      () => resolveConfig(config({ caFile: key })),
      (err) =>
        isAppError(err, 'ERR_CONFIG_INVALID') &&
        /caFile .*key\.pem holds no PEM certificate/.test(err.message) &&
        !err.message.includes('PRIVATE KEY'),
    );
    const broken = join(dir, 'broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    refuses({ caFile: broken }, /caFile .*broken\.pem: certificate 1 is not a readable X\.509 certificate/);
  });

  it('plain http only to a loopback host', () => {
    for (const url of ['http://127.0.0.1:8080', 'http://127.1.2.3', 'http://localhost:1', 'http://[::1]:9']) {
      assert.doesNotThrow(() => checkBaseUrl('podUrl', url));
    }
    for (const url of ['http://acme.symphony.com', 'http://10.0.0.1', 'http://169.254.169.254', 'ftp://127.0.0.1']) {
      assert.throws(
        () => checkBaseUrl('podUrl', url),
        (err) => isAppError(err, 'ERR_CONFIG_INVALID'),
      );
    }
  });
});

describe('config file keys', () => {
  const file = (source: Record<string, unknown>) => ({
    connectors: [
      {
        id: 'pod1',
        source: {
          kind: 'symphony',
          podUrl: 'https://acme.symphony.com',
          username: 'archiver-bot',
          privateKeyPath: 'bot.pem',
          ...source,
        },
        destination: { kind: 'maildir', root: './mail' },
      },
    ],
  });

  it('resolves caFile against the config file’s directory and keeps requestsPerSecond', () => {
    const cfg = parseConfig(file({ caFile: 'certs/pod-ca.pem', requestsPerSecond: 20 }), '/etc/archiver');
    const source = cfg.connectors[0]?.source;
    assert.equal(source?.caFile, '/etc/archiver/certs/pod-ca.pem');
    assert.equal(source?.requestsPerSecond, 20);
    assert.equal(
      parseConfig(file({ caFile: '/opt/ca.pem' }), '/etc/archiver').connectors[0]?.source.caFile,
      '/opt/ca.pem',
    );
    assert.equal(parseConfig(file({}), '/etc').connectors[0]?.source.requestsPerSecond, undefined);
  });

  it('refuses a non-positive rate, and offers no switch to turn certificate checks off', () => {
    for (const source of [{ requestsPerSecond: 0 }, { requestsPerSecond: 20_000 }, { caFile: '' }]) {
      assert.throws(
        () => parseConfig(file(source), '/etc'),
        (err) => isAppError(err, 'ERR_CONFIG_INVALID'),
      );
    }
    for (const source of [{ rejectUnauthorized: false }, { insecure: true }, { tlsVerify: false }]) {
      assert.throws(
        () => parseConfig(file(source), '/etc'),
        (err) => isAppError(err, 'ERR_CONFIG_INVALID') && /Unrecognized key/.test(err.message),
      );
    }
  });
});
