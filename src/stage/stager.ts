/** Durable holding area for converted items between conversion and delivery (and for retries). */
export interface Stager {
  readonly kind: 'local';
  /** Stores bytes durably and returns their reference (content-addressed: hex SHA-256). */
  put(raw: Buffer): Promise<string>;
  get(ref: string): Promise<Buffer>;
  /** Removes an item once every copy of it is delivered; removing a missing item is not an error. */
  remove(ref: string): Promise<void>;
  /** Makes every `put` so far durable, directory entries included; called before the ledger refers to them. */
  flush(): Promise<void>;
}
