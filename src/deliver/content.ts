import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import type { DeliveryItem } from './mailbox-writer.ts';

/** Exact length of the item in bytes. */
export function itemSize(item: DeliveryItem): number {
  return Buffer.isBuffer(item.content) ? item.content.length : item.content.size;
}

/** The item's bytes as a stream, straight from memory or read from its staged file in blocks. */
export function itemStream(item: DeliveryItem): AsyncIterable<Buffer> {
  const { content } = item;
  if (!Buffer.isBuffer(content)) return createReadStream(content.path, { highWaterMark: 256 * 1024 });
  return (async function* () {
    yield content;
  })();
}

/** The whole item in memory: only for callers that have checked its size against a limit first. */
export async function itemBytes(item: DeliveryItem): Promise<Buffer> {
  return Buffer.isBuffer(item.content) ? item.content : readFile(item.content.path);
}

/** The first `max` bytes of the item (for a look at its header section). */
export async function itemHead(item: DeliveryItem, max: number): Promise<Buffer> {
  const { content } = item;
  if (Buffer.isBuffer(content)) return content.subarray(0, max);
  const fh = await open(content.path, 'r');
  try {
    const buffer = Buffer.alloc(Math.min(max, content.size));
    const { bytesRead } = await fh.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
