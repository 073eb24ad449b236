import { createCipheriv, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalId } from '../../src/core/ids.ts';
import {
  startSymphonyEmulator,
  type EmulatorOptions,
  type SymphonyEmulator,
} from '../../src/emulator/symphony/index.ts';

export const LARGE_FILE_ID = 'internal_71811853189121/TGFyZ2UgZmlsZQ+/==';
export const PREVIEW_FILE_ID = 'internal_71811853189121/UHJldmlldw+/==';
export const LARGE_FILE_NAME = 'quarterly-data.bin';

/** How the large attachment is served: as declared, with fewer bytes than declared, or with a stray character. */
export type LargeAttachmentMode = 'ok' | 'short' | 'corrupt';

export interface LargeAttachmentPod {
  /** Pod, agent, login and relay, as the emulator's URL is. */
  url: string;
  emulator: SymphonyEmulator;
  /** The message the attachment was added to (canonical id) and its stream. */
  messageId: string;
  size: number;
  /** SHA-256 of the attachment's bytes. */
  sha256: string;
  mode: LargeAttachmentMode;
  /** Downloads of the large attachment started, and requests for its preview (there must be none). */
  downloads: number;
  previewRequests: number;
  close(): Promise<void>;
}

/** The attachment's bytes, `size` of them, a block at a time: AES-CTR over zeros, so random-looking and repeatable. */
export function* largeAttachmentBytes(size: number): Generator<Buffer> {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const block = 3 * 64 * 1024;
  const zeros = Buffer.alloc(block);
  for (let at = 0; at < size; at += block) yield cipher.update(zeros.subarray(0, Math.min(block, size - at)));
}

function sha256Of(size: number): string {
  const hash = createHash('sha256');
  for (const block of largeAttachmentBytes(size)) hash.update(block);
  return hash.digest('hex');
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function serveLarge(res: ServerResponse, pod: LargeAttachmentPod): Promise<void> {
  pod.downloads += 1;
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  // Blocks are multiples of 3 bytes, so their base64 texts join into the base64 of the whole file.
  const served = pod.mode === 'short' ? pod.size - 1 : pod.size;
  let first = true;
  for (const block of largeAttachmentBytes(served)) {
    let text = block.toString('base64');
    if (pod.mode === 'corrupt' && first) text = `${text.slice(0, 1000)}!${text.slice(1000)}`;
    first = false;
    if (!res.write(text)) await new Promise((resolve) => res.once('drain', resolve));
  }
  res.end();
}

/**
 * The Symphony emulator behind a proxy that adds one attachment of `size` bytes, with a preview image, to one
 * message the emulator files into at least one mailbox, and serves its download itself as a base64 text body
 * generated while it is sent (the emulator builds each body in memory). Everything else is the emulator's answer.
 */
export async function startLargeAttachmentPod(
  options: Omit<EmulatorOptions, 'botPublicKeyPem'> & { botPublicKeyPem: string; size: number },
): Promise<LargeAttachmentPod> {
  const { size, ...emulatorOptions } = options;
  const emulator = await startSymphonyEmulator(emulatorOptions);
  // The message filed into the fewest mailboxes (one at least): each copy of the item is as large as the attachment.
  const copies = new Map<string, number>();
  for (const ids of Object.values(emulator.groundTruth().mailboxes)) {
    for (const id of ids) copies.set(id, (copies.get(id) ?? 0) + 1);
  }
  const messageId = [...copies].sort(([a, m], [b, n]) => m - n || a.localeCompare(b))[0]?.[0];
  if (messageId === undefined) throw new Error('the emulated pod files no message');
  const pod: LargeAttachmentPod = {
    url: '',
    emulator,
    messageId: canonicalId(messageId),
    size,
    sha256: sha256Of(size),
    mode: 'ok',
    downloads: 0,
    previewRequests: 0,
    close: async () => undefined,
  };
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname.endsWith('/attachment')) {
        const fileId = url.searchParams.get('fileId');
        if (fileId === PREVIEW_FILE_ID) pod.previewRequests += 1;
        if (fileId === LARGE_FILE_ID) return serveLarge(res, pod);
      }
      const upstream = await fetch(emulator.url + (req.url ?? '/'), {
        method: req.method ?? 'GET',
        headers: Object.fromEntries(
          Object.entries(req.headers).filter(
            (e): e is [string, string] => typeof e[1] === 'string' && !['host', 'content-length'].includes(e[0]),
          ),
        ),
        ...(req.method === 'POST' ? { body: await body(req) } : {}),
      });
      let text = await upstream.text();
      if (/^\/agent\/v4\/stream\/[^/]+\/message$/.test(url.pathname) && upstream.status === 200) {
        const page = JSON.parse(text) as { messageId: string; attachments?: unknown[] | null }[];
        for (const m of page) {
          if (canonicalId(m.messageId) !== pod.messageId) continue;
          m.attachments = [
            ...(m.attachments ?? []),
            { id: LARGE_FILE_ID, name: LARGE_FILE_NAME, size, images: [{ id: PREVIEW_FILE_ID, dimension: '600' }] },
          ];
        }
        text = JSON.stringify(page);
      }
      const headers: Record<string, string> = {};
      upstream.headers.forEach((value, key) => {
        if (key !== 'content-length' && key !== 'content-encoding' && key !== 'transfer-encoding') headers[key] = value;
      });
      res.writeHead(upstream.status, headers);
      res.end(text);
    })().catch((err: unknown) => {
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pod.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  pod.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await emulator.close();
  };
  return pod;
}
