/** A staged item kept in its file: read from `path` as a stream rather than held in memory. */
export interface StagedFile {
  /** Content address: hex SHA-256 of the bytes. */
  ref: string;
  /** The file holding the bytes; read it, never write, rename or remove it (the stager does). */
  path: string;
  /** Exact length in bytes. */
  size: number;
}

/** A scratch file: bytes needed only until the items made from them are staged (a downloaded attachment). */
export interface ScratchFile {
  path: string;
  size: number;
}

/** Durable holding area for converted items between conversion and delivery (and for retries). */
export interface Stager {
  readonly kind: 'local';
  /** Stores bytes durably and returns their reference (content-addressed: hex SHA-256). */
  put(raw: Buffer): Promise<string>;
  /**
   * Stores an item as it is produced, hashing it while it is written: the whole item durably under its content
   * address, or (when `chunks` fails) nothing. Memory stays at one chunk whatever the size.
   */
  putStream(chunks: AsyncIterable<Uint8Array>): Promise<StagedFile>;
  /**
   * The item, checked against its hash: in memory up to {@link STAGED_IN_MEMORY_MAX} bytes, else its file (checked by
   * reading it through once).
   */
  get(ref: string): Promise<Buffer | StagedFile>;
  /** The item as its file whatever its size, checked against its hash by reading it through, not into memory. */
  file(ref: string): Promise<StagedFile>;
  /** Removes an item once every copy of it is delivered; removing a missing item is not an error. */
  remove(ref: string): Promise<void>;
  /** Makes every `put` so far durable, directory entries included; called before the ledger refers to them. */
  flush(): Promise<void>;
  /**
   * Writes bytes to a private scratch file, not durable and not content-addressed: nothing refers to it past the
   * batch that made it. When `chunks` fails, nothing is left. What a stopped process left behind is removed before
   * this stager writes its first file.
   */
  putScratch(chunks: AsyncIterable<Uint8Array>): Promise<ScratchFile>;
  /** Removes a scratch file; removing a missing one is not an error. */
  removeScratch(file: ScratchFile): Promise<void>;
}

/** Items up to this size come back from `get` as a Buffer; writers take either form. */
export const STAGED_IN_MEMORY_MAX = 1024 * 1024;
