import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DeliveryItem } from '../../../src/deliver/mailbox-writer.ts';
import type { StagedFile } from '../../../src/stage/stager.ts';

/** An item held in memory. */
export type MemoryItem = DeliveryItem & { content: Buffer };

/** A small CRLF RFC 5322 message with a deterministic Message-ID, as the converter would render it. */
export function makeItem(key: string, date: Date, body = 'Hello from Symphony'): MemoryItem {
  const messageId = `sym.${key}@archiver.example`;
  const raw = Buffer.from(
    [
      'From: "Alice Smith" <alice.smith@bank.example>',
      'To: "Bob" <bob@bank.example>',
      `Subject: Chat ${key}`,
      `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${messageId}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '',
    ].join('\r\n'),
  );
  return { key, messageId, date, content: raw };
}

/** An item in a file, as the stager hands over a large one: writers must stream it, not hold it. */
export type FileItem = DeliveryItem & { content: StagedFile };

/** The same item written to a file in `dir`. */
export async function inFile(item: MemoryItem, dir: string): Promise<FileItem> {
  const ref = createHash('sha256').update(item.content).digest('hex');
  const file = path.join(dir, `${ref}.eml`);
  await writeFile(file, item.content, { mode: 0o600 });
  return { ...item, content: { ref, path: file, size: item.content.length } };
}
