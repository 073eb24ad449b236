import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import MailComposer from 'nodemailer/lib/mail-composer';
import { createLogger, type Logger } from '../../../src/core/logger.ts';
import {
  createGraphWriter,
  type GraphDestinationInput,
  type GraphMailboxWriter,
} from '../../../src/deliver/graph/index.ts';
import type { MemoryItem } from '../maildir/fixtures.ts';
import {
  DEFAULT_CLIENT_ID,
  DEFAULT_CLIENT_SECRET,
  startGraphEmulator,
  type GraphEmulator,
  type GraphEmulatorOptions,
} from '../../../src/emulator/graph/index.ts';

export const MiB = 1024 * 1024;

export interface Harness {
  emu: GraphEmulator;
  dir: string;
  logs: string[];
  logger: Logger;
  writer(overrides?: Partial<GraphDestinationInput>): GraphMailboxWriter;
  close(): Promise<void>;
}

/** An emulator plus writers pointed at it, the client secret in a 0600 file, and every log line captured. */
export async function harness(options: GraphEmulatorOptions = {}, secret = DEFAULT_CLIENT_SECRET): Promise<Harness> {
  const emu = await startGraphEmulator(options);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'graph-writer-'));
  await writeFile(path.join(dir, 'secret'), secret + '\n', { mode: 0o600 });
  if (emu.caPem) await writeFile(path.join(dir, 'ca.pem'), emu.caPem);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const writers: GraphMailboxWriter[] = [];
  return {
    emu,
    dir,
    logs,
    logger,
    writer(overrides = {}) {
      const w = createGraphWriter(
        {
          kind: 'graph',
          tenantId: emu.tenantId,
          clientId: DEFAULT_CLIENT_ID,
          auth: { method: 'secret', secretFile: path.join(dir, 'secret') },
          authorityHost: emu.authorityHost,
          graphUrl: emu.graphUrl,
          ...(emu.caPem ? { caFile: path.join(dir, 'ca.pem') } : {}),
          ...overrides,
        },
        { logger },
      );
      writers.push(w);
      return w;
    },
    async close() {
      await Promise.all(writers.map((w) => w.close()));
      await emu.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A small CRLF item with a deterministic Message-ID, as the converter renders it. */
export function smallItem(
  key: string,
  date = new Date(Date.UTC(2024, 4, 17, 9, 30)),
  body = 'Hello from Symphony',
): MemoryItem {
  const messageId = `sym.${key}@archiver.example`;
  const raw = Buffer.from(
    [
      'From: "Alice Smith" <alice.smith@bank.example>',
      'To: "Bob" <bob@bank.example>',
      `Subject: Chat ${key}`,
      `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${messageId}>`,
      'X-Symphony-Stream-Id: stream-1',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '',
    ].join('\r\n'),
  );
  return { key, messageId, date, content: raw };
}

export interface FileSpec {
  name: string;
  content: Buffer;
  contentType?: string;
}

/** A multipart item with attachments, rendered by nodemailer's MailComposer the way the converter does. */
export async function itemWithFiles(
  key: string,
  files: FileSpec[],
  date = new Date(Date.UTC(2024, 4, 17, 9, 30)),
): Promise<MemoryItem> {
  const messageId = `sym.${key}@archiver.example`;
  const raw = await new MailComposer({
    from: '"Zoë Ångström" <zoe@bank.example>',
    to: ['"Bob, Jr." <bob@bank.example>'],
    cc: 'carol@bank.example',
    subject: `Files ${key} – Grüße`,
    messageId: `<${messageId}>`,
    date,
    text: 'see the files',
    html: '<p>see the <b>files</b></p>',
    headers: { 'X-Symphony-Stream-Id': 'stream-9', 'In-Reply-To': '<sym.parent@archiver.example>' },
    baseBoundary: `b-${key}`,
    newline: '\r\n',
    attachments: files.map((f) => ({
      filename: f.name,
      content: f.content,
      contentType: f.contentType ?? 'application/octet-stream',
    })),
  } as ConstructorParameters<typeof MailComposer>[0])
    .compile()
    .build();
  return { key, messageId, date, content: raw };
}

/** Bytes that do not compress or repeat, so a misplaced range shows up in the hash. */
export function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}
