import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DOMAIN_NAME } from '../../config/schema.ts';
import { createSymphonyMimeConverter } from '../../convert/index.ts';
import { participantsFromMembers } from '../../convert/members.ts';
import { AppError } from '../../core/errors.ts';
import { canonicalId, idToken, userIdOf } from '../../core/ids.ts';
import type { AttachmentContent, Conversation, Person } from '../../core/types.ts';
import type { V4Message } from '../../source/symphony/api-types.ts';

export interface ConvertCommandOptions {
  members?: string;
  attachments?: string;
  out: string;
  messageIdDomain: string;
  json: boolean;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new AppError('ERR_INPUT_INVALID', `cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AppError('ERR_INPUT_INVALID', `${path} is not JSON: ${(err as Error).message}`);
  }
}

function asMessages(doc: unknown, path: string): V4Message[] {
  const list = Array.isArray(doc) ? doc : [doc];
  return list.map((m, i) => {
    const ok = m && typeof m === 'object' && typeof (m as V4Message).messageId === 'string';
    if (!ok)
      throw new AppError(
        'ERR_INPUT_INVALID',
        `${path}${Array.isArray(doc) ? `[${i}]` : ''} is not a V4Message (no messageId)`,
      );
    return m as V4Message;
  });
}

function personOf(m: V4Message): Person | undefined {
  const userId = userIdOf(m.user?.userId);
  if (!userId) return undefined;
  const p: Person = { userId };
  if (m.user.email) p.email = m.user.email;
  if (m.user.displayName) p.displayName = m.user.displayName;
  return p;
}

/** `convert MESSAGE.json`: one .eml per V4Message, named by the message's token. */
export async function convertCommand(messagePath: string, o: ConvertCommandOptions): Promise<number> {
  // Checked like the config's `convert.messageIdDomain`: anything else makes a malformed Message-ID.
  if (!DOMAIN_NAME.test(o.messageIdDomain))
    throw new AppError('ERR_CONFIG_INVALID', `--message-id-domain must be a domain name, not "${o.messageIdDomain}"`);
  const messages = asMessages(await readJson(messagePath, 'message'), messagePath);
  const members = o.members ? participantsFromMembers(await readJson(o.members, 'members')) : [];
  const files = o.attachments ? new Set(await readdir(o.attachments)) : new Set<string>();
  const converter = createSymphonyMimeConverter();
  await mkdir(o.out, { recursive: true });
  const written: { file: string; messageId: string; warnings: string[] }[] = [];
  for (const m of messages) {
    const sender = members.find((p) => p.userId === userIdOf(m.user?.userId)) ?? personOf(m);
    if (!sender) throw new AppError('ERR_INPUT_INVALID', `message ${m.messageId} has no author user id`);
    const participants = members.length ? members : [sender];
    const attachments: AttachmentContent[] = [];
    const missing: string[] = [];
    for (const a of m.attachments ?? []) {
      if (o.attachments && files.has(a.name))
        attachments.push({ id: a.id, name: a.name, content: await readFile(join(o.attachments, a.name)) });
      else missing.push(a.name);
    }
    const conversation: Conversation = {
      id: canonicalId(m.stream?.streamId ?? ''),
      type: m.stream?.streamType ?? 'UNKNOWN',
      ...(m.stream?.roomName ? { name: m.stream.roomName } : {}),
    };
    const item = await converter.convert({
      message: m,
      conversation,
      sender,
      participants,
      attachments,
      options: { messageIdDomain: o.messageIdDomain, syntheticDomain: 'symphony.invalid' },
    });
    const file = resolve(o.out, `${idToken(m.messageId)}.eml`);
    await writeFile(file, item.raw);
    const warnings = [
      ...item.warnings,
      ...missing.map((n) => `attachment "${n}" not provided (use --attachments DIR); left out`),
    ];
    written.push({ file, messageId: item.messageId, warnings });
    if (!o.json) {
      process.stdout.write(`${file}\n`);
      for (const w of warnings) process.stderr.write(`  warning: ${w}\n`);
    }
  }
  if (o.json) process.stdout.write(`${JSON.stringify({ written }, null, 2)}\n`);
  return 0;
}
