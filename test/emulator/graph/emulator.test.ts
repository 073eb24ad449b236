/**
 * The Graph emulator seen over HTTP: the documented behaviours the writer relies on (destinations.md §1) — token
 * endpoint rules and AADSTS errors, bearer checks, draft vs non-draft creation, the 4 MB cap, MailboxConcurrency,
 * ErrorFolderExists, `$filter` by internetMessageId and paging, upload sessions, immutable ids, quotas and faults.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startGraphEmulator, type GraphEmulator } from '../../../src/emulator/graph/index.ts';
import { call, form, graph, message, token, type Graph, type Response } from './http.ts';

const MiB = 1024 * 1024;
const USER = 'alice@bank.example';
const U = `/v1.0/users/${USER}`;
const B = `/beta/users/${USER}`;

function expectStatus(res: Response, status: number): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text.slice(0, 300)}`);
}

function errorCode(res: Response): string | undefined {
  return (res.json?.error as { code?: string } | undefined)?.code;
}

async function createFolder(g: Graph, parent: string, displayName: string, isHidden?: boolean): Promise<string> {
  const res = await g.post(
    `${U}/mailFolders/${parent}/childFolders`,
    isHidden ? { displayName, isHidden } : { displayName },
  );
  expectStatus(res, 201);
  return res.json?.id as string;
}

describe('graph emulator: token endpoint', () => {
  let emu: GraphEmulator;
  before(async () => {
    emu = await startGraphEmulator({ users: [USER] });
  });
  after(() => emu.close());

  const valid = {
    client_id: '',
    client_secret: '',
    grant_type: 'client_credentials',
    scope: 'https://graph.microsoft.com/.default',
  };

  async function post(values: Record<string, string>, tenant = emu.tenantId): Promise<Response> {
    return call(`${emu.url}/${tenant}/oauth2/v2.0/token`, { method: 'POST', ...form(values) });
  }

  it('issues a JWT-shaped bearer token for the client-credentials grant', async () => {
    const client = emu.clients[0]!;
    const res = await post({ ...valid, client_id: client.clientId, client_secret: client.clientSecret! });
    expectStatus(res, 200);
    assert.equal(res.json?.token_type, 'Bearer');
    assert.equal(res.json?.expires_in, 3599);
    const parts = String(res.json?.access_token).split('.');
    assert.equal(parts.length, 3);
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.aud, 'https://graph.microsoft.com');
    assert.equal(claims.tid, emu.tenantId);
    assert.deepEqual(claims.roles, ['Mail.ReadWrite', 'Mail-Advanced.ReadWrite.All']);
  });

  it('answers mistakes with AADSTS errors in Entra ID shape', async () => {
    const client = emu.clients[0]!;
    const good = { ...valid, client_id: client.clientId, client_secret: client.clientSecret! };
    const cases: [Record<string, string>, string | undefined, number, string, number][] = [
      [good, 'not-a-tenant', 400, 'invalid_request', 90002],
      [{ ...good, client_secret: 'canary-7Qx9' }, undefined, 401, 'invalid_client', 7000215],
      [{ ...good, client_id: 'unknown-app' }, undefined, 400, 'unauthorized_client', 700016],
      [{ ...good, scope: 'https://graph.microsoft.com/Mail.ReadWrite' }, undefined, 400, 'invalid_scope', 1002012],
      [{ ...good, scope: 'https://vault.azure.net/.default' }, undefined, 400, 'invalid_resource', 500011],
      [{ ...good, grant_type: 'password' }, undefined, 400, 'unsupported_grant_type', 70003],
      [
        { client_id: client.clientId, grant_type: 'client_credentials', scope: valid.scope },
        undefined,
        401,
        'invalid_client',
        7000218,
      ],
      [
        { client_id: client.clientId, client_secret: 'x', scope: valid.scope },
        undefined,
        400,
        'invalid_request',
        900144,
      ],
    ];
    for (const [values, tenant, status, error, code] of cases) {
      const res = await post(values, tenant);
      expectStatus(res, status);
      assert.equal(res.json?.error, error, res.text);
      assert.deepEqual(res.json?.error_codes, [code]);
      assert.match(
        String(res.json?.error_description),
        new RegExp(`^AADSTS${code}: .+ Trace ID: [0-9a-f-]{36} Correlation ID: `),
      );
      assert.equal(res.json?.error_uri, `https://login.microsoftonline.com/error?code=${code}`);
      assert.ok(!res.text.includes('canary-7Qx9'), 'the submitted secret is never echoed');
    }
  });

  it('serves the OpenID configuration MSAL reads', async () => {
    const res = await call(`${emu.url}/${emu.tenantId}/v2.0/.well-known/openid-configuration`);
    expectStatus(res, 200);
    assert.equal(res.json?.token_endpoint, emu.tokenUrl);
    for (const field of ['authorization_endpoint', 'issuer', 'jwks_uri']) assert.ok(res.json?.[field], field);
  });
});

describe('graph emulator: mailbox API', () => {
  let emu: GraphEmulator;
  let g: Graph;
  before(async () => {
    emu = await startGraphEmulator({ users: [USER, 'bob@bank.example'], pageSize: 10 });
    g = graph(emu, await token(emu));
  });
  after(() => emu.close());

  it('requires a valid bearer token (401 InvalidAuthenticationToken)', async () => {
    const none = await call(`${emu.url}${U}/mailFolders/inbox`);
    expectStatus(none, 401);
    assert.equal(errorCode(none), 'InvalidAuthenticationToken');
    assert.equal((none.json?.error as { message: string }).message, 'Access token is empty.');
    assert.match(String(none.headers['www-authenticate']), /^Bearer /);
    const innerError = (none.json?.error as { innerError?: Record<string, string> }).innerError;
    assert.ok(innerError?.['request-id'] && innerError.date, 'innerError carries request-id and date');
    const forged = await call(`${emu.url}${U}/mailFolders/inbox`, { headers: { authorization: 'Bearer a.b.c' } });
    expectStatus(forged, 401);
    const tok = await token(emu);
    expectStatus(await call(`${emu.url}${U}/mailFolders/inbox`, { headers: { authorization: `Bearer ${tok}` } }), 200);
    emu.revokeTokens();
    const revoked = await call(`${emu.url}${U}/mailFolders/inbox`, { headers: { authorization: `Bearer ${tok}` } });
    expectStatus(revoked, 401);
    g = graph(emu, await token(emu));
  });

  it('answers 404 ErrorInvalidUser for a mailbox that does not exist', async () => {
    const res = await g.get('/v1.0/users/nobody@bank.example/mailFolders/inbox');
    expectStatus(res, 404);
    assert.equal(errorCode(res), 'ErrorInvalidUser');
  });

  it('creates folders once: ErrorFolderExists on a case-insensitive duplicate, hidden folders listed on request', async () => {
    const id = await createFolder(g, 'inbox', 'Symphony');
    const dup = await g.post(`${U}/mailFolders/inbox/childFolders`, { displayName: 'SYMPHONY' });
    expectStatus(dup, 409);
    assert.equal(errorCode(dup), 'ErrorFolderExists');
    const found = await g.get(
      `${U}/mailFolders/inbox/childFolders?$filter=${encodeURIComponent("displayName eq 'symphony'")}&$select=id,displayName`,
    );
    expectStatus(found, 200);
    assert.deepEqual(
      (found.json?.value as { id: string; displayName: string }[]).map((f) => [f.id, f.displayName]),
      [[id, 'Symphony']],
    );
    assert.ok(!('totalItemCount' in ((found.json?.value as object[])[0] as object)), '$select trims properties');
    const hiddenId = await createFolder(g, 'msgfolderroot', 'Staging', true);
    const plain = await g.get(`${U}/mailFolders/msgfolderroot/childFolders?$top=100`);
    assert.ok(!(plain.json?.value as { id: string }[]).some((f) => f.id === hiddenId));
    const all = await g.get(`${U}/mailFolders/msgfolderroot/childFolders?includeHiddenFolders=true&$top=100`);
    assert.ok((all.json?.value as { id: string }[]).some((f) => f.id === hiddenId));
    const bad = await g.get(
      `${U}/mailFolders/inbox/childFolders?$filter=${encodeURIComponent("startswith(displayName,'S')")}`,
    );
    expectStatus(bad, 400);
    assert.equal(errorCode(bad), 'ErrorInvalidUrlQueryFilter');
  });

  it('makes a draft from MIME posted to messages, and a non-draft from importMime (beta only)', async () => {
    const folder = await createFolder(g, 'inbox', 'Drafts vs imports');
    const draft = await g.mime(`${U}/mailFolders/${folder}/messages`, message('draft.1@x.example'));
    expectStatus(draft, 201);
    assert.equal(draft.json?.isDraft, true);
    const raw = message('import.1@x.example');
    const imported = await g.mime(`${B}/mailFolders/${folder}/importMime`, raw);
    expectStatus(imported, 201);
    assert.equal(imported.json?.isDraft, false);
    assert.equal(imported.json?.internetMessageId, '<import.1@x.example>');
    assert.equal(imported.json?.subject, 'Grüße');
    assert.equal(imported.json?.receivedDateTime, '2024-05-01T10:00:00Z');
    const stored = emu
      .mailbox(USER)
      .messages('Inbox/Drafts vs imports')
      .find((m) => m.internetMessageId === '<import.1@x.example>');
    assert.ok(stored?.mime?.equals(raw), 'importMime keeps the MIME byte for byte');
    const v1 = await g.mime(`${U}/mailFolders/${folder}/importMime`, raw);
    expectStatus(v1, 400);
    const notBase64 = await call(`${emu.url}${B}/mailFolders/${folder}/importMime`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(emu)}`, 'content-type': 'text/plain' },
      body: 'this is not base64!',
    });
    expectStatus(notBase64, 400);
    assert.equal(errorCode(notBase64), 'ErrorMimeContentInvalidBase64String');
  });

  it('makes a non-draft from JSON only with PidTagMessageFlags, and takes the dates from the MAPI properties', async () => {
    const folder = await createFolder(g, 'inbox', 'Json');
    const base = {
      subject: 'S',
      body: { contentType: 'html', content: '<p>x</p>' },
      toRecipients: [{ emailAddress: { address: 'bob@bank.example' } }],
    };
    const plain = await g.post(`${U}/mailFolders/${folder}/messages`, base);
    expectStatus(plain, 201);
    assert.equal(plain.json?.isDraft, true);
    const flagged = await g.post(`${U}/mailFolders/${folder}/messages`, {
      ...base,
      internetMessageId: '<json.1@x.example>',
      receivedDateTime: '2030-01-01T00:00:00Z',
      internetMessageHeaders: [{ name: 'X-Symphony-Stream-Id', value: 's1' }],
      singleValueExtendedProperties: [
        { id: 'Integer 0x0E07', value: '1' },
        { id: 'SystemTime 0x0E06', value: '2023-02-03T04:05:06Z' },
        { id: 'SystemTime 0x0039', value: '2023-02-03T04:05:00Z' },
      ],
    });
    expectStatus(flagged, 201);
    assert.equal(flagged.json?.isDraft, false);
    assert.equal(flagged.json?.isRead, true);
    assert.equal(flagged.json?.receivedDateTime, '2023-02-03T04:05:06Z');
    assert.equal(flagged.json?.sentDateTime, '2023-02-03T04:05:00Z');
    const unsent = await g.post(`${U}/mailFolders/${folder}/messages`, {
      ...base,
      singleValueExtendedProperties: [{ id: 'Integer 0x0E07', value: '9' }],
    });
    assert.equal(unsent.json?.isDraft, true, 'MSGFLAG_UNSENT keeps it a draft');
    const badHeader = await g.post(`${U}/mailFolders/${folder}/messages`, {
      ...base,
      internetMessageHeaders: [{ name: 'Auto-Submitted', value: 'auto-generated' }],
    });
    expectStatus(badHeader, 400);
    assert.equal(errorCode(badHeader), 'InvalidInternetMessageHeader');
    const unknownProp = await g.post(`${U}/mailFolders/${folder}/messages`, { ...base, colour: 'red' });
    expectStatus(unknownProp, 400);
    assert.equal(errorCode(unknownProp), 'RequestBodyRead');
  });

  it('refuses requests over 4 MB with 413', async () => {
    const folder = await createFolder(g, 'inbox', 'Big');
    const raw = Buffer.concat([message('big.1@x.example'), Buffer.alloc(3.1 * MiB, 0x61)]);
    const res = await g.mime(`${B}/mailFolders/${folder}/importMime`, raw);
    expectStatus(res, 413);
    assert.equal(emu.mailbox(USER).messages('Inbox/Big').length, 0);
  });

  it('filters by internetMessageId inside a folder, selects, and pages with @odata.nextLink', async () => {
    const folder = await createFolder(g, 'inbox', 'Paging');
    for (let i = 0; i < 25; i++)
      expectStatus(await g.mime(`${B}/mailFolders/${folder}/importMime`, message(`page.${i}@x.example`)), 201);
    const other = await createFolder(g, 'inbox', 'Other');
    expectStatus(await g.mime(`${B}/mailFolders/${other}/importMime`, message('page.3@x.example')), 201);
    const filter = encodeURIComponent("internetMessageId eq '<page.3@x.example>'");
    const hit = await g.get(`${U}/mailFolders/${folder}/messages?$filter=${filter}&$select=id,internetMessageId`);
    expectStatus(hit, 200);
    const value = hit.json?.value as Record<string, unknown>[];
    assert.equal(value.length, 1, 'only the copy inside the folder');
    assert.deepEqual(Object.keys(value[0]!).sort(), ['@odata.etag', 'id', 'internetMessageId']);
    const seen = new Set<string>();
    let next: string | undefined = `${emu.url}${U}/mailFolders/${folder}/messages?$select=internetMessageId&$top=10`;
    let pages = 0;
    while (next) {
      const res: Response = await call(next, { headers: { authorization: `Bearer ${await token(emu)}` } });
      expectStatus(res, 200);
      for (const m of res.json?.value as { internetMessageId: string }[]) seen.add(m.internetMessageId);
      next = res.json?.['@odata.nextLink'] as string | undefined;
      pages += 1;
    }
    assert.equal(pages, 3);
    assert.equal(seen.size, 25);
  });

  it('keeps immutable ids across a move while the REST id changes', async () => {
    const from = await createFolder(g, 'inbox', 'From');
    const to = await createFolder(g, 'inbox', 'To');
    const created = await g.mime(`${B}/mailFolders/${from}/importMime`, message('move.1@x.example'));
    const immutableId = created.json?.id as string;
    const restView = await g.get(`${U}/messages/${encodeURIComponent(immutableId)}`, {
      prefer: 'outlook.body-content-type="text"',
    });
    const restId = restView.json?.id as string;
    assert.notEqual(restId, immutableId);
    const moved = await g.post(`${U}/messages/${encodeURIComponent(immutableId)}/move`, { destinationId: to });
    expectStatus(moved, 201);
    assert.equal(moved.json?.id, immutableId);
    assert.equal(moved.json?.parentFolderId, to);
    assert.equal(moved.headers['preference-applied'], 'IdType="ImmutableId"');
    expectStatus(await g.get(`${U}/messages/${encodeURIComponent(restId)}`, { prefer: '' }), 404);
  });

  it('attaches small files by POST and large ones through an upload session with ordered ≤ 4 MB ranges', async () => {
    const folder = await createFolder(g, 'inbox', 'Attach');
    const created = await g.post(`${U}/mailFolders/${folder}/messages`, { subject: 'with files' });
    const id = encodeURIComponent(created.json?.id as string);
    const small = await g.post(`${U}/messages/${id}/attachments`, {
      '@odata.type': '#microsoft.graph.fileAttachment',
      name: 'small.txt',
      contentBytes: Buffer.from('tiny').toString('base64'),
    });
    expectStatus(small, 201);
    const tooSmall = await g.post(`${U}/messages/${id}/attachments/createUploadSession`, {
      AttachmentItem: { attachmentType: 'file', name: 'a', size: 1000 },
    });
    expectStatus(tooSmall, 400);
    assert.equal(errorCode(tooSmall), 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize');

    const content = Buffer.alloc(9 * MiB + 123);
    for (let i = 0; i < content.length; i += 4096) content.writeUInt32BE(i, i);
    const session = await g.post(`${U}/messages/${id}/attachments/createUploadSession`, {
      AttachmentItem: {
        attachmentType: 'file',
        name: 'big.bin',
        size: content.length,
        contentType: 'application/octet-stream',
      },
    });
    expectStatus(session, 201);
    assert.deepEqual(session.json?.nextExpectedRanges, ['0-']);
    const uploadUrl = session.json?.uploadUrl as string;
    const put = (
      start: number,
      end: number,
      headers: Record<string, string> = {},
      data = content.subarray(start, end + 1),
    ): Promise<Response> =>
      call(uploadUrl, {
        method: 'PUT',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `bytes ${start}-${end}/${content.length}`,
          ...headers,
        },
        body: data,
      });
    expectStatus(await put(0, 5 * MiB - 1), 413);
    const withAuth = await put(0, MiB - 1, { authorization: `Bearer ${await token(emu)}` });
    expectStatus(withAuth, 400);
    const first = await put(0, 4 * MiB - 1);
    expectStatus(first, 200);
    assert.deepEqual(first.json?.nextExpectedRanges, [String(4 * MiB)]);
    expectStatus(await put(0, 4 * MiB - 1), 416);
    const wrongTotal = await call(uploadUrl, {
      method: 'PUT',
      headers: { 'content-range': `bytes ${4 * MiB}-${4 * MiB + 9}/99` },
      body: Buffer.alloc(10),
    });
    expectStatus(wrongTotal, 400);
    expectStatus(await put(4 * MiB, 8 * MiB - 1), 200);
    const last = await put(8 * MiB, content.length - 1);
    expectStatus(last, 201);
    assert.match(String(last.headers.location), /\/Attachments\('[^']+'\)$/);
    const stored = emu.mailbox(USER).messages('Inbox/Attach')[0]!;
    const big = stored.attachments.find((a) => a.name === 'big.bin');
    assert.equal(big?.sha256, createHash('sha256').update(content).digest('hex'));
    assert.deepEqual(stored.attachments.map((a) => a.name).sort(), ['big.bin', 'small.txt']);
  });

  it('enforces the per-message size limit and the mailbox quota', async () => {
    const limited = await startGraphEmulator({
      users: [USER],
      maxMessageSizeBytes: 5 * MiB,
      mailboxSizeLimitBytes: 7 * MiB,
    });
    try {
      const lg = graph(limited, await token(limited));
      const msg = await lg.post(`${U}/mailFolders/inbox/messages`, { subject: 'x' });
      const session = await lg.post(
        `${U}/messages/${encodeURIComponent(msg.json?.id as string)}/attachments/createUploadSession`,
        {
          AttachmentItem: { attachmentType: 'file', name: 'f', size: 6 * MiB },
        },
      );
      const url = session.json?.uploadUrl as string;
      expectStatus(
        await call(url, {
          method: 'PUT',
          headers: { 'content-range': `bytes 0-${4 * MiB - 1}/${6 * MiB}` },
          body: Buffer.alloc(4 * MiB),
        }),
        200,
      );
      const over = await call(url, {
        method: 'PUT',
        headers: { 'content-range': `bytes ${4 * MiB}-${6 * MiB - 1}/${6 * MiB}` },
        body: Buffer.alloc(2 * MiB),
      });
      expectStatus(over, 400);
      assert.equal(errorCode(over), 'ErrorMessageSizeExceeded');
      for (let i = 0; i < 3; i++) {
        expectStatus(
          await lg.mime(
            `${B}/mailFolders/inbox/importMime`,
            Buffer.concat([message(`q${i}@x.example`), Buffer.alloc(2 * MiB, 0x62)]),
          ),
          201,
        );
      }
      const full = await lg.mime(
        `${B}/mailFolders/inbox/importMime`,
        Buffer.concat([message('q9@x.example'), Buffer.alloc(2 * MiB, 0x62)]),
      );
      expectStatus(full, 403);
      assert.equal(errorCode(full), 'ErrorQuotaExceeded');
    } finally {
      await limited.close();
    }
  });

  it('refuses importMime to an app without Mail-Advanced.ReadWrite.All', async () => {
    const restricted = await startGraphEmulator({
      clients: [{ clientId: 'basic-app', clientSecret: 's3cret', roles: ['Mail.ReadWrite'] }],
    });
    try {
      const rg = graph(restricted, await token(restricted, 'basic-app', 's3cret'));
      const res = await rg.mime(`/beta/users/${USER}/mailFolders/inbox/importMime`, message('perm@x.example'));
      expectStatus(res, 403);
      assert.equal(errorCode(res), 'ErrorAccessDenied');
      expectStatus(await rg.post(`${U}/mailFolders/inbox/messages`, { subject: 'ok' }), 201);
    } finally {
      await restricted.close();
    }
  });
});

describe('graph emulator: throttling and faults', () => {
  it('answers 429 ApplicationThrottled (MailboxConcurrency) beyond 4 requests in flight per app and mailbox', async () => {
    const emu = await startGraphEmulator({ users: [USER, 'bob@bank.example'], latencyMs: 150 });
    try {
      const g = graph(emu, await token(emu));
      const results = await Promise.all([
        ...Array.from({ length: 6 }, () => g.get(`${U}/mailFolders/inbox`)),
        g.get('/v1.0/users/bob@bank.example/mailFolders/inbox'),
      ]);
      const alice = results.slice(0, 6);
      assert.equal(alice.filter((r) => r.status === 200).length, 4);
      const throttled = alice.filter((r) => r.status === 429);
      assert.equal(throttled.length, 2);
      for (const r of throttled) {
        assert.equal(errorCode(r), 'ApplicationThrottled');
        assert.equal(
          (r.json?.error as { message: string }).message,
          'Application is over its MailboxConcurrency limit.',
        );
      }
      expectStatus(results[6]!, 200);
      const stats = emu.stats().mailboxes[USER]!;
      assert.equal(stats.maxInFlight, 4);
      assert.equal(stats.concurrencyRejections, 2);
    } finally {
      await emu.close();
    }
  });

  it('enforces the request-rate window with Retry-After', async () => {
    const emu = await startGraphEmulator({ users: [USER], limits: { requestsPer10Minutes: 3 } });
    try {
      const g = graph(emu, await token(emu));
      for (let i = 0; i < 3; i++) expectStatus(await g.get(`${U}/mailFolders/inbox`), 200);
      const res = await g.get(`${U}/mailFolders/inbox`);
      expectStatus(res, 429);
      assert.ok(Number(res.headers['retry-after']) > 0);
    } finally {
      await emu.close();
    }
  });

  it('injects 429/503 with Retry-After and connection drops after the change is made', async () => {
    const emu = await startGraphEmulator({ users: [USER], faults: { rate429: 1, retryAfterSeconds: 7 } });
    try {
      const g = graph(emu, await token(emu));
      const res = await g.get(`${U}/mailFolders/inbox`);
      expectStatus(res, 429);
      assert.equal(res.headers['retry-after'], '7');
    } finally {
      await emu.close();
    }
    const emu2 = await startGraphEmulator({ users: [USER] });
    try {
      const g = graph(emu2, await token(emu2));
      emu2.injectFault({ fault: 'unavailable', path: '/importMime', retryAfterSeconds: 2 });
      const unavailable = await g.mime(`${B}/mailFolders/inbox/importMime`, message('f0@x.example'));
      expectStatus(unavailable, 503);
      assert.equal(unavailable.headers['retry-after'], '2');
      assert.equal(emu2.mailbox(USER).messages('Inbox').length, 0, 'a refused request changes nothing');
      emu2.injectFault({ fault: 'drop-after', path: '/importMime' });
      await assert.rejects(
        g.mime(`${B}/mailFolders/inbox/importMime`, message('f1@x.example')),
        /socket hang up|ECONNRESET/,
      );
      assert.equal(emu2.mailbox(USER).messages('Inbox').length, 1, 'the dropped request was applied');
      emu2.injectFault({ fault: 'error-after', path: '/importMime' });
      expectStatus(await g.mime(`${B}/mailFolders/inbox/importMime`, message('f2@x.example')), 504);
      assert.equal(emu2.mailbox(USER).messages('Inbox').length, 2);
      expectStatus(await g.mime(`${B}/mailFolders/inbox/importMime`, message('f3@x.example')), 201);
      assert.deepEqual(
        emu2
          .requests()
          .filter((r) => r.fault)
          .map((r) => r.fault),
        ['unavailable', 'drop-after', 'error-after'],
      );
    } finally {
      await emu2.close();
    }
  });
});
