/**
 * The Symphony → RFC 5322 converter: one V4Message, its conversation and participants → one email
 * (symphony-api.md §4, §6; destinations.md §3; reliability.md §3). Pure and deterministic: the same input
 * gives the same bytes, so a retried delivery has the same size and SHA-256.
 */
import { createHash } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import { canonicalId } from '../core/ids.ts';
import type { Person } from '../core/types.ts';
import { buildBodies } from './body.ts';
import type { ConvertInput, ConvertedItem, Converter } from './converter.ts';
import {
  addressOf,
  cleanHeaderText,
  messageIdFor,
  subjectFor,
  uniqueSortedPeople,
  type MailAddress,
} from './headers.ts';
import { composeMime, safeFilename, type MimeAttachment } from './mime.ts';

export type { ConvertInput, ConvertOptions, ConvertedItem, Converter } from './converter.ts';
export { participantsFromMembers } from './members.ts';

/** Name of the attachment that carries the V4Message verbatim, so nothing of the source is lost (row 3). */
export const SOURCE_ATTACHMENT_NAME = 'symphony-message.json';

/** Symphony ids are base64url; anything else in a header value is cleaned and capped. */
function headerId(id: string): string {
  return cleanHeaderText(canonicalId(id)).slice(0, 200);
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== '';
}

export async function convertMessage(input: ConvertInput): Promise<ConvertedItem> {
  const { message, conversation, sender, options } = input;
  if (!message || typeof message !== 'object') throw new AppError('ERR_CONVERT_FAILED', 'message is not an object');
  if (!nonEmptyString(message.messageId)) throw new AppError('ERR_CONVERT_FAILED', 'message has no messageId');
  const ts = message.timestamp;
  if (typeof ts !== 'number' || !Number.isFinite(ts) || Math.abs(ts) > 8.64e15) {
    throw new AppError('ERR_CONVERT_FAILED', `message ${headerId(message.messageId)} has no usable timestamp`);
  }
  if (!sender || !nonEmptyString(sender.userId)) throw new AppError('ERR_CONVERT_FAILED', 'sender has no userId');
  if (!nonEmptyString(options?.messageIdDomain) || !nonEmptyString(options.syntheticDomain)) {
    throw new AppError('ERR_CONVERT_FAILED', 'messageIdDomain and syntheticDomain are required');
  }

  const warnings: string[] = [];
  const date = new Date(ts);
  const messageId = messageIdFor(message.messageId, options.messageIdDomain);

  const addressWarning = (p: Person, a: MailAddress & { invalid?: string }): MailAddress => {
    if (a.invalid !== undefined) {
      warnings.push(`email of user ${cleanHeaderText(p.userId)} is not a plain address; using ${a.address}`);
    }
    return { name: a.name, address: a.address };
  };
  const from = addressWarning(sender, addressOf(sender, options.syntheticDomain));
  const participants = uniqueSortedPeople(input.participants ?? []);
  const others = participants.filter((p) => p.userId !== sender.userId);
  // A wall post or a conversation whose only member is the author is still filed: To = the author.
  const to = others.length > 0 ? others.map((p) => addressWarning(p, addressOf(p, options.syntheticDomain))) : [from];

  const streamType = conversation.type ?? message.stream?.streamType ?? '';
  const { subject, conversationName, warning } = subjectFor(
    { ...conversation, type: streamType, name: conversation.name ?? message.stream?.roomName ?? undefined },
    sender,
    participants,
  );
  if (warning) warnings.push(warning);

  const headers: [string, string][] = [
    ['X-Symphony-Message-Id', headerId(message.messageId)],
    ['X-Symphony-Stream-Id', headerId(conversation.id)],
    ['X-Symphony-Stream-Type', cleanHeaderText(streamType).slice(0, 64) || 'unknown'],
    ['X-Symphony-Sender-Id', cleanHeaderText(sender.userId)],
  ];
  const references: string[] = [];
  let inReplyTo: string | undefined;
  if (nonEmptyString(message.parentMessageId)) {
    headers.push(['X-Symphony-Parent-Message-Id', headerId(message.parentMessageId)]);
    inReplyTo = messageIdFor(message.parentMessageId, options.messageIdDomain);
    references.push(inReplyTo);
  }
  if (nonEmptyString(message.replacing)) {
    headers.push(['X-Symphony-Replacing', headerId(message.replacing)]);
    const initial = nonEmptyString(message.initialMessageId) ? message.initialMessageId : undefined;
    if (initial) headers.push(['X-Symphony-Initial-Message-Id', headerId(initial)]);
    // An edit threads under the version it replaces (symphony-api.md §4.1 archiver policy); References
    // lists the chain from the first version (RFC 5322 §3.6.4: oldest first, parent last).
    const replaced = messageIdFor(message.replacing, options.messageIdDomain);
    if (initial) {
      const first = messageIdFor(initial, options.messageIdDomain);
      if (first !== replaced && !references.includes(first)) references.push(first);
    }
    if (!references.includes(replaced)) references.push(replaced);
    inReplyTo = replaced;
  }

  const people = new Map<string, Person>();
  for (const p of [...participants, sender]) if (!people.has(p.userId)) people.set(p.userId, p);

  const provided = input.attachments ?? [];
  const attachments: MimeAttachment[] = provided.map((a, i) => {
    const att: MimeAttachment = { filename: safeFilename(a.name, `attachment-${i + 1}`), content: a.content };
    if (nonEmptyString(a.id)) att.symphonyId = a.id;
    return att;
  });
  const listed: { name: string; size: number; missing?: boolean }[] = attachments.map((a) => ({
    name: a.filename,
    size: a.content.length,
  }));
  const providedIds = new Set(provided.map((a) => a.id));
  const declared = Array.isArray(message.attachments) ? message.attachments : [];
  for (const [i, info] of declared.entries()) {
    if (!info || typeof info !== 'object' || providedIds.has(info.id)) continue;
    const name = safeFilename(info.name, `attachment-${i + 1}`);
    warnings.push(`attachment "${name}" was not provided; listed in the body and ${SOURCE_ATTACHMENT_NAME} only`);
    listed.push({ name, size: typeof info.size === 'number' ? info.size : 0, missing: true });
  }

  const bodies = buildBodies({
    message,
    sender: from,
    conversationName,
    streamType,
    people,
    attachments: listed,
  });
  warnings.push(...bodies.warnings);

  attachments.push({
    filename: SOURCE_ATTACHMENT_NAME,
    content: Buffer.from(JSON.stringify(message, null, 2) + '\n', 'utf8'),
    contentType: 'application/json; charset=utf-8',
  });

  let raw: Buffer;
  try {
    raw = await composeMime({
      messageId,
      date,
      from,
      to,
      subject,
      headers,
      ...(inReplyTo ? { inReplyTo, references } : {}),
      text: bodies.text,
      html: bodies.html,
      attachments,
    });
  } catch (err) {
    throw new AppError('ERR_CONVERT_FAILED', `MIME composition failed for ${headerId(message.messageId)}`, {
      cause: err,
    });
  }
  return { raw, messageId, date, sha256: createHash('sha256').update(raw).digest('hex'), warnings };
}

/** The converter the pipeline uses (nodemailer `createTransport` naming). */
export function createSymphonyMimeConverter(): Converter {
  return { convert: convertMessage };
}
