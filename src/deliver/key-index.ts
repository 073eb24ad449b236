import { createHash } from 'node:crypto';

const INITIAL_SLOTS = 1024;
/** Grown at half full: linear probing stays short (about 1.5 probes for a hit, 2.5 for a miss). */
const MAX_LOAD = 0.5;

/**
 * The item keys a writer knows to be in a folder, with a 32-bit value each (an IMAP UID; 0 where there is none),
 * in 16 bytes a slot instead of a string per key: a folder's index lives as long as the writer, and a Map of key
 * strings made memory grow with the archive's whole history (about 200 bytes an item; docs/performance.md).
 *
 * A key is held as 96 bits of its SHA-256. Two keys of one folder share them with a probability of about
 * n² / 2⁹⁷: below 10⁻¹⁵ for ten million items in a folder, far under the odds of an undetected disk error, so a
 * hit is taken as the key itself.
 */
export class KeyIndex {
  #slots = INITIAL_SLOTS;
  /** Per slot: three hash words and the value; a slot whose first word is 0 is empty (hashes are made odd). */
  #words = new Uint32Array(INITIAL_SLOTS * 4);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  has(key: string): boolean {
    return this.#find(hashOf(key)) >= 0;
  }

  /** The value stored with `key`, or undefined when the key is not in the index. */
  get(key: string): number | undefined {
    const at = this.#find(hashOf(key));
    return at < 0 ? undefined : this.#words[at * 4 + 3];
  }

  set(key: string, value = 0): void {
    const h = hashOf(key);
    const at = this.#find(h);
    if (at >= 0) {
      this.#words[at * 4 + 3] = value;
      return;
    }
    if ((this.#size + 1) / this.#slots > MAX_LOAD) this.#grow();
    this.#insert(h, value);
    this.#size += 1;
  }

  clear(): void {
    this.#slots = INITIAL_SLOTS;
    this.#words = new Uint32Array(INITIAL_SLOTS * 4);
    this.#size = 0;
  }

  /** Slot index of the hash, or -1. */
  #find(h: Uint32Array): number {
    const w = this.#words;
    const mask = this.#slots - 1;
    for (let i = h[1]! & mask; ; i = (i + 1) & mask) {
      const first = w[i * 4]!;
      if (first === 0) return -1;
      if (first === h[0] && w[i * 4 + 1] === h[1] && w[i * 4 + 2] === h[2]) return i;
    }
  }

  #insert(h: Uint32Array, value: number): void {
    const w = this.#words;
    const mask = this.#slots - 1;
    let i = h[1]! & mask;
    while (w[i * 4] !== 0) i = (i + 1) & mask;
    w.set(h, i * 4);
    w[i * 4 + 3] = value;
  }

  #grow(): void {
    const old = this.#words;
    this.#slots *= 2;
    this.#words = new Uint32Array(this.#slots * 4);
    for (let i = 0; i < old.length; i += 4) {
      if (old[i] !== 0) this.#insert(old.subarray(i, i + 3), old[i + 3]!);
    }
  }
}

function hashOf(key: string): Uint32Array {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  const h = new Uint32Array([digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8)]);
  h[0] = h[0]! | 1;
  return h;
}
