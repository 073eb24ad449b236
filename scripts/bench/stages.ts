import { readFile } from 'node:fs/promises';
import { createSymphonyMimeConverter, type ConvertInput, type ConvertOptions } from '../../src/convert/index.ts';
import { userIdOf } from '../../src/core/ids.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { MembershipTimeline } from '../../src/core/membership.ts';
import { START_CURSOR, type AttachmentContent, type Person } from '../../src/core/types.ts';
import type { V4Message } from '../../src/source/symphony/api-types.ts';
import { createSymphonySource } from '../../src/source/symphony/index.ts';
import type { StagesResult } from './types.ts';

/** What `runConnector` derives for a pod on 127.0.0.1 and the schema's default, so items match the real run. */
const CONVERT_OPTIONS: ConvertOptions = {
  messageIdDomain: 'symphony.127.0.0.1',
  syntheticDomain: 'symphony.invalid',
};

/** Conversions before the clock starts, so the figure is the steady state and not V8's tiering. */
const WARM_UP = 500;

async function collect(bytes: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of bytes) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function personOf(message: V4Message): Person | undefined {
  const userId = userIdOf(message.user?.userId);
  if (!userId) return undefined;
  const p: Person = { userId };
  if (message.user.email) p.email = message.user.email;
  if (message.user.displayName) p.displayName = message.user.displayName;
  return p;
}

/**
 * Reads the whole pod through the product's source as a cycle does (list, members, message pages, directory
 * look-ups for former members, attachments), without converting, then converts every message on this one thread.
 */
export async function measureStages(task: {
  podUrl: string;
  username: string;
  privateKeyPath: string;
}): Promise<StagesResult> {
  const source = createSymphonySource(
    {
      podUrl: task.podUrl,
      agentUrl: task.podUrl,
      keyManagerUrl: task.podUrl,
      username: task.username,
      privateKeyPem: await readFile(task.privateKeyPath, 'utf8'),
    },
    { logger: silentLogger() },
  );
  const inputs: ConvertInput[] = [];
  let streams = 0;
  let attachments = 0;
  let attachmentBytes = 0;
  const started = performance.now();
  try {
    await source.check();
    for await (const conversation of source.conversations()) {
      streams += 1;
      const members = new MembershipTimeline(await source.members(conversation));
      for await (const page of source.messages(conversation.id, START_CURSOR)) {
        const missing = new Set<string>();
        for (const m of page.messages) {
          const id = userIdOf(m.raw.user?.userId);
          if (id && !members.has(id)) missing.add(id);
        }
        const senders = missing.size ? await source.users([...missing]) : new Map<string, Person>();
        for (const m of page.messages) {
          const files: AttachmentContent[] = [];
          for (const a of m.raw.attachments ?? []) {
            const content = await source.attachment(m.streamId, m.id, { id: a.id, size: a.size }, collect);
            attachments += 1;
            attachmentBytes += content.length;
            files.push({ id: a.id, name: a.name, content });
          }
          const id = userIdOf(m.raw.user?.userId);
          const sender = (id && (members.person(id) ?? senders.get(id))) || personOf(m.raw);
          if (!sender) continue;
          const participants = members.at(m.timestamp);
          if (!participants.some((p) => p.userId === sender.userId)) participants.push(sender);
          inputs.push({
            message: m.raw,
            conversation,
            sender,
            participants,
            attachments: files,
            options: CONVERT_OPTIONS,
          });
        }
      }
    }
  } finally {
    await source.close();
  }
  const fetchMs = performance.now() - started;
  const requests = source.stats().requests;

  const converter = createSymphonyMimeConverter();
  const convertOne = async (input: ConvertInput): Promise<number> => {
    try {
      return (await converter.convert(input)).raw.length;
    } catch {
      return -1;
    }
  };
  for (let i = 0; i < Math.min(WARM_UP, inputs.length); i++) await convertOne(inputs[i]!);
  let bytes = 0;
  let failed = 0;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (const input of inputs) {
    const n = await convertOne(input);
    if (n < 0) failed += 1;
    else bytes += n;
  }
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  return {
    kind: 'stages',
    fetch: { ms: fetchMs, streams, messages: inputs.length, attachments, attachmentBytes, requests },
    convert: { messages: inputs.length, failed, bytes, wallMs, cpuMs: (used.user + used.system) / 1000 },
  };
}
