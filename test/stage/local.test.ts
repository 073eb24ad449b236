import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isAppError, type ErrorCode } from '../../src/core/errors.ts';
import { createLocalStager } from '../../src/stage/local/index.ts';
import { STAGED_IN_MEMORY_MAX, type StagedFile, type Stager } from '../../src/stage/stager.ts';

const EML = Buffer.from('Message-ID: <sym.00@archive.example>\r\nSubject: hi\r\n\r\nbody\r\n');

/** Every file under a directory, relative to it. */
function files(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();
}

function inMemory(got: Buffer | StagedFile): Buffer {
  assert.ok(Buffer.isBuffer(got), 'a small item comes back in memory');
  return got;
}

async function* chunked(bytes: Buffer, size: number, fail?: Error): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  if (fail) throw fail;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isAppError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('LocalStager', () => {
  let root: string;
  let stager: Stager;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sa-stage-'));
    stager = createLocalStager({ root });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('put returns the SHA-256 content address and stores the bytes under it', async () => {
    const ref = await stager.put(EML);
    assert.equal(ref, createHash('sha256').update(EML).digest('hex'));
    assert.equal(stager.kind, 'local');
    assert.deepEqual(files(root), [join(ref.slice(0, 2), `${ref}.eml`)]);
    const mode = statSync(join(root, ref.slice(0, 2), `${ref}.eml`)).mode & 0o777;
    assert.equal(mode & 0o077, 0, 'staged mail is private to the owner');
  });

  it('gives the same ref for the same bytes and different refs for different bytes', async () => {
    const a = await stager.put(EML);
    const b = await stager.put(Buffer.from(EML));
    const c = await stager.put(Buffer.concat([EML, Buffer.from('x')]));
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.equal(files(root).length, 2);
  });

  it('get round-trips the bytes, including empty and binary items', async () => {
    const binary = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    for (const raw of [EML, Buffer.alloc(0), binary]) {
      const ref = await stager.put(raw);
      assert.ok(inMemory(await stager.get(ref)).equals(raw));
    }
  });

  it('a new stager on the same root reads what an earlier one wrote', async () => {
    const ref = await stager.put(EML);
    assert.ok(inMemory(await createLocalStager({ root }).get(ref)).equals(EML));
  });

  it('leaves no temporary files, also under concurrent puts of the same item', async () => {
    const items = Array.from({ length: 20 }, (_, i) => Buffer.from(`item ${i % 5}`));
    const refs = await Promise.all(items.map((raw) => stager.put(raw)));
    assert.equal(new Set(refs).size, 5);
    const names = files(root);
    assert.equal(names.length, 5);
    assert.ok(
      names.every((n) => /^[0-9a-f]{2}\/[0-9a-f]{64}\.eml$/.test(n)),
      names.join(', '),
    );
  });

  it('remove deletes the item; removing a missing item is not an error', async () => {
    const ref = await stager.put(EML);
    await stager.remove(ref);
    assert.deepEqual(files(root), []);
    await stager.remove(ref);
    await rejectsWith(stager.get(ref), 'ERR_STAGE_IO');
  });

  it('detects a staged copy that was damaged on disk', async () => {
    const ref = await stager.put(EML);
    writeFileSync(join(root, ref.slice(0, 2), `${ref}.eml`), Buffer.concat([EML.subarray(0, 10), Buffer.from('X')]));
    await rejectsWith(stager.get(ref), 'ERR_STAGE_IO', /does not match its hash/);
    writeFileSync(join(root, ref.slice(0, 2), `${ref}.eml`), '');
    await rejectsWith(stager.get(ref), 'ERR_STAGE_IO', /does not match its hash/);
  });

  it('refuses references that are not content addresses', async () => {
    const valid = await stager.put(EML);
    for (const ref of ['../../etc/passwd', '', valid.toUpperCase(), `${valid}0`, valid.slice(1), `../${valid}`]) {
      await rejectsWith(stager.get(ref), 'ERR_STAGE_IO', /not a staging reference/);
      await rejectsWith(stager.remove(ref), 'ERR_STAGE_IO', /not a staging reference/);
    }
  });

  it('reports a root it cannot write as a retryable ERR_STAGE_IO', async () => {
    const blocked = join(root, 'file-not-dir');
    writeFileSync(blocked, '');
    const bad = createLocalStager({ root: blocked });
    await assert.rejects(bad.put(EML), (err: unknown) => {
      assert.ok(isAppError(err, 'ERR_STAGE_IO'), String(err));
      assert.equal(err.retryable, true);
      return true;
    });
    assert.deepEqual(files(root), ['file-not-dir']);
  });

  it('putStream stores a streamed item under its SHA-256 and get gives a large one back as its checked file', async () => {
    const big = randomBytes(STAGED_IN_MEMORY_MAX + 12_345);
    const staged = await stager.putStream(chunked(big, 65_536));
    assert.equal(staged.ref, createHash('sha256').update(big).digest('hex'));
    assert.equal(staged.size, big.length);
    assert.equal(staged.path, join(root, staged.ref.slice(0, 2), `${staged.ref}.eml`));
    assert.deepEqual(files(root), [join(staged.ref.slice(0, 2), `${staged.ref}.eml`)], 'no temporary file is left');
    assert.equal(statSync(staged.path).mode & 0o077, 0);
    const got = await stager.get(staged.ref);
    assert.ok(!Buffer.isBuffer(got));
    assert.deepEqual(got, staged);
    assert.ok(readFileSync(got.path).equals(big));
    // The same bytes through put and through putStream are one item.
    const small = await stager.putStream(chunked(EML, 7));
    assert.equal(small.ref, await stager.put(EML));
    assert.ok(inMemory(await stager.get(small.ref)).equals(EML));
  });

  it('a large staged item damaged on disk is detected by get', async () => {
    const big = randomBytes(STAGED_IN_MEMORY_MAX * 2);
    const { ref, path } = await stager.putStream(chunked(big, 1 << 20));
    big.writeUInt8(big.readUInt8(0) ^ 1, 0);
    writeFileSync(path, big);
    await rejectsWith(stager.get(ref), 'ERR_STAGE_IO', /does not match its hash/);
  });

  it('a stream that fails leaves nothing staged and keeps its error', async () => {
    const failure = new Error('source broke');
    await assert.rejects(stager.putStream(chunked(EML, 5, failure)), (err: unknown) => {
      assert.ok(isAppError(err, 'ERR_STAGE_IO'), String(err));
      assert.equal(err.retryable, true);
      assert.equal(err.cause, failure);
      return true;
    });
    assert.deepEqual(files(root), []);
  });

  it('scratch files: private, removed one by one, and what a stopped run left goes before the first is written', async () => {
    const leftover = join(root, 'scratch', 'left-by-a-crash.eml.tmp');
    mkdirSync(join(root, 'scratch'), { recursive: true });
    writeFileSync(leftover, 'x');
    const bytes = randomBytes(100_000);
    const scratch = await stager.putScratch(chunked(bytes, 4096));
    assert.equal(existsSync(leftover), false);
    assert.equal(scratch.size, bytes.length);
    assert.ok(readFileSync(scratch.path).equals(bytes));
    assert.equal(statSync(scratch.path).mode & 0o077, 0);
    await assert.rejects(stager.putScratch(chunked(bytes, 4096, new Error('cut off'))), /cut off/);
    assert.equal(files(root).length, 1, 'a failed scratch write leaves nothing');
    const other = await stager.putScratch(chunked(bytes, 4096));
    await stager.removeScratch(scratch);
    await stager.removeScratch(scratch);
    assert.equal(existsSync(scratch.path), false);
    assert.equal(existsSync(other.path), true, 'only the file named is removed');
    await rejectsWith(
      stager.removeScratch({ path: join(root, 'ab', 'x.eml'), size: 0 }),
      'ERR_STAGE_IO',
      /not a scratch/,
    );
  });
});
