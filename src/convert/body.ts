/**
 * The two body parts: a short header block (who, when, where — so the item reads on its own even where
 * headers are hidden or rewritten), the rendered message, a shared (wall) message, the attachment list and
 * the pod disclaimer.
 */
import type { Person } from '../core/types.ts';
import type { V4Message, V4User } from '../source/symphony/api-types.ts';
import { parseEntities } from './entities.ts';
import { cleanHeaderText, personName } from './headers.ts';
import { escapeHtml, renderPresentation, sanitize, type RenderedContent } from './presentation.ts';

export interface BodyInput {
  message: V4Message;
  sender: { name: string; address: string };
  conversationName: string;
  streamType: string;
  people: ReadonlyMap<string, Person>;
  /** Attachment names and sizes as they are attached (`missing` = listed by Symphony but not provided). */
  attachments: readonly { name: string; size: number; missing?: boolean }[];
}

export interface Bodies {
  text: string;
  html: string;
  warnings: string[];
}

function isoTime(ts: unknown): string | undefined {
  return typeof ts === 'number' && Number.isFinite(ts) && Math.abs(ts) <= 8.64e15
    ? new Date(ts).toISOString()
    : undefined;
}

function render(markup: unknown, data: unknown, people: ReadonlyMap<string, Person>): RenderedContent {
  const entities = parseEntities(data);
  if (typeof markup !== 'string') return { html: '', text: '', warnings: entities.warnings };
  const rendered = renderPresentation(markup, { entities: entities.byId, people });
  return { ...rendered, warnings: [...entities.warnings, ...rendered.warnings] };
}

function userName(user: V4User | null | undefined): string {
  if (!user || typeof user !== 'object') return 'unknown user';
  const person: Person = { userId: String(user.userId ?? '') };
  if (typeof user.displayName === 'string') person.displayName = user.displayName;
  if (typeof user.firstName === 'string') person.firstName = user.firstName;
  if (typeof user.lastName === 'string') person.lastName = user.lastName;
  if (typeof user.username === 'string') person.username = user.username;
  return personName(person);
}

interface Field {
  label: string;
  value: string;
}

export function buildBodies(input: BodyInput): Bodies {
  const { message } = input;
  const warnings: string[] = [];
  if (message.message === null || message.message === undefined) {
    warnings.push('message has no PresentationML content ("message" is missing); archived with an empty body');
  } else if (typeof message.message !== 'string') {
    warnings.push('message content ("message") is not a string; archived with an empty body');
  }
  if (typeof message.diagnostic === 'string' && message.diagnostic.trim() !== '') {
    warnings.push(
      `Symphony reported a diagnostic for this message: ${cleanHeaderText(message.diagnostic).slice(0, 200)}`,
    );
  }
  const main = render(message.message, message.data, input.people);
  warnings.push(...main.warnings);

  const fields: Field[] = [
    { label: 'From', value: `${input.sender.name} <${input.sender.address}>` },
    { label: 'Sent', value: isoTime(message.timestamp) ?? String(message.timestamp) },
    {
      label: 'Conversation',
      value: `${input.conversationName} (${cleanHeaderText(input.streamType) || 'unknown type'})`,
    },
  ];
  if (message.replacing) fields.push({ label: 'Edit of message', value: cleanHeaderText(message.replacing) });
  if (message.parentMessageId) {
    fields.push({ label: 'Reply to / forward of message', value: cleanHeaderText(message.parentMessageId) });
  }

  const textParts: string[] = [fields.map((f) => `${f.label}: ${f.value}`).join('\n') + '\n----------'];
  const htmlParts: string[] = [
    `<p>${fields.map((f) => `<b>${escapeHtml(f.label)}:</b> ${escapeHtml(f.value)}`).join('<br>')}</p><hr>`,
  ];
  if (main.text) textParts.push(main.text);
  if (main.html) htmlParts.push(`<div>${main.html}</div>`);

  const shared = message.sharedMessage;
  if (shared && typeof shared === 'object') {
    const sharedRendered = render(shared.message, shared.data, input.people);
    warnings.push(...sharedRendered.warnings.map((w) => `shared message: ${w}`));
    const when = isoTime(shared.timestamp);
    const intro = `Shared message from ${userName(shared.user)}${when ? ` at ${when}` : ''}:`;
    const quoted = sharedRendered.text
      .split('\n')
      .map((l) => `> ${l}`)
      .join('\n');
    textParts.push(`${intro}\n${quoted}`);
    htmlParts.push(`<p><b>${escapeHtml(intro)}</b></p><blockquote>${sharedRendered.html}</blockquote>`);
  }

  if (input.attachments.length > 0) {
    const items = input.attachments.map(
      (a) => `${a.name} (${a.size} bytes${a.missing ? ', not included: the content was not provided' : ''})`,
    );
    textParts.push(`Attachments:\n${items.map((i) => `- ${i}`).join('\n')}`);
    htmlParts.push(`<hr><p><b>Attachments:</b></p><ul>${items.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`);
  }

  if (typeof message.disclaimer === 'string' && message.disclaimer.trim() !== '') {
    textParts.push(`Disclaimer: ${message.disclaimer.trim()}`);
    htmlParts.push(`<hr><p>${escapeHtml(message.disclaimer.trim())}</p>`);
  }

  // Lines joined with LF here; nodemailer's `newline: '\r\n'` turns every line end into CRLF (RFC 5322 §2.3).
  const text = textParts.join('\n\n') + '\n';
  const html =
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n' +
    sanitize(htmlParts.join('\n')) +
    '\n</body></html>\n';
  return { text, html, warnings };
}
