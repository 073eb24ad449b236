/**
 * @azure/identity (MSAL) against the emulator: https with a generated CA, `disableInstanceDiscovery`, client secret
 * and certificate credentials, and how a refusal surfaces.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClientCertificateCredential, ClientSecretCredential } from '@azure/identity';
import {
  generateSelfSignedCertificate,
  startGraphEmulator,
  type GraphEmulator,
} from '../../../src/emulator/graph/index.ts';
import { call } from './http.ts';

const SCOPE = 'https://graph.microsoft.com/.default';

describe('graph emulator with @azure/identity', () => {
  let emu: GraphEmulator;
  let dir: string;
  const appCert = generateSelfSignedCertificate({ keyType: 'rsa', commonName: 'archiver-app' });
  const strangerCert = generateSelfSignedCertificate({ keyType: 'rsa', commonName: 'stranger' });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'graph-identity-'));
    emu = await startGraphEmulator({
      tls: true,
      clients: [
        { clientId: 'secret-app', clientSecret: 'canary-secret-51f0' },
        { clientId: 'cert-app', certificatePem: appCert.certPem },
      ],
    });
  });
  after(async () => {
    await emu.close();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (): ConstructorParameters<typeof ClientSecretCredential>[3] => ({
    authorityHost: emu.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: emu.caPem! },
  });

  it('serves https that verifies only against its own certificate', async () => {
    await assert.rejects(call(`${emu.url}/v1.0/users/a@b.example/mailFolders/inbox`), /self-signed|SELF_SIGNED/i);
    const res = await call(`${emu.url}/v1.0/users/a@b.example/mailFolders/inbox`, { ca: emu.caPem! });
    assert.equal(res.status, 401);
  });

  it('issues tokens to ClientSecretCredential and ClientCertificateCredential', async () => {
    const secret = await new ClientSecretCredential(
      emu.tenantId,
      'secret-app',
      'canary-secret-51f0',
      options(),
    ).getToken(SCOPE);
    assert.ok(secret?.token.split('.').length === 3);
    assert.ok(secret.expiresOnTimestamp > Date.now() + 3_000_000);
    const pem = path.join(dir, 'app.pem');
    await writeFile(pem, appCert.combinedPem, { mode: 0o600 });
    const cert = await new ClientCertificateCredential(
      emu.tenantId,
      'cert-app',
      { certificatePath: pem },
      options(),
    ).getToken(SCOPE);
    assert.ok(cert?.token);
    const res = await call(`${emu.url}/v1.0/users/a@b.example/mailFolders/inbox`, {
      ca: emu.caPem!,
      headers: { authorization: `Bearer ${cert.token}` },
    });
    assert.equal(res.status, 200);
  });

  it('refuses a wrong secret and an unregistered certificate with AADSTS codes', async () => {
    await assert.rejects(
      new ClientSecretCredential(emu.tenantId, 'secret-app', 'canary-wrong-9d2c', options()).getToken(SCOPE),
      (err: Error) => /AADSTS7000215/.test(err.message) && !err.message.includes('canary-wrong-9d2c'),
    );
    const pem = path.join(dir, 'stranger.pem');
    await writeFile(pem, strangerCert.combinedPem, { mode: 0o600 });
    await assert.rejects(
      new ClientCertificateCredential(emu.tenantId, 'cert-app', { certificatePath: pem }, options()).getToken(SCOPE),
      /AADSTS700027/,
    );
  });
});
