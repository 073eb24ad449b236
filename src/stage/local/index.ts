import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../../core/fs.ts';
import { AppError, toAppError } from '../../core/errors.ts';
import type { Stager } from '../stager.ts';

const REF = /^[0-9a-f]{64}$/;

/**
 * Staging on the local file system. Paths are content-addressed (`ab/abcdef….eml`), never derived from
 * anything in the message (reliability.md §3 row 6), and each item is written to a temporary name,
 * fsynced and renamed so a crash leaves either the whole item or nothing.
 */
export class LocalStager implements Stager {
  readonly kind = 'local';
  readonly #root: string;
  readonly #dirs = new Set<string>();
  /** Directories with entries renamed in since the last flush. */
  #dirty = new Set<string>();

  constructor(root: string) {
    this.#root = root;
  }

  #path(ref: string): string {
    if (!REF.test(ref)) throw new AppError('ERR_STAGE_IO', `not a staging reference: ${JSON.stringify(ref)}`);
    return join(this.#root, ref.slice(0, 2), `${ref}.eml`);
  }

  async put(raw: Buffer): Promise<string> {
    const ref = createHash('sha256').update(raw).digest('hex');
    const path = this.#path(ref);
    const dir = join(this.#root, ref.slice(0, 2));
    const tmp = join(dir, `.${ref}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      if (!this.#dirs.has(dir)) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        this.#dirs.add(dir);
      }
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

  async get(ref: string): Promise<Buffer> {
    try {
      const raw = await readFile(this.#path(ref));
      if (createHash('sha256').update(raw).digest('hex') !== ref) {
        throw new AppError('ERR_STAGE_IO', `staged item ${ref} does not match its hash`);
      }
      return raw;
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
