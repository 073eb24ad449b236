import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAppError } from '../../../src/core/errors.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { expandUidSet, imapDateTime } from '../../../src/deliver/imap/append.ts';
import { imapDestinationSchema } from '../../../src/deliver/imap/config.ts';
import { toImapAppError } from '../../../src/deliver/imap/errors.ts';
import { keyOfMessageId, messageIdOfHeader } from '../../../src/deliver/imap/folder.ts';
import { createImapWriter } from '../../../src/deliver/imap/index.ts';
import { startFakeImap } from './fake-server.ts';
import { inFile } from '../maildir/fixtures.ts';
import { imapConfig, itemsFor, makeItem, secretFile } from './fixtures.ts';

const MAILBOX = 'nia@bank.example';

describe('IMAP config schema', () => {
  const base = { kind: 'imap', host: 'imap.bank.example', auth: { method: 'password', passwordFile: '/run/pw' } };

  it('fills defaults: TLS on 993, folder Symphony, \\Seen, pool of 4, one writer per mailbox', () => {
    const c = imapDestinationSchema.parse(base);
    assert.equal(c.security, 'tls');
    assert.equal(c.port, 993);
    assert.equal(c.folder, 'Symphony');
    assert.deepEqual(c.flags, ['\\Seen']);
    assert.equal(c.maxConnections, 4);
    assert.equal(c.perMailboxConcurrency, 1);
    assert.equal(c.auth.method === 'password' && c.auth.user, '{mailbox}');
    assert.equal(imapDestinationSchema.parse({ ...base, security: 'starttls' }).port, 143);
    const master = imapDestinationSchema.parse({
      ...base,
      auth: { method: 'master', masterUser: 'archiver', passwordEnv: 'IMAP_MASTER_PASSWORD' },
    });
    assert.equal(master.auth.method === 'master' && master.auth.format, '{mailbox}*{master}');
  });

  it('refuses inline secrets, two secret sources, cleartext to a remote host and odd folder names', () => {
    const bad = [
      { ...base, auth: { method: 'password', password: 'hunter2' } },
      { ...base, auth: { method: 'password', passwordFile: '/a', passwordEnv: 'B' } },
      { ...base, auth: { method: 'xoauth2' } },
      { ...base, auth: { method: 'xoauth2', accessToken: 'ey...' } },
      { ...base, security: 'none' },
      { ...base, folder: 'INBOX/Other' },
      { ...base, flags: ['\\Recent'] },
      { ...base, tls: { rejectUnauthorized: false } },
    ];
    for (const config of bad)
      assert.equal(imapDestinationSchema.safeParse(config).success, false, JSON.stringify(config));
    assert.ok(imapDestinationSchema.safeParse({ ...base, host: '127.0.0.1', security: 'none' }).success);
  });
});

describe('IMAP protocol helpers', () => {
  it('reads Message-IDs from header fetches, folded or not, and keys from our Message-IDs', () => {
    assert.equal(messageIdOfHeader(Buffer.from('Message-ID: <sym.ab12@x.example>\r\n\r\n')), 'sym.ab12@x.example');
    assert.equal(messageIdOfHeader('message-id:\r\n <sym.cd@x.example>\r\n\r\n'), 'sym.cd@x.example');
    assert.equal(messageIdOfHeader('\r\n'), undefined);
    assert.equal(keyOfMessageId('sym.ab12@x.example'), 'ab12');
    assert.equal(keyOfMessageId('other.ab12@x.example'), undefined);
  });

  it('formats INTERNALDATE and expands APPENDUID uid-sets', () => {
    assert.equal(imapDateTime(new Date(Date.UTC(2024, 4, 7, 9, 3, 1))), ' 7-May-2024 09:03:01 +0000');
    assert.deepEqual(expandUidSet('5:7,9'), [5, 6, 7, 9]);
    assert.equal(expandUidSet('x'), undefined);
  });

  it('maps server answers to error codes', () => {
    const refusal = (status: string, text: string, code?: string) => ({
      responseStatus: status,
      responseText: text,
      serverResponseCode: code,
    });
    const throttled = toImapAppError(
      refusal('BAD', 'Request is throttled. Suggested Backoff Time: 299961 milliseconds'),
      { what: 'APPEND' },
    );
    assert.equal(throttled.code, 'ERR_SINK_THROTTLED');
    assert.equal(throttled.retryAfterMs, 299961);
    assert.equal(toImapAppError(refusal('NO', 'too many', 'LIMIT'), { what: 'x' }).code, 'ERR_SINK_THROTTLED');
    const quota = toImapAppError(refusal('NO', 'Quota exceeded', 'OVERQUOTA'), { what: 'x', itemCommand: true });
    assert.ok(quota.code === 'ERR_SINK_IO' && quota.retryable);
    const size = toImapAppError(refusal('NO', 'Maximum size of appendable message has been exceeded'), {
      what: 'x',
      itemCommand: true,
    });
    assert.ok(size.code === 'ERR_SINK_REJECTED' && !size.retryable);
    const reset = toImapAppError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), { what: 'x' });
    assert.ok(reset.code === 'ERR_SINK_IO' && reset.retryable);
    const cert = toImapAppError(Object.assign(new Error('self-signed'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), {
      what: 'x',
    });
    assert.ok(cert.code === 'ERR_SINK_IO' && !cert.retryable && /caFile/.test(cert.message));
  });
});

describe('IMAP writer against a scripted server', { timeout: 60_000 }, () => {
  let tmp: string;
  let pw: string;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'imap-fake-'));
    pw = await secretFile(tmp, 'pw', 'fake-secret');
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('turns Exchange "BAD Request is throttled" into a retryable ERR_SINK_THROTTLED with the advised wait', async () => {
    let calls = 0;
    const server = await startFakeImap({
      append: () =>
        calls++ === 0 ? 'BAD Request is throttled. Suggested Backoff Time: 299961 milliseconds' : undefined,
    });
    const writer = createImapWriter(
      imapConfig(server, { method: 'password', passwordFile: pw }, { timeoutMs: 1000, multiappend: false }),
      { logger: silentLogger() },
    );
    const items = itemsFor('thr', 3);
    try {
      const results = await Promise.allSettled(items.map((item) => writer.append(MAILBOX, item)));
      // One throttled APPEND answers for everything queued behind it: no further commands into the throttle.
      assert.equal(server.commands.filter((c) => c.startsWith('APPEND')).length, 1);
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        const err = (r as PromiseRejectedResult).reason as unknown;
        assert.ok(isAppError(err, 'ERR_SINK_THROTTLED'), String(err));
        assert.equal(err.retryable, true);
        // imapflow already waited part of the advice (half the socket timeout); the rest is ours to wait.
        assert.ok(err.retryAfterMs !== undefined && err.retryAfterMs > 290_000 && err.retryAfterMs <= 299_961);
        assert.match(err.message, /throttled/);
      }
      const receipts = await Promise.all(items.map((item) => writer.append(MAILBOX, item)));
      assert.deepEqual(
        receipts.map((r) => r.ref),
        ['7:1', '7:2', '7:3'],
      );
      assert.equal(server.messages.length, 3);
    } finally {
      await writer.close();
      await server.close();
    }
  });

  it('maps [LIMIT] to throttled, a size refusal to rejected, and creates over a bare NO', async () => {
    const server = await startFakeImap({
      separator: '/',
      createExisting: 'NO Mailbox already exists',
      append: (command) =>
        command.includes('big')
          ? 'NO Maximum size of appendable message has been exceeded'
          : command.includes('limit')
            ? 'NO [LIMIT] Too many messages appended'
            : undefined,
    });
    const writer = createImapWriter(
      imapConfig(server, { method: 'password', passwordFile: pw }, { multiappend: false }),
      { logger: silentLogger() },
    );
    try {
      // The scripted answers key on the APPEND line, which carries flags and date only; use the flag to steer.
      const limited = createImapWriter(
        imapConfig(server, { method: 'password', passwordFile: pw }, { multiappend: false, flags: ['limit'] }),
        { logger: silentLogger() },
      );
      const big = createImapWriter(
        imapConfig(server, { method: 'password', passwordFile: pw }, { multiappend: false, flags: ['big'] }),
        { logger: silentLogger() },
      );
      try {
        await assert.rejects(
          limited.append(MAILBOX, makeItem('lim1', new Date())),
          (e: unknown) => isAppError(e, 'ERR_SINK_THROTTLED') && e.retryable && /LIMIT/.test(e.message),
        );
        await assert.rejects(
          big.append(MAILBOX, makeItem('big1', new Date())),
          (e: unknown) => isAppError(e, 'ERR_SINK_REJECTED') && !e.retryable && /Maximum size/.test(e.message),
        );
      } finally {
        await Promise.all([limited.close(), big.close()]);
      }
      assert.equal((await writer.append(MAILBOX, makeItem('ok1', new Date()))).duplicate, false);
      assert.ok(server.commands.some((c) => c.startsWith('CREATE')));
    } finally {
      await writer.close();
      await server.close();
    }
  });

  it('logs in with XOAUTH2, reading the token file for every new connection, and keeps the token out of errors', async () => {
    const valid = new Set(['token-one']);
    const server = await startFakeImap({
      capabilities: 'IMAP4rev1 UIDPLUS LITERAL+ AUTH=XOAUTH2 SASL-IR',
      acceptToken: (t) => valid.has(t),
    });
    const tokenFile = await secretFile(tmp, 'token', 'token-one');
    const config = imapConfig(server, { method: 'xoauth2', tokenFile }, { idleTimeoutMs: 1000 });
    try {
      const first = createImapWriter(config, { logger: silentLogger() });
      await first.append(MAILBOX, makeItem('oa1', new Date()));
      await first.close();
      assert.deepEqual(server.oauthLogins, [{ user: MAILBOX, token: 'token-one' }]);

      // The refresher rotates the token; the old one stops working.
      await secretFile(tmp, 'token', 'token-two');
      valid.clear();
      const second = createImapWriter(config, { logger: silentLogger() });
      const err = await second.append(MAILBOX, makeItem('oa2', new Date())).then(
        () => assert.fail('token-two is not accepted yet'),
        (e: unknown) => e,
      );
      assert.ok(isAppError(err, 'ERR_SINK_IO') && err.retryable, String(err));
      assert.match(err.message, /login refused/);
      assert.ok(!JSON.stringify({ m: err.message, s: err.stack, c: String(err.cause) }).includes('token-two'));
      valid.add('token-two');
      assert.equal((await second.append(MAILBOX, makeItem('oa2', new Date()))).duplicate, false);
      await second.close();
      assert.deepEqual(
        server.oauthLogins.map((l) => l.token),
        ['token-one', 'token-two', 'token-two'],
      );
    } finally {
      await server.close();
    }
  });

  it('a cancelled append still waiting in the queue leaves at once and writes nothing', async () => {
    const server = await startFakeImap({});
    const writer = createImapWriter(
      imapConfig(server, { method: 'password', passwordFile: pw }, { multiappend: false }),
      {
        logger: silentLogger(),
      },
    );
    try {
      const controller = new AbortController();
      const [a, b] = itemsFor('abt', 2) as [ReturnType<typeof makeItem>, ReturnType<typeof makeItem>];
      const first = writer.append(MAILBOX, a);
      const second = writer.append(MAILBOX, b, controller.signal);
      controller.abort(new Error('shutdown'));
      await assert.rejects(second, (e: unknown) => isAppError(e, 'ERR_ABORTED'));
      assert.equal((await first).duplicate, false);
      await writer.flush();
      assert.equal(server.messages.length, 1);
    } finally {
      await writer.close();
      await server.close();
    }
  });

  it('without UIDPLUS finds the receipt by Message-ID, and a MULTIAPPEND batch gets one UID per item', async () => {
    const plain = await startFakeImap({ capabilities: 'IMAP4rev1 LITERAL+' });
    const multi = await startFakeImap({ capabilities: 'IMAP4rev1 UIDPLUS LITERAL+ MULTIAPPEND' });
    const items = itemsFor('fk', 4);
    const a = createImapWriter(imapConfig(plain, { method: 'password', passwordFile: pw }), { logger: silentLogger() });
    const b = createImapWriter(imapConfig(multi, { method: 'password', passwordFile: pw }), { logger: silentLogger() });
    try {
      const plainReceipts = await Promise.all(items.map((i) => a.append(MAILBOX, i)));
      assert.deepEqual(
        plainReceipts.map((r) => r.ref),
        ['7:1', '7:2', '7:3', '7:4'],
      );
      const multiReceipts = await Promise.all(items.map((i) => b.append(MAILBOX, i)));
      assert.deepEqual(
        multiReceipts.map((r) => r.ref),
        ['7:1', '7:2', '7:3', '7:4'],
      );
      const appends = multi.commands.filter((c) => c.startsWith('APPEND'));
      assert.ok(appends.length < items.length, `batched: ${appends.length} APPEND commands for ${items.length} items`);
      assert.deepEqual(
        multi.messages.map((m) => /sym\.(\w+)@/.exec(m.toString())?.[1]),
        items.map((i) => i.key),
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([plain.close(), multi.close()]);
    }
  });

  it('sends staged files as literals, synchronising or not, alone or in MULTIAPPEND batches, byte for byte', async () => {
    const big = makeItem('fbig', new Date(Date.UTC(2024, 1, 2)), `${'x'.repeat(76)}\r\n`.repeat(4000));
    const items = [
      ...itemsFor('fm', 2),
      await inFile(big, tmp),
      await inFile(makeItem('fsmall', new Date(Date.UTC(2024, 1, 3))), tmp),
    ];
    for (const capabilities of [
      'IMAP4rev1 UIDPLUS MULTIAPPEND',
      'IMAP4rev1 UIDPLUS MULTIAPPEND LITERAL-',
      'IMAP4rev1 UIDPLUS MULTIAPPEND LITERAL+',
      'IMAP4rev1 UIDPLUS LITERAL+',
      'IMAP4rev1 UIDPLUS',
    ]) {
      const server = await startFakeImap({ capabilities });
      const writer = createImapWriter(imapConfig(server, { method: 'password', passwordFile: pw }), {
        logger: silentLogger(),
      });
      try {
        const receipts = await Promise.all(items.map((i) => writer.append(MAILBOX, i)));
        assert.ok(receipts.every((r) => !r.duplicate));
        const stored = new Map(server.messages.map((m) => [/sym\.(\w+)@/.exec(m.toString())?.[1], m]));
        for (const item of items) {
          const bytes = Buffer.isBuffer(item.content) ? item.content : await readFile(item.content.path);
          assert.ok(stored.get(item.key)?.equals(bytes), `${capabilities}: ${item.key} stored as sent`);
        }
        assert.equal(server.messages.length, items.length);
        if (capabilities.includes('MULTIAPPEND')) {
          assert.ok(server.commands.filter((c) => c.startsWith('APPEND')).length < items.length, capabilities);
        }
      } finally {
        await writer.close();
        await server.close();
      }
    }
  });

  it('refuses a staged file over APPENDLIMIT before sending any of it', async () => {
    const server = await startFakeImap({ capabilities: 'IMAP4rev1 UIDPLUS LITERAL+ MULTIAPPEND APPENDLIMIT=2000' });
    const writer = createImapWriter(imapConfig(server, { method: 'password', passwordFile: pw }), {
      logger: silentLogger(),
    });
    try {
      const big = await inFile(makeItem('flimit', new Date(), 'y'.repeat(3000)), tmp);
      const small = makeItem('fok', new Date());
      const [refused, ok] = await Promise.allSettled([writer.append(MAILBOX, big), writer.append(MAILBOX, small)]);
      assert.equal(ok.status, 'fulfilled');
      assert.equal(refused.status, 'rejected');
      const err = (refused as PromiseRejectedResult).reason as unknown;
      assert.ok(isAppError(err, 'ERR_SINK_REJECTED'), String(err));
      assert.match(err.message, /APPENDLIMIT/);
      assert.equal(server.messages.length, 1);
    } finally {
      await writer.close();
      await server.close();
    }
  });

  it('a staged file whose Message-ID header is missing is refused, like one in memory', async () => {
    const server = await startFakeImap({});
    const writer = createImapWriter(imapConfig(server, { method: 'password', passwordFile: pw }), {
      logger: silentLogger(),
    });
    try {
      const item = makeItem('fnoid', new Date());
      const other = await inFile(
        { ...item, content: Buffer.from(item.content.toString().replace('sym.fnoid@', 'x@')) },
        tmp,
      );
      await assert.rejects(writer.append(MAILBOX, other), (err: unknown) => isAppError(err, 'ERR_SINK_REJECTED'));
      assert.equal(server.messages.length, 0);
    } finally {
      await writer.close();
      await server.close();
    }
  });
});
