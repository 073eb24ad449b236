/**
 * The Graph MailboxWriter against the emulator: folder creation races, non-draft full-MIME delivery, dedupe across
 * writer instances, inventory, throttling, unknown outcomes, the large-item route, oversize stubs, concurrency and
 * auth failures (destinations.md §1.8 and §6).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { isAppError, type AppError } from '../../../src/core/errors.ts';
import { createGraphWriter } from '../../../src/deliver/graph/index.ts';
import { generateSelfSignedCertificate } from '../../../src/emulator/graph/index.ts';
import { call, token } from '../../emulator/graph/http.ts';
import { inFile } from '../maildir/fixtures.ts';
import { harness, itemWithFiles, MiB, pattern, smallItem } from './helpers.ts';

const ALICE = 'alice@bank.example';
const BOB = 'bob@bank.example';

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('graph writer', () => {
  it('creates Inbox/Symphony once under concurrent first appends and files non-draft items with their full MIME', async () => {
    const h = await harness({ users: [ALICE], latencyMs: 5 });
    try {
      const writer = h.writer();
      await writer.verify();
      const items = Array.from({ length: 12 }, (_, i) => smallItem(`a${i}`, new Date(Date.UTC(2024, 0, 1, 9, i))));
      const receipts = await Promise.all(items.map((it) => writer.append(ALICE, it)));
      assert.ok(receipts.every((r) => !r.duplicate && r.ref.length > 0));
      const creates = h.emu.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/childFolders'));
      assert.equal(creates.length, 1, 'one folder creation');
      const box = h.emu.mailbox(ALICE);
      assert.equal(box.folders().filter((f) => f.path.toLowerCase() === 'inbox/symphony').length, 1);
      const stored = box.messages('Inbox/Symphony');
      assert.equal(stored.length, 12);
      for (const item of items) {
        const m = stored.find((s) => s.internetMessageId === `<${item.messageId}>`);
        assert.ok(m, item.key);
        assert.equal(m.isDraft, false);
        assert.equal(m.createdVia, 'importMime');
        assert.ok(m.mime?.equals(item.content), 'MIME preserved byte for byte');
        assert.ok(
          receipts.some((r) => r.ref === m.id),
          'the receipt is the immutable id',
        );
      }
    } finally {
      await h.close();
    }
  });

  it('treats a folder made by a racing writer (ErrorFolderExists) as success', async () => {
    const h = await harness({ users: [ALICE], latencyMs: 20 });
    try {
      const [w1, w2] = [h.writer(), h.writer()];
      const [r1, r2] = await Promise.all([w1.append(ALICE, smallItem('r1')), w2.append(ALICE, smallItem('r2'))]);
      assert.ok(!r1.duplicate && !r2.duplicate);
      const folderCreates = h.emu.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/childFolders'));
      assert.equal(folderCreates.length, 2);
      assert.deepEqual(folderCreates.map((r) => r.status).sort(), [201, 409]);
      assert.equal(h.emu.mailbox(ALICE).messages('Inbox/Symphony').length, 2);
    } finally {
      await h.close();
    }
  });

  it('detects duplicates in the same writer and in a second writer instance, and counts them in inventory', async () => {
    const h = await harness({ users: [ALICE, BOB] });
    try {
      const first = h.writer();
      const items = Array.from({ length: 5 }, (_, i) => smallItem(`d${i}`));
      const receipts = await Promise.all(items.map((it) => first.append(ALICE, it)));
      const again = await first.append(ALICE, items[0]!);
      assert.deepEqual(again, { ref: receipts[0]!.ref, duplicate: true });

      const second = h.writer();
      const fromSecond = await Promise.all(items.map((it) => second.append(ALICE, it)));
      assert.ok(fromSecond.every((r, i) => r.duplicate && r.ref === receipts[i]!.ref));
      const probeMode = h.writer({ indexMaxItems: 0 });
      const probed = await probeMode.append(ALICE, items[3]!);
      assert.deepEqual(probed, { ref: receipts[3]!.ref, duplicate: true });
      assert.equal(h.emu.mailbox(ALICE).messages('Inbox/Symphony').length, 5);

      const inventory = await second.inventory(ALICE);
      assert.deepEqual([...inventory.entries()].sort(), items.map((it) => [it.key, 1]).sort());
      assert.equal((await second.inventory(BOB)).size, 0, 'no folder, no items, nothing created');
      assert.equal(h.emu.mailbox(BOB).folder('Inbox/Symphony'), undefined);
    } finally {
      await h.close();
    }
  });

  it('counts a copy filed twice behind the writer’s back as 2 in inventory', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer();
      const item = smallItem('twice');
      await w.append(ALICE, item);
      const other = h.writer();
      // A second copy filed by someone else, straight through Graph.
      const folderId = h.emu.mailbox(ALICE).folder('Inbox/Symphony')!.id;
      const res = await call(`${h.emu.url}/beta/users/${ALICE}/mailFolders/${folderId}/importMime`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token(h.emu)}`, 'content-type': 'text/plain' },
        body: item.content.toString('base64'),
      });
      assert.equal(res.status, 201);
      const inventory = await other.inventory(ALICE);
      assert.equal(inventory.get('twice'), 2);
    } finally {
      await h.close();
    }
  });

  it('rides out injected 429/503 with Retry-After without duplicates', async () => {
    const h = await harness({
      users: [ALICE, BOB],
      faults: { rate429: 0.25, rate503: 0.15, retryAfterSeconds: 0, seed: 7 },
    });
    try {
      const w = h.writer();
      const items = Array.from({ length: 40 }, (_, i) => smallItem(`t${i}`));
      const receipts = await Promise.all(items.flatMap((it) => [w.append(ALICE, it), w.append(BOB, it)]));
      assert.ok(receipts.every((r) => !r.duplicate));
      for (const user of [ALICE, BOB]) {
        const ids = h.emu
          .mailbox(user)
          .messages('Inbox/Symphony')
          .map((m) => m.internetMessageId);
        assert.equal(ids.length, 40);
        assert.equal(new Set(ids).size, 40, 'no duplicates');
      }
      const faults = h.emu.requests().filter((r) => r.fault === 'throttle' || r.fault === 'unavailable');
      assert.ok(faults.length > 10, `faults were injected (${faults.length})`);
      assert.ok(h.logs.some((l) => l.includes('graph throttled the request')));
    } finally {
      await h.close();
    }
  });

  it('honours a real Retry-After delay before retrying', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer();
      await w.append(ALICE, smallItem('warm'));
      h.emu.injectFault({ fault: 'throttle', path: '/importMime', retryAfterSeconds: 1 });
      const started = Date.now();
      const r = await w.append(ALICE, smallItem('late'));
      assert.ok(!r.duplicate);
      assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
    } finally {
      await h.close();
    }
  });

  it('gives up on a Retry-After longer than maxRetryWaitMs with a retryable ERR_SINK_THROTTLED', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer({ maxRetryWaitMs: 500 });
      await w.append(ALICE, smallItem('warm'));
      h.emu.injectFault({ fault: 'throttle', path: '/importMime', retryAfterSeconds: 30 });
      await assert.rejects(w.append(ALICE, smallItem('slow')), (err: AppError) => {
        assert.equal(err.code, 'ERR_SINK_THROTTLED');
        assert.equal(err.retryable, true);
        assert.equal(err.retryAfterMs, 30_000);
        return true;
      });
    } finally {
      await h.close();
    }
  });

  it('probes after an unknown outcome (connection dropped after the store, or 504) instead of filing twice', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer();
      await w.append(ALICE, smallItem('warm'));
      h.emu.injectFault({ fault: 'drop-after', path: '/importMime' });
      const dropped = await w.append(ALICE, smallItem('u1'));
      assert.equal(dropped.duplicate, false);
      h.emu.injectFault({ fault: 'error-after', path: '/importMime' });
      await w.append(ALICE, smallItem('u2'));
      h.emu.injectFault({ fault: 'drop-before', path: '/importMime' });
      await w.append(ALICE, smallItem('u3'));
      const ids = h.emu
        .mailbox(ALICE)
        .messages('Inbox/Symphony')
        .map((m) => m.internetMessageId);
      assert.deepEqual(ids.sort(), [
        '<sym.u1@archiver.example>',
        '<sym.u2@archiver.example>',
        '<sym.u3@archiver.example>',
        '<sym.warm@archiver.example>',
      ]);
      const probes = h.emu.requests().filter((r) => r.method === 'GET' && r.path.endsWith('/messages'));
      assert.ok(probes.length >= 3, 'each unknown outcome was probed');
      assert.ok(h.logs.some((l) => l.includes('outcome unknown; probing')));
    } finally {
      await h.close();
    }
  });

  it('files a 20 MB attachment through JSON create, an upload session and a move, ending non-draft in the folder', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer();
      const big = pattern(20 * MiB + 17, 1);
      const small = Buffer.from('small attachment');
      const item = await itemWithFiles('large1', [
        { name: 'Überblick 2024.pdf', content: big, contentType: 'application/pdf' },
        { name: 'notes.txt', content: small, contentType: 'text/plain' },
      ]);
      const receipt = await w.append(ALICE, item);
      assert.equal(receipt.duplicate, false);
      assert.equal(receipt.partial, undefined);
      const box = h.emu.mailbox(ALICE);
      const [m, ...rest] = box.messages('Inbox/Symphony');
      assert.equal(rest.length, 0);
      assert.ok(m);
      assert.equal(m.id, receipt.ref, 'immutable id survives the move');
      assert.equal(m.createdVia, 'json');
      assert.equal(m.isDraft, false);
      assert.equal(m.internetMessageId, `<${item.messageId}>`);
      assert.equal(m.receivedDateTime, '2024-05-17T09:30:00Z');
      assert.equal(m.subject, 'Files large1 – Grüße');
      assert.equal(m.from?.emailAddress.address, 'zoe@bank.example');
      assert.deepEqual(
        m.toRecipients.map((r) => r.emailAddress),
        [{ name: 'Bob, Jr.', address: 'bob@bank.example' }],
      );
      assert.equal(m.body.contentType, 'html');
      assert.ok(m.internetMessageHeaders.some((x) => /^x-symphony-stream-id$/i.test(x.name) && x.value === 'stream-9'));
      assert.ok(
        m.singleValueExtendedProperties.some(
          (p) => p.id === 'String 0x1042' && p.value === '<sym.parent@archiver.example>',
        ),
      );
      const files = new Map(m.attachments.map((a) => [a.name, a.sha256]));
      assert.equal(files.get('Überblick 2024.pdf'), sha(big));
      assert.equal(files.get('notes.txt'), sha(small));
      assert.equal(box.messages('Symphony Staging').length, 0, 'staging left empty');
      assert.equal(box.folder('Symphony Staging')?.isHidden, true);
      const puts = h.emu.requests().filter((r) => r.method === 'PUT');
      assert.equal(puts.length, 6, '20 MB in ≤ 4 MB ranges');
      assert.deepEqual(await w.append(ALICE, item), { ref: receipt.ref, duplicate: true });
    } finally {
      await h.close();
    }
  });

  it('rebuilds a large item whose chunk upload had an unknown outcome, leaving one copy and no debris', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer();
      const item = await itemWithFiles('large2', [{ name: 'data.bin', content: pattern(9 * MiB, 2) }]);
      h.emu.injectFault({ fault: 'drop-after', method: 'PUT', after: 1 });
      h.emu.injectFault({ fault: 'drop-after', path: '/move' });
      const receipt = await w.append(ALICE, item);
      const box = h.emu.mailbox(ALICE);
      const stored = box.messages('Inbox/Symphony');
      assert.equal(stored.length, 1);
      assert.equal(stored[0]!.id, receipt.ref);
      assert.equal(stored[0]!.attachments.length, 1);
      assert.equal(stored[0]!.attachments[0]!.size, 9 * MiB);
      assert.equal(box.messages('Symphony Staging').length, 0);
      assert.ok(h.logs.some((l) => l.includes('rebuilding the item')));
    } finally {
      await h.close();
    }
  });

  it('replaces attachments over the mailbox size limit with stubs and reports the item as partial', async () => {
    const h = await harness({ users: [ALICE], maxMessageSizeBytes: 8 * MiB });
    try {
      const w = h.writer({ oversizeCopyDir: path.join(h.dir, 'oversize'), stubMinBytes: 512 * 1024 });
      const huge = pattern(10 * MiB, 3);
      const keep = Buffer.from('keep me');
      const item = await itemWithFiles('over1', [
        { name: 'huge.iso', content: huge },
        { name: 'keep.txt', content: keep, contentType: 'text/plain' },
      ]);
      const receipt = await w.append(ALICE, item);
      assert.equal(receipt.duplicate, false);
      assert.match(receipt.partial ?? '', /huge\.iso \(10485760 bytes, sha256 [0-9a-f]{64}\)/);
      const [m] = h.emu.mailbox(ALICE).messages('Inbox/Symphony');
      assert.ok(m?.mime, 'the stubbed item is small enough for importMime');
      assert.equal(m.isDraft, false);
      const parsed = await simpleParser(m.mime);
      assert.equal(parsed.messageId, `<${item.messageId}>`);
      const names = parsed.attachments.map((a) => a.filename);
      assert.deepEqual(names, ['huge.iso (removed).txt', 'keep.txt']);
      const stubText = parsed.attachments[0]!.content.toString('utf8');
      assert.match(stubText, /File name: huge\.iso/);
      assert.match(stubText, /Size: 10485760 bytes/);
      assert.ok(stubText.includes(`SHA-256: ${sha(huge)}`));
      const kept = path.join(h.dir, 'oversize', `${sha(item.content)}.eml`);
      assert.ok(stubText.includes(kept), 'names where the full copy is kept');
      assert.ok((await readFile(kept)).equals(item.content));
      assert.equal(parsed.attachments[1]!.content.toString(), 'keep me');
      assert.equal(h.emu.mailbox(ALICE).messages('Symphony Staging').length, 0);
    } finally {
      await h.close();
    }
  });

  it('stubs up front when the item exceeds maxItemBytes', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer({ maxItemBytes: 2 * MiB });
      const item = await itemWithFiles('over2', [{ name: 'big.bin', content: pattern(3 * MiB, 4) }]);
      const receipt = await w.append(ALICE, item);
      assert.match(receipt.partial ?? '', /big\.bin/);
      assert.match(receipt.partial ?? '', /staging area, item sha256:[0-9a-f]{64}/);
      assert.equal(h.emu.requests().filter((r) => r.method === 'PUT').length, 0, 'nothing uploaded in vain');
    } finally {
      await h.close();
    }
  });

  it('stubs a staged file over maxItemBytes without reading it whole, and keeps its full copy', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer({ maxItemBytes: 2 * MiB, oversizeCopyDir: path.join(h.dir, 'oversize') });
      const huge = pattern(5 * MiB, 11);
      const memory = await itemWithFiles('over3', [
        { name: 'huge.iso', content: huge },
        { name: 'keep.txt', content: Buffer.from('keep me'), contentType: 'text/plain' },
      ]);
      const item = await inFile(memory, h.dir);
      const receipt = await w.append(ALICE, item);
      assert.match(receipt.partial ?? '', /huge\.iso \(5242880 bytes, sha256 [0-9a-f]{64}\)/);
      const kept = path.join(h.dir, 'oversize', `${item.content.ref}.eml`);
      assert.ok((await readFile(kept)).equals(memory.content), 'the full copy is the staged file');
      const [m] = h.emu.mailbox(ALICE).messages('Inbox/Symphony');
      const parsed = await simpleParser(m!.mime!);
      assert.deepEqual(
        parsed.attachments.map((a) => a.filename),
        ['huge.iso (removed).txt', 'keep.txt'],
      );
      assert.ok(parsed.attachments[0]!.content.toString().includes(`SHA-256: ${sha(huge)}`));
      assert.equal((await w.append(ALICE, item)).duplicate, true);
    } finally {
      await h.close();
    }
  });

  it('never has more than 4 requests in flight per mailbox', async () => {
    const h = await harness({ users: [ALICE, BOB], latencyMs: 15 });
    try {
      const w = h.writer();
      const items = Array.from({ length: 30 }, (_, i) => smallItem(`c${i}`));
      await Promise.all(items.flatMap((it) => [w.append(ALICE, it), w.append(BOB, it)]));
      const stats = h.emu.stats().mailboxes;
      for (const user of [ALICE, BOB]) {
        assert.equal(stats[user]!.maxInFlight, 4, `${user} used its 4 slots`);
        assert.equal(stats[user]!.concurrencyRejections, 0);
        assert.equal(h.emu.mailbox(user).messages('Inbox/Symphony').length, 30);
      }
    } finally {
      await h.close();
    }
  });

  it('falls back to the JSON route when importMime is not permitted', async () => {
    const h = await harness(
      { clients: [{ clientId: 'basic-app', clientSecret: 'basic-secret', roles: ['Mail.ReadWrite'] }] },
      'basic-secret',
    );
    try {
      const w = h.writer({ clientId: 'basic-app' });
      const item = smallItem('nomime');
      const r = await w.append(ALICE, item);
      const [m] = h.emu.mailbox(ALICE).messages('Inbox/Symphony');
      assert.equal(m?.id, r.ref);
      assert.equal(m?.createdVia, 'json');
      assert.equal(m?.isDraft, false);
      assert.equal(m?.body.content.trim(), 'Hello from Symphony');
      assert.ok(h.logs.some((l) => l.includes('refused importMime')));
    } finally {
      await h.close();
    }
  });

  it('reports auth and mailbox problems clearly, with no secret in errors or logs', async () => {
    const canary = 'canary-secret-2be94f';
    const h = await harness({ users: [ALICE], clients: [{ clientId: 'app', clientSecret: 'the-real-one' }] }, canary);
    try {
      const w = h.writer({ clientId: 'app' });
      const err = await w.append(ALICE, smallItem('x')).then(
        () => assert.fail('should not deliver'),
        (e: unknown) => e,
      );
      assert.ok(isAppError(err, 'ERR_SINK_REJECTED'));
      assert.equal(err.retryable, false);
      assert.match(err.message, /AADSTS7000215/);
      await assert.rejects(w.verify(), /AADSTS7000215/);
      const all = [err.message, String(err.stack), ...h.logs].join('\n');
      assert.ok(!all.includes(canary), 'secret never surfaces');
    } finally {
      await h.close();
    }
    const h2 = await harness({ users: [ALICE] });
    try {
      const w = h2.writer();
      await assert.rejects(w.append('nobody@bank.example', smallItem('y')), (e: AppError) => {
        assert.equal(e.code, 'ERR_SINK_REJECTED');
        assert.equal(e.status, 404);
        assert.match(e.message, /does not exist/);
        return true;
      });
      await assert.rejects(w.append('not an address', smallItem('z')), /ERR_SINK_REJECTED|not a plain email/);
      const full = await harness({ users: [ALICE], mailboxSizeLimitBytes: 1500 });
      try {
        const fw = full.writer();
        await fw.append(ALICE, smallItem('f1'));
        await assert.rejects(fw.append(ALICE, smallItem('f2', undefined, 'x'.repeat(2000))), (e: AppError) => {
          assert.equal(e.code, 'ERR_SINK_IO');
          assert.equal(e.retryable, true);
          assert.match(e.message, /is full/);
          return true;
        });
      } finally {
        await full.close();
      }
    } finally {
      await h2.close();
    }
  });

  it('signs in through @azure/identity over https with a CA file, by secret and by certificate', async () => {
    const cert = generateSelfSignedCertificate({ keyType: 'rsa' });
    const h = await harness(
      {
        tls: true,
        users: [ALICE],
        clients: [
          { clientId: 'secret-app', clientSecret: 'tls-secret' },
          { clientId: 'cert-app', certificatePem: cert.certPem },
        ],
      },
      'tls-secret',
    );
    try {
      const bySecret = h.writer({ clientId: 'secret-app', verifyMailbox: ALICE });
      await bySecret.verify();
      await bySecret.append(ALICE, smallItem('tls1'));
      const pem = path.join(h.dir, 'app.pem');
      await writeFile(pem, cert.combinedPem, { mode: 0o600 });
      const byCert = h.writer({ clientId: 'cert-app', auth: { method: 'certificate', certificateFile: pem } });
      await byCert.append(ALICE, smallItem('tls2'));
      assert.equal(h.emu.mailbox(ALICE).messages('Inbox/Symphony').length, 2);
      const noCa = h.writer({ clientId: 'secret-app', caFile: undefined });
      // MSAL hides why discovery failed, so the sign-in error can only hint at TLS.
      await assert.rejects(noCa.verify(), /OpenID configuration .*caFile/);
      // Graph itself over https without the CA: a clear, permanent TLS error, not minutes of retries.
      const untrusting = createGraphWriter(
        {
          kind: 'graph',
          tenantId: h.emu.tenantId,
          clientId: 'x',
          auth: { method: 'secret', secretEnv: 'UNUSED' },
          graphUrl: h.emu.graphUrl,
        },
        { logger: h.logger, tokenProvider: { token: () => Promise.resolve('t.t.t'), invalidate: () => undefined } },
      );
      await assert.rejects(untrusting.append(ALICE, smallItem('tls3')), (e: AppError) => {
        assert.equal(e.code, 'ERR_SINK_REJECTED');
        assert.equal(e.retryable, false);
        assert.match(e.message, /TLS certificate verification failed \(DEPTH_ZERO_SELF_SIGNED_CERT\).*caFile/);
        return true;
      });
      await untrusting.close();
    } finally {
      await h.close();
    }
  });

  it('renews the token once when Graph answers 401', async () => {
    const h = await harness({ users: [ALICE] });
    try {
      const w = h.writer();
      await w.append(ALICE, smallItem('before'));
      h.emu.revokeTokens();
      await w.append(ALICE, smallItem('after'));
      assert.equal(h.emu.stats().tokensIssued, 2);
      assert.equal(h.emu.mailbox(ALICE).messages('Inbox/Symphony').length, 2);
    } finally {
      await h.close();
    }
  });
});
