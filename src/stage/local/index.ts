import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { syncDir } from '../../core/fs.ts';
import { AppError, toAppError } from '../../core/errors.ts';
import { STAGED_IN_MEMORY_MAX, type ScratchFile, type StagedFile, type Stager } from '../stager.ts';

const REF = /^[0-9a-f]{64}$/;
/** Not two hex digits, so never the directory of an item. */
const SCRATCH_DIR = 'scratch';

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let at = 0; at < chunk.length;) at += (await fh.write(chunk, at, chunk.length - at)).bytesWritten;
}

/**
 * Staging on the local file system. Paths are content-addressed (`ab/abcdef….eml`), never derived from
 * anything in the message (reliability.md §3 row 6), and each item is written to a temporary name,
 * fsynced and renamed so a crash leaves either the whole item or nothing. Streamed items and downloaded
 * attachments are written under `scratch/`, which a new stager empties before its first write there, so
 * what a crash leaves behind goes with the next run (one run per connector and staging root at a time).
 */
export class LocalStager implements Stager {
  readonly kind = 'local';
  readonly #root: string;
  readonly #dirs = new Set<string>();
  /** Directories with entries renamed in since the last flush. */
  #dirty = new Set<string>();
  #scratch: Promise<string> | undefined;

  constructor(root: string) {
    this.#root = root;
  }

  #path(ref: string): string {
    if (!REF.test(ref)) throw new AppError('ERR_STAGE_IO', `not a staging reference: ${JSON.stringify(ref)}`);
    return join(this.#root, ref.slice(0, 2), `${ref}.eml`);
  }

  async #dir(dir: string): Promise<void> {
    if (this.#dirs.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    this.#dirs.add(dir);
  }

  async put(raw: Buffer): Promise<string> {
    const ref = createHash('sha256').update(raw).digest('hex');
    const path = this.#path(ref);
    const dir = join(this.#root, ref.slice(0, 2));
    const tmp = join(dir, `.${ref}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await this.#dir(dir);
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(raw);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      this.#dirty.add(dir);
      return ref;
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw toAppError(err, 'ERR_STAGE_IO', 'cannot stage item', { retryable: true });
    }
  }

  /** The scratch directory, emptied of what an earlier process left there the first time it is asked for. */
  #scratchDir(): Promise<string> {
    if (!this.#scratch) {
      const ready = (async () => {
        const dir = join(this.#root, SCRATCH_DIR);
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true, mode: 0o700 });
        return dir;
      })();
      ready.catch(() => {
        if (this.#scratch === ready) this.#scratch = undefined;
      });
      this.#scratch = ready;
    }
    return this.#scratch;
  }

  /** Writes `chunks` to a new scratch file; `durable` fsyncs it. Returns the file, its size and SHA-256. */
  async #write(chunks: AsyncIterable<Uint8Array>, suffix: string, durable: boolean) {
    const path = join(await this.#scratchDir(), `${randomBytes(8).toString('hex')}${suffix}`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        for await (const chunk of chunks) {
          hash.update(chunk);
          size += chunk.length;
          await writeAll(fh, chunk);
        }
        if (durable) await fh.sync();
      } finally {
        await fh.close();
      }
      return { path, size, sha256: hash.digest('hex') };
    } catch (err) {
      await rm(path, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  async putStream(chunks: AsyncIterable<Uint8Array>): Promise<StagedFile> {
    let written: { path: string; size: number; sha256: string } | undefined;
    try {
      written = await this.#write(chunks, '.eml.tmp', true);
      const ref = written.sha256;
      const dir = join(this.#root, ref.slice(0, 2));
      await this.#dir(dir);
      const path = this.#path(ref);
      await rename(written.path, path);
      this.#dirty.add(dir);
      return { ref, path, size: written.size };
    } catch (err) {
      if (written) await rm(written.path, { force: true }).catch(() => undefined);
      throw toAppError(err, 'ERR_STAGE_IO', 'cannot stage item', { retryable: true });
    }
  }

  async putScratch(chunks: AsyncIterable<Uint8Array>): Promise<ScratchFile> {
    try {
      const { path, size } = await this.#write(chunks, '.bin', false);
      return { path, size };
    } catch (err) {
      throw toAppError(err, 'ERR_STAGE_IO', 'cannot write a scratch file', { retryable: true });
    }
  }

  async removeScratch(file: ScratchFile): Promise<void> {
    if (dirname(file.path) !== join(this.#root, SCRATCH_DIR)) {
      throw new AppError('ERR_STAGE_IO', `not a scratch file: ${JSON.stringify(file.path)}`);
    }
    await rm(file.path, { force: true });
  }

  get(ref: string): Promise<Buffer | StagedFile> {
    return this.#read(ref, STAGED_IN_MEMORY_MAX);
  }

  file(ref: string): Promise<StagedFile> {
    return this.#read(ref, -1) as Promise<StagedFile>;
  }

  async #read(ref: string, inMemoryMax: number): Promise<Buffer | StagedFile> {
    try {
      const path = this.#path(ref);
      const { size } = await stat(path);
      const hash = createHash('sha256');
      let raw: Buffer | undefined;
      if (size <= inMemoryMax) hash.update((raw = await readFile(path)));
      else for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
      if (hash.digest('hex') !== ref) throw new AppError('ERR_STAGE_IO', `staged item ${ref} does not match its hash`);
      return raw ?? { ref, path, size };
    } catch (err) {
      throw toAppError(err, 'ERR_STAGE_IO', `cannot read staged item ${ref}`);
    }
  }

  async flush(): Promise<void> {
    const dirs = this.#dirty;
    this.#dirty = new Set();
    try {
      // The file's fsync does not persist its name; the directory's does (fsync(2), "NOTES").
      await Promise.all([...dirs].map(syncDir));
    } catch (err) {
      for (const dir of dirs) this.#dirty.add(dir);
      throw toAppError(err, 'ERR_STAGE_IO', 'cannot sync the staging directories', { retryable: true });
    }
  }

  async remove(ref: string): Promise<void> {
    await rm(this.#path(ref), { force: true });
  }
}

export function createLocalStager(config: { root: string }): Stager {
  return new LocalStager(config.root);
}
