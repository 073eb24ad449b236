import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AppError } from '../../../src/core/errors.ts';
import { isAppError } from '../../../src/core/errors.ts';
import type { Source } from '../../../src/source/source.ts';
import { collectPages, sourceFor } from './helpers.ts';

const STREAM = 'RUkxW4x40aB74g0UWpaMw3___ozLPsapdA';

/**
 * A private CA and two leaves it signs, made with the openssl CLI: `good` names 127.0.0.1, `misnamed` names
 * another host only. Both keys are P-256, which openssl generates in milliseconds.
 */
function makePki(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Archiver Test CA');
  for (const [name, san] of [
    ['good', 'IP:127.0.0.1,DNS:localhost'],
    ['misnamed', 'DNS:pod.example'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    openssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    );
  }
  // A CA that signed nothing here: trusting it must not make the pod's certificate acceptable.
  openssl('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=Other CA');
}

/** A loopback pod over https answering logins, session info and an empty message page. */
async function startPod(dir: string, leaf: string): Promise<{ url: string; server: Server }> {
  const server = createServer(
    { key: readFileSync(join(dir, `${leaf}.key`)), cert: readFileSync(join(dir, `${leaf}.pem`)) },
    (req, res) => {
      req.resume();
      req.on('end', () => {
        const path = new URL(req.url ?? '/', 'https://127.0.0.1').pathname;
        res.setHeader('content-type', 'application/json');
        if (path.endsWith('/pubkey/authenticate')) return res.end(JSON.stringify({ token: `token-for-${path}` }));
        if (path === '/pod/v2/sessioninfo') return res.end(JSON.stringify({ id: 1 }));
        if (path.startsWith('/agent/')) return res.writeHead(204).end();
        res.writeHead(404).end('{}');
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function rejectsWith(promise: Promise<unknown>, code: AppError['code']): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isAppError(err, code), `expected ${code}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

describe('TLS', () => {
  let dir = '';
  let good: { url: string; server: Server };
  let misnamed: { url: string; server: Server };
  const sources: Source[] = [];
  const open = (...args: Parameters<typeof sourceFor>): Source => {
    const source = sourceFor(...args);
    sources.push(source);
    return source;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'symphony-tls-'));
    makePki(dir);
    good = await startPod(dir, 'good');
    misnamed = await startPod(dir, 'misnamed');
  });

  after(async () => {
    await Promise.all(sources.map((s) => s.close()));
    for (const { server } of [good, misnamed]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a certificate from a CA it was not given, without retrying', async () => {
    const source = open(good.url, { maxRetries: 3 });
    const err = await rejectsWith(source.check(), 'ERR_SOURCE_TLS');
    assert.equal(err.retryable, false);
    assert.match(
      err.message,
      new RegExp(`certificate of ${good.url} is not issued by a trusted CA \\(a private CA goes in caFile\\)`),
    );
    assert.match(err.message, /\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/);
    assert.equal(source.stats().retries, 0);
  });

  it('trusts the pod, agent and key manager once caFile holds their CA', async () => {
    const source = open(good.url, { caFile: join(dir, 'ca.pem') });
    await source.check();
    await collectPages(source.messages(STREAM, { ts: 0, count: 0 }));
    assert.equal(source.stats().requests, 4);
  });

  it('accepts a bundle with several CAs', async () => {
    const bundle = join(dir, 'bundle.pem');
    writeFileSync(bundle, readFileSync(join(dir, 'other.pem'), 'utf8') + readFileSync(join(dir, 'ca.pem'), 'utf8'));
    await open(good.url, { caFile: bundle }).check();
  });

  it('a CA that did not sign the certificate does not help', async () => {
    await rejectsWith(open(good.url, { caFile: join(dir, 'other.pem') }).check(), 'ERR_SOURCE_TLS');
  });

  it('checks the host name even when the CA is trusted', async () => {
    const err = await rejectsWith(open(misnamed.url, { caFile: join(dir, 'ca.pem') }).check(), 'ERR_SOURCE_TLS');
    assert.match(err.message, /does not name this host \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
  });

  it('NODE_TLS_REJECT_UNAUTHORIZED=0 does not turn verification off', async () => {
    const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    const savedEmit = process.emitWarning;
    // Node warns once when the variable is set; the warning is expected here and would only clutter the output.
    process.emitWarning = () => undefined;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    try {
      await rejectsWith(open(good.url).check(), 'ERR_SOURCE_TLS');
    } finally {
      if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
      process.emitWarning = savedEmit;
    }
  });
});
