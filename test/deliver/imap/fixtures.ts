import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { imapDestinationSchema, type ImapDestinationConfig } from '../../../src/deliver/imap/config.ts';
import type { DeliveryItem } from '../../../src/deliver/mailbox-writer.ts';

import { makeItem, type MemoryItem } from '../maildir/fixtures.ts';

export { makeItem };

/** Writes `secret` to a 0600 file in `dir` and returns its path. */
export async function secretFile(dir: string, name: string, secret: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

/** A validated config for a cleartext loopback server; `overrides` replace top-level fields. */
export function imapConfig(
  server: { host: string; port: number },
  auth: Record<string, unknown>,
  overrides: Record<string, unknown> = {},
): ImapDestinationConfig {
  return imapDestinationSchema.parse({
    kind: 'imap',
    host: server.host,
    port: server.port,
    security: 'none',
    auth,
    ...overrides,
  });
}

export interface SeenMessage {
  uid: number;
  messageId: string;
  internalDate: number;
  flags: string[];
  size: number;
}

export interface FolderView {
  separator: string;
  listed: boolean;
  subscribed: boolean;
  uidValidity: bigint | undefined;
  messages: SeenMessage[];
}

/** Reads `INBOX<sep><folder>` of `user` with a separate client, as a mail client would see it. */
export async function readFolder(
  server: { host: string; port: number },
  login: { user: string; pass: string },
  folder = 'Symphony',
): Promise<FolderView> {
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: false,
    doSTARTTLS: false,
    auth: login,
    logger: false,
    disableAutoIdle: true,
  });
  await client.connect();
  try {
    const list = await client.list();
    const inbox = list.find((box) => box.path.toUpperCase() === 'INBOX');
    const separator = inbox?.delimiter ?? '.';
    const folderPath = `INBOX${separator}${folder}`;
    const entry = list.find((box) => box.path === folderPath);
    const messages: SeenMessage[] = [];
    let uidValidity: bigint | undefined;
    if (entry) {
      const box = await client.mailboxOpen(folderPath, { readOnly: true });
      uidValidity = box.uidValidity;
      if (box.exists > 0) {
        for await (const msg of client.fetch(
          '1:*',
          { uid: true, envelope: true, internalDate: true, flags: true, size: true },
          {},
        )) {
          const date = msg.internalDate;
          messages.push({
            uid: msg.uid,
            messageId: (msg.envelope?.messageId ?? '').replace(/^<|>$/g, ''),
            internalDate: date instanceof Date ? date.getTime() : Date.parse(String(date)),
            flags: [...(msg.flags ?? [])],
            size: msg.size ?? 0,
          });
        }
      }
    }
    return { separator, listed: entry !== undefined, subscribed: entry?.subscribed === true, uidValidity, messages };
  } finally {
    await client.logout();
  }
}

/** Every expected item is in the folder exactly once, and nothing else is. */
export function assertExactlyOnce(view: FolderView, expected: DeliveryItem[], who: string): void {
  const counts = new Map<string, number>();
  for (const m of view.messages) counts.set(m.messageId, (counts.get(m.messageId) ?? 0) + 1);
  for (const item of expected) {
    assert.equal(counts.get(item.messageId) ?? 0, 1, `${who}: ${item.messageId} present exactly once`);
  }
  assert.equal(view.messages.length, expected.length, `${who}: no other messages in the folder`);
}

/** `count` distinct items with keys `<prefix>m<i>`, one minute apart from 2024-05-17 09:30 UTC. */
export function itemsFor(prefix: string, count: number, start = Date.UTC(2024, 4, 17, 9, 30, 0)): MemoryItem[] {
  return Array.from({ length: count }, (_, i) => makeItem(`${prefix}m${i}`, new Date(start + i * 61_000)));
}
