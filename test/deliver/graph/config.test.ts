import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../src/core/logger.ts';
import { createGraphWriter, graphDestinationSchema } from '../../../src/deliver/graph/index.ts';

const base = {
  kind: 'graph',
  tenantId: 'contoso.onmicrosoft.com',
  clientId: '5d2a8a4e-1f0b-4c39-8b2a-3e6c9b7d4f21',
  auth: { method: 'secret', secretEnv: 'GRAPH_SECRET' },
};

function issues(input: unknown): string[] {
  const r = graphDestinationSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('graph destination config', () => {
  it('fills the documented defaults', () => {
    const c = graphDestinationSchema.parse(base);
    assert.equal(c.authorityHost, 'https://login.microsoftonline.com');
    assert.equal(c.graphUrl, 'https://graph.microsoft.com');
    assert.equal(c.folder, 'Symphony');
    assert.equal(c.maxInFlightPerMailbox, 4);
    assert.equal(c.importMime, true);
    assert.equal(c.importMimeMaxBytes, 3_000_000);
  });

  it('refuses plain http except to loopback, credentials in URLs, and more than 4 in flight', () => {
    assert.deepEqual(
      issues({ ...base, graphUrl: 'http://127.0.0.1:8080', authorityHost: 'http://localhost:8080/' }),
      [],
    );
    assert.ok(
      issues({ ...base, graphUrl: 'http://graph.example.com' }).some((i) =>
        i.startsWith('graphUrl: must be an https URL'),
      ),
    );
    assert.ok(
      issues({ ...base, authorityHost: 'https://u:p@login.example.com' }).some((i) => i.startsWith('authorityHost:')),
    );
    assert.ok(issues({ ...base, maxInFlightPerMailbox: 5 }).some((i) => i.startsWith('maxInFlightPerMailbox')));
    assert.ok(issues({ ...base, folder: 'a//b' }).some((i) => i.startsWith('folder')));
    assert.deepEqual(issues({ ...base, folder: 'Symphony/2026' }), []);
  });

  it('takes exactly one secret source, or a certificate file', () => {
    assert.ok(issues({ ...base, auth: { method: 'secret' } }).length > 0);
    assert.ok(issues({ ...base, auth: { method: 'secret', secretEnv: 'A', secretFile: '/x' } }).length > 0);
    assert.deepEqual(issues({ ...base, auth: { method: 'certificate', certificateFile: '/etc/app.pem' } }), []);
    assert.ok(issues({ ...base, auth: { method: 'certificate', certificateFile: '/x', secretFile: '/y' } }).length > 0);
  });

  it('builds synchronously without touching secrets, and says what is wrong', () => {
    const writer = createGraphWriter(
      { ...base, auth: { method: 'secret', secretFile: '/nonexistent/secret' } } as never,
      { logger: silentLogger() },
    );
    assert.equal(writer.kind, 'graph');
    assert.throws(
      () => createGraphWriter({ ...base, tenantId: 'not a tenant' } as never, { logger: silentLogger() }),
      /ERR_CONFIG_INVALID|Configuration is invalid: graph destination: tenantId/,
    );
  });

  it('reports a missing secret file as a configuration problem at first use', async () => {
    const writer = createGraphWriter(
      { ...base, auth: { method: 'secret', secretFile: '/nonexistent/secret' } } as never,
      { logger: silentLogger() },
    );
    await assert.rejects(writer.verify(), /Configuration is invalid: Graph client secret file \/nonexistent\/secret/);
    await writer.close();
  });
});
