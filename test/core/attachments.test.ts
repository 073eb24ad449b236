import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore, runConnector } from '../../src/app.ts';
import { createSymphonyMimeConverter } from '../../src/convert/index.ts';
import { parseConfig } from '../../src/config/load.ts';
import { AppError, isAppError } from '../../src/core/errors.ts';
import { idToken } from '../../src/core/ids.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { runCycle } from '../../src/core/pipeline.ts';
import { createMaildirWriter } from '../../src/deliver/maildir/index.ts';
import type { MailboxWriter } from '../../src/deliver/mailbox-writer.ts';
import { decodeAttachment } from '../../src/source/symphony/base64.ts';
import { createSymphonySource } from '../../src/source/symphony/index.ts';
import { createLocalStager } from '../../src/stage/local/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/index.ts';
import { LARGE_FILE_ID, startLargeAttachmentPod, type LargeAttachmentPod } from '../helpers/large-attachment-pod.ts';

async function* pieces(text: string, size: number): AsyncGenerator<Uint8Array> {
  const bytes = Buffer.from(text, 'latin1');
  for (let i = 0; i < bytes.length; i += size) yield new Uint8Array(bytes.subarray(i, i + size));
}

async function decode(text: string, size?: number, piece = 7): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of decodeAttachment(pieces(text, piece), 'test', size)) out.push(chunk);
  return Buffer.concat(out);
}

async function collect(bytes: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of bytes) out.push(chunk);
  return Buffer.concat(out);
}

async function rejectsAttachment(promise: Promise<unknown>, message: RegExp): Promise<AppError> {
  let caught: AppError | undefined;
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isAppError(err, 'ERR_SOURCE_ATTACHMENT'), String(err));
    assert.match(err.message, message);
    caught = err;
    return true;
  });
  return caught!;
}

describe('decoding the attachment body as it arrives', () => {
  const bytes = randomBytes(1000);
  const b64 = bytes.toString('base64');

  it('takes standard and URL-safe base64, white space, `\\n` escapes and a JSON string, split anywhere', async () => {
    const forms = [
      b64,
      bytes.toString('base64url'),
      `  ${b64.replace(/.{76}/g, '$&\r\n')}\n`,
      JSON.stringify(b64.replace(/.{60}/g, '$&\n')),
      `"${b64.replace(/.{10}/g, '$&\\n')}"`,
    ];
    for (const form of forms) {
      for (const piece of [1, 2, 3, 5, 64, 4096]) {
        assert.ok(
          (await decode(form, bytes.length, piece)).equals(bytes),
          `${form.slice(0, 12)}… in pieces of ${piece}`,
        );
      }
    }
    assert.deepEqual(await decode('', 0), Buffer.alloc(0));
    assert.deepEqual(await decode('YQ', 1), Buffer.from('a'), 'unpadded');
    assert.deepEqual(await decode('YWI=', 2), Buffer.from('ab'));
  });

  it('refuses anything else, as a retryable ERR_SOURCE_ATTACHMENT', async () => {
    for (const bad of [
      '<html>error</html>',
      `${b64}!`,
      `${b64.slice(0, 10)}\\t${b64.slice(10)}`,
      'YQ==YQ',
      'a',
      '"YQ',
      'YQ"',
      'YQ===',
      '\\',
    ]) {
      const err = await rejectsAttachment(decode(bad), /body is not base64/);
      assert.equal(err.retryable, true);
    }
  });

  it('counts the bytes against the declared size: more fails at once, fewer at the end, with both numbers', async () => {
    let yielded = 0;
    const more = (async () => {
      for await (const chunk of decodeAttachment(pieces(b64, 64), 'f', 100)) yielded += chunk.length;
    })();
    await rejectsAttachment(more, /decodes to more than 100 bytes, the message says 100/);
    assert.ok(yielded <= 100, 'nothing past the declared size is passed on');
    await rejectsAttachment(decode(b64, 1001), /decodes to 1000 bytes, the message says 1001/);
  });
});

describe('Source.attachment over HTTP', () => {
  const body = randomBytes(300_000);
  const b64 = body.toString('base64');
  let url: string;
  let serve: (res: ServerResponse, attempt: number, fileId: string | null) => void = () => undefined;
  let attempts = 0;
  const requested: string[] = [];
  let close: () => Promise<void>;
  let privateKeyPem: string;

  before(async () => {
    privateKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (u.pathname.endsWith('/authenticate')) {
        const name = u.pathname.startsWith('/relay') ? 'keyManagerToken' : 'sessionToken';
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ name, token: 't' }));
      }
      requested.push(u.searchParams.get('fileId') ?? '');
      attempts += 1;
      serve(res, attempts, u.searchParams.get('fileId'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
  });
  after(() => close());

  const source = (options: { requestTimeoutMs?: number } = {}) =>
    createSymphonySource(
      {
        podUrl: url,
        agentUrl: url,
        keyManagerUrl: url,
        username: 'bot',
        privateKeyPem,
        maxRetries: 2,
        backoffBaseMs: 1,
        backoffCapMs: 2,
        ...options,
      },
      { logger: silentLogger() },
    );

  it('streams the decoded bytes to the consumer; a body cut off midway is fetched again from the start', async () => {
    attempts = 0;
    serve = (res, attempt) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(b64.length) });
      if (attempt === 1) {
        res.write(b64.slice(0, 100_000));
        setTimeout(() => res.destroy(), 20);
      } else res.end(b64);
    };
    const starts: number[] = [];
    const got = await source().attachment('c3RyZWFt', 'bWVzc2FnZQ', { id: 'f/1+=', size: body.length }, (bytes) => {
      starts.push(Date.now());
      return collect(bytes);
    });
    assert.ok(got.equals(body));
    assert.equal(starts.length, 2, 'the consumer starts over on the retry');
    assert.equal(attempts, 2);
  });

  it('a body that stalls is given up after the deadline, counted between chunks, and retried', async () => {
    attempts = 0;
    serve = (res, attempt) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(b64.slice(0, 4000));
      if (attempt > 1) {
        // Slow but steady: each wait is under the deadline, the whole transfer is not.
        let at = 4000;
        const timer = setInterval(() => {
          res.write(b64.slice(at, at + 60_000));
          at += 60_000;
          if (at >= b64.length) {
            clearInterval(timer);
            res.end();
          }
        }, 150);
      }
    };
    const got = await source({ requestTimeoutMs: 400 }).attachment('c3RyZWFt', 'bWVzc2FnZQ', { id: 'f' }, collect);
    assert.ok(got.equals(body));
    assert.equal(attempts, 2);
  });

  it('a size mismatch and a corrupt body are not retried: the consumer sees the error and the caller gets both sizes', async () => {
    serve = (res) => res.end(b64);
    await rejectsAttachment(
      source().attachment('c3RyZWFt', 'bWVzc2FnZQ', { id: 'f', size: body.length + 1 }, collect),
      new RegExp(`file f: the body decodes to ${body.length} bytes, the message says ${body.length + 1}`),
    );
    attempts = 0;
    serve = (res) => res.end(`${b64.slice(0, 10)}<${b64.slice(10)}`);
    const err = await rejectsAttachment(
      source().attachment('c3RyZWFt', 'bWVzc2FnZQ', { id: 'f' }, collect),
      /not base64/,
    );
    assert.equal(err.retryable, true);
    assert.equal(attempts, 1);
  });

  it('a 204 has no content; HTTP failures keep status and retryability', async () => {
    serve = (res) => {
      res.writeHead(204);
      res.end();
    };
    const empty = await rejectsAttachment(
      source().attachment('c3RyZWFt', 'bWVzc2FnZQ', { id: 'f' }, collect),
      /no content/,
    );
    assert.equal(empty.retryable, false);
    serve = (res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"message":"gone"}');
    };
    const gone = await rejectsAttachment(source().attachment('c3RyZWFt', 'bWVzc2FnZQ', { id: 'f' }, collect), /404/);
    assert.equal(gone.status, 404);
    assert.equal(gone.retryable, false);
  });
});

describe('attachments in an archive cycle', () => {
  let dir: string;
  let pod: LargeAttachmentPod;
  const SIZE = 3 * 1024 * 1024;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'attachments-'));
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(path.join(dir, 'bot.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    pod = await startLargeAttachmentPod({
      seed: 9,
      users: 8,
      streams: 4,
      messages: 40,
      botUsername: 'archiver-bot',
      botPublicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      size: SIZE,
    });
  });
  after(async () => {
    await pod?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a size mismatch or a corrupt body quarantines the message with the reason; the next cycle files it', async () => {
    const config = parseConfig(
      {
        dataDir: 'data',
        connectors: [
          {
            id: 'c',
            source: { kind: 'symphony', podUrl: pod.url, username: 'archiver-bot', privateKeyPath: 'bot.pem' },
            destination: { kind: 'maildir', root: 'mail' },
          },
        ],
      },
      dir,
    );
    const store = openStore(config.dataDir);
    const cycle = () => runConnector(config, config.connectors[0]!, { logger: silentLogger(), store });
    const mailboxes = Object.entries(pod.emulator.groundTruth().mailboxes)
      .filter(([, ids]) => ids.includes(pod.messageId))
      .map(([mb]) => mb);
    const filed = async () => {
      let n = 0;
      for (const mb of mailboxes) {
        const names = await readdir(path.join(dir, 'mail', mb, '.INBOX.Symphony', 'cur')).catch(() => []);
        n += names.filter((f) => f.includes(`Q${idToken(pod.messageId)}.`)).length;
      }
      return n;
    };
    try {
      pod.mode = 'short';
      const first = await cycle();
      assert.equal(first.run.quarantined, 1);
      let [q, ...rest] = await store.quarantined('c');
      assert.deepEqual(rest, []);
      assert.equal(q?.messageId, pod.messageId);
      assert.match(q!.reason, new RegExp(`ERR_SOURCE_ATTACHMENT: .*${LARGE_FILE_ID.replace(/[+/]/g, '\\$&')}`));
      assert.match(q!.reason, new RegExp(`decodes to ${SIZE - 1} bytes, the message says ${SIZE}`));
      assert.equal(await filed(), 0);

      pod.mode = 'corrupt';
      await cycle();
      [q, ...rest] = await store.quarantined('c');
      assert.deepEqual(rest, []);
      assert.match(q!.reason, /body is not base64/);
      assert.ok(q!.attempts >= 2, 'the retry is counted');
      assert.equal(await filed(), 0);

      pod.mode = 'ok';
      await cycle();
      assert.deepEqual(await store.quarantined('c'), []);
      assert.equal(await filed(), mailboxes.length);
      assert.equal(pod.previewRequests, 0, 'preview images are never downloaded');
      const staging = path.join(dir, 'data', 'staging', 'c');
      const left = (await readdir(staging, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
      assert.deepEqual(left, [], 'no scratch file or staged item is left');
    } finally {
      await store.close();
    }
  });

  it('the filed item carries the attachment unchanged', async () => {
    const mb = Object.entries(pod.emulator.groundTruth().mailboxes).find(([, ids]) => ids.includes(pod.messageId))![0];
    const cur = path.join(dir, 'mail', mb, '.INBOX.Symphony', 'cur');
    const name = (await readdir(cur)).find((f) => f.includes(`Q${idToken(pod.messageId)}.`))!;
    const { simpleParser } = await import('mailparser');
    const { readFile } = await import('node:fs/promises');
    const parsed = await simpleParser(await readFile(path.join(cur, name)));
    const attachment = parsed.attachments.find((a) => a.filename === 'quarterly-data.bin');
    assert.equal(createHash('sha256').update(attachment!.content).digest('hex'), pod.sha256);
  });

  it('a copy that failed is delivered by the next cycle from the staged file, which get hands over unread', async () => {
    const store = openSqliteStore(path.join(dir, 'redeliver.db'));
    await store.ensureConnector({ id: 'r', name: 'r', sourceKind: 'symphony', destinationKind: 'maildir' });
    const logger = silentLogger();
    const key = idToken(pod.messageId);
    let refuse = true;
    const seen: (Buffer | { path: string })[] = [];
    const cycle = () => {
      const maildir = createMaildirWriter({ root: path.join(dir, 'redeliver-mail') }, { logger });
      const writer: MailboxWriter = {
        ...maildir,
        kind: 'maildir',
        async append(mailbox, item, signal) {
          if (item.key === key) {
            seen.push(item.content);
            if (refuse) throw new AppError('ERR_SINK_IO', 'disk busy', { retryable: true });
          }
          return maildir.append(mailbox, item, signal);
        },
      };
      return runCycle({
        connectorId: 'r',
        source: createSymphonySource(
          {
            podUrl: pod.url,
            agentUrl: pod.url,
            keyManagerUrl: pod.url,
            username: 'archiver-bot',
            privateKeyPem: readFileSync(path.join(dir, 'bot.pem'), 'utf8'),
          },
          { logger },
        ),
        converter: createSymphonyMimeConverter(),
        stager: createLocalStager({ root: path.join(dir, 'redeliver-staging') }),
        writer,
        store,
        logger,
        mapping: { overrides: {} },
        convert: { messageIdDomain: 'symphony.test', syntheticDomain: 'symphony.invalid' },
        maxAttempts: 3,
        concurrency: 4,
      });
    };
    try {
      const first = await cycle();
      assert.ok(first.run.failed > 0);
      assert.ok(seen.length > 0 && seen.every((c) => !Buffer.isBuffer(c)), 'a large item goes to writers as its file');
      const staged = (await readdir(path.join(dir, 'redeliver-staging'), { recursive: true })).filter((f) =>
        f.endsWith('.eml'),
      );
      assert.equal(staged.length, 1, 'the item stays staged while a copy is undelivered');
      refuse = false;
      seen.length = 0;
      const second = await cycle();
      assert.equal(second.run.failed, 0);
      assert.ok(second.run.delivered >= 1);
      assert.ok(seen.length > 0 && seen.every((c) => !Buffer.isBuffer(c)));
      const left = (await readdir(path.join(dir, 'redeliver-staging'), { recursive: true })).filter((f) =>
        f.endsWith('.eml'),
      );
      assert.deepEqual(left, [], 'removed once every copy is delivered');
    } finally {
      await store.close();
    }
  });
});
