/**
 * The two body parts: a short header block (who, when, where, and what kind of item — so it reads on its own
 * even where headers are hidden or rewritten), the rendered message, a shared (wall) message, entities the
 * text did not show, the attachment list and the pod disclaimer. Suppression notices and Elements form
 * responses have their own content in place of the rendered message.
 */
import type { Person } from '../core/types.ts';
import type { V4Message, V4User } from '../source/symphony/api-types.ts';
import type { ElementsAction } from './converter.ts';
import { actionText, cashtagText, parseEntities, type EntityInfo } from './entities.ts';
import { cleanHeaderText, isSimpleAddress, personName } from './headers.ts';
import {
  escapeHtml,
  renderPresentation,
  safeHref,
  sanitize,
  textContent,
  type InlineImage,
  type RenderContext,
  type RenderedContent,
} from './presentation.ts';
import { TextOut, layoutTable } from './text.ts';
import { parseDocument } from 'htmlparser2';

export interface BodyField {
  label: string;
  value: string;
}

/** What the item is, as the body and the Subject label show it. */
export type ItemKind = 'message' | 'edit' | 'suppression' | 'form-response';

export interface BodyInput {
  kind: ItemKind;
  message: V4Message;
  /** The header block, in order (From, Sent, Conversation, …). */
  fields: readonly BodyField[];
  people: ReadonlyMap<string, Person>;
  /** Attachment names and sizes as they are attached (`missing` = listed by Symphony but not provided). */
  attachments: readonly { name: string; size: number; missing?: boolean }[];
  /** File names already used, so `data:` images get distinct names. */
  takenNames: Set<string>;
  /** Content-IDs for `data:` images, so the HTML shows them inline (presentation.ts `RenderContext`). */
  contentIdFor?: (filename: string) => string;
  /** For a suppression notice: the sentence that says what was removed, by whom and when. */
  notice?: string;
  elementsAction?: ElementsAction;
}

export interface Bodies {
  text: string;
  html: string;
  images: InlineImage[];
  warnings: string[];
}

/** The document around every HTML body; a transcript (transcript.ts) nests item bodies in its own. */
export const HTML_OPEN = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n';
export const HTML_CLOSE = '\n</body></html>\n';

export function isoTime(ts: unknown): string | undefined {
  return typeof ts === 'number' && Number.isFinite(ts) && Math.abs(ts) <= 8.64e15
    ? new Date(ts).toISOString()
    : undefined;
}

/** Symphony allows 80 entities a message (symphony-api.md §6); listing more would only repeat noise. */
const MAX_LISTED_ENTITIES = 100;

function render(
  markup: unknown,
  data: unknown,
  ctx: Omit<RenderContext, 'entities'>,
): RenderedContent & { entities: ReadonlyMap<string, EntityInfo> } {
  const entities = parseEntities(data);
  if (typeof markup !== 'string' || markup === '') {
    return {
      html: '',
      text: '',
      warnings: entities.warnings,
      images: [],
      usedEntities: new Set(),
      entities: entities.byId,
    };
  }
  const rendered = renderPresentation(markup, { ...ctx, entities: entities.byId });
  return { ...rendered, warnings: [...entities.warnings, ...rendered.warnings], entities: entities.byId };
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

/** Entities in `data` that no span referred to (e.g. a security tagged on the message as a whole). */
function unreferencedEntities(
  entities: ReadonlyMap<string, EntityInfo>,
  used: ReadonlySet<string>,
  people: ReadonlyMap<string, Person>,
): string[] {
  const out: string[] = [];
  for (const [id, info] of entities) {
    if (used.has(id)) continue;
    if (out.length >= MAX_LISTED_ENTITIES) break;
    switch (info.kind) {
      case 'mention': {
        const p = people.get(info.userId);
        const email = typeof p?.email === 'string' && isSimpleAddress(p.email) ? ` <${p.email}>` : '';
        out.push(`@${p ? personName(p) : `user ${info.userId}`}${email}`);
        break;
      }
      case 'hashtag':
        out.push(`#${info.value}`);
        break;
      case 'cashtag':
        out.push(cashtagText('', info));
        break;
      case 'emoji':
        out.push(info.unicode ?? `:${info.shortcode ?? ''}:`);
        break;
      case 'media': {
        const href = safeHref(info.url);
        out.push(
          `${info.format ?? ''} ${info.media}${info.videoId ? ` ${info.videoId}` : ''}${href ? ` ${href}` : ''}`.trim(),
        );
        break;
      }
      case 'article': {
        const href = safeHref(info.href);
        out.push(`article${info.title ? ` "${info.title}"` : ''}${href ? ` ${href}` : ''}`);
        break;
      }
      case 'action':
        out.push(actionText(info));
        break;
      case 'datetime':
        out.push(info.value);
        break;
      default:
        out.push(`entity of type ${info.type}`);
    }
  }
  return out;
}

/**
 * A value of `formValues` as text. Person selectors send user ids, shown with the person's name; a room selector
 * sends `{userIds: [...], streamIds: [...]}` (DevDocs room-selector.md), shown as `userIds: …; streamIds: …`.
 */
function formValueText(value: unknown, people: ReadonlyMap<string, Person>, depth = 0): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'bigint' || (typeof value === 'string' && depth > 0)) {
    const p = people.get(String(value));
    return p ? `${personName(p)} (${String(value)})` : String(value);
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  // Deeper structures are no form value Symphony sends: shown as JSON, which cannot overflow the stack here.
  if (depth < 3 && Array.isArray(value)) return value.map((v) => formValueText(v, people, depth + 1)).join(', ');
  if (depth < 3 && typeof value === 'object') {
    return Object.entries(value)
      .map(([k, v]) => `${k}: ${formValueText(v, people, depth + 1)}`)
      .join('; ');
  }
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return String(value);
  }
}

/** Field labels of the form, by name, read from the form's own message when the caller has it. */
function formLabels(formMessage: V4Message | undefined): Map<string, string> {
  const labels = new Map<string, string>();
  const markup = formMessage?.message;
  if (typeof markup !== 'string') return labels;
  const doc = parseDocument(markup, { decodeEntities: true, lowerCaseTags: true });
  const byId = new Map<string, string>();
  const named: { name: string; id?: string; text: string }[] = [];
  const stack = [...doc.children];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (!('attribs' in n)) continue;
    const a = n.attribs;
    if (n.name === 'label' && a['for']) byId.set(a['for'], textContent(n).replace(/\s+/g, ' ').trim());
    const name = a['name'] ?? a['data-name'];
    if (name) {
      const text = n.name === 'button' ? textContent(n).replace(/\s+/g, ' ').trim() : (a['label'] ?? '');
      named.push({ name, ...(a['id'] ? { id: a['id'] } : {}), text });
    }
    stack.push(...n.children);
  }
  for (const f of named) {
    const label = (f.id && byId.get(f.id)) || f.text;
    if (label && !labels.has(f.name)) labels.set(f.name, label);
  }
  return labels;
}

function formResponse(action: ElementsAction, people: ReadonlyMap<string, Person>): { text: string; html: string } {
  const labels = formLabels(action.formMessage);
  const values = action.formValues && typeof action.formValues === 'object' ? action.formValues : {};
  const rows: [string, string, string][] = [];
  for (const key of Object.keys(values)) {
    const value = formValueText((values as Record<string, unknown>)[key], people);
    // `action` names the button that submitted the form (symphony-api.md §3 SYMPHONYELEMENTSACTION).
    const label =
      key === 'action' ? `Button pressed${labels.get(value) ? `: ${labels.get(value)}` : ''}` : (labels.get(key) ?? '');
    rows.push([key, label, value]);
  }
  const intro = `Response to Symphony Elements form "${cleanHeaderText(action.formId)}" (form message ${cleanHeaderText(action.formMessageId)}):`;
  const head = ['Name', 'Label', 'Value'];
  const text = new TextOut();
  text.inline(intro);
  text.para();
  text.lines(
    layoutTable([
      { header: true, cells: head.map((t) => ({ text: t, colspan: 1, rowspan: 1 })) },
      ...rows.map((r) => ({
        header: false,
        cells: r.map((t) => ({ text: t.replace(/\s+/g, ' '), colspan: 1, rowspan: 1 })),
      })),
    ]),
  );
  if (rows.length === 0) text.lines(['(no values)']);
  const html =
    `<p><b>${escapeHtml(intro)}</b></p><table border="1"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((v) => `<td>${escapeHtml(v)}</td>`).join('')}</tr>`).join('') +
    '</tbody></table>';
  return { text: text.toString(), html };
}

export function buildBodies(input: BodyInput): Bodies {
  const { message } = input;
  const warnings: string[] = [];
  const images: InlineImage[] = [];
  const ctx: Omit<RenderContext, 'entities'> = {
    people: input.people,
    takenNames: input.takenNames,
    ...(input.contentIdFor ? { contentIdFor: input.contentIdFor } : {}),
  };
  const textParts: string[] = [];
  const htmlParts: string[] = [];
  // A transcript entry (transcript.ts) comes without a header block.
  if (input.fields.length > 0) {
    textParts.push(input.fields.map((f) => `${f.label}: ${f.value}`).join('\n') + '\n' + '-'.repeat(10));
    htmlParts.push(
      `<p>${input.fields.map((f) => `<b>${escapeHtml(f.label)}:</b> ${escapeHtml(f.value)}`).join('<br>')}</p><hr>`,
    );
  }

  if (input.kind === 'suppression') {
    textParts.push(input.notice ?? 'A message was removed.');
    htmlParts.push(`<p>${escapeHtml(input.notice ?? 'A message was removed.')}</p>`);
  } else if (input.kind === 'form-response' && input.elementsAction) {
    const r = formResponse(input.elementsAction, input.people);
    textParts.push(r.text);
    htmlParts.push(r.html);
  } else {
    if (message.message === null || message.message === undefined) {
      warnings.push('message has no PresentationML content ("message" is missing); archived with an empty body');
    } else if (typeof message.message !== 'string') {
      warnings.push('message content ("message") is not a string; archived with an empty body');
    }
    const main = render(message.message, message.data, ctx);
    warnings.push(...main.warnings);
    images.push(...main.images);
    if (main.text) textParts.push(main.text);
    if (main.html) htmlParts.push(`<div>${main.html}</div>`);
    if (!main.text && !main.html && typeof message.message === 'string') textParts.push('(empty message)');
    const extra = unreferencedEntities(main.entities, main.usedEntities, input.people);
    if (extra.length > 0) {
      textParts.push(`Tagged in the message data:\n${extra.map((e) => `- ${e}`).join('\n')}`);
      htmlParts.push(
        `<p><b>Tagged in the message data:</b></p><ul>${extra.map((e) => `<li>${escapeHtml(e)}</li>`).join('')}</ul>`,
      );
    }
  }

  const shared = message.sharedMessage;
  if (shared && typeof shared === 'object') {
    const sharedRendered = render(shared.message, shared.data, ctx);
    warnings.push(...sharedRendered.warnings.map((w) => `shared message: ${w}`));
    images.push(...sharedRendered.images);
    const when = isoTime(shared.timestamp);
    const id = typeof shared.messageId === 'string' ? ` (message ${cleanHeaderText(shared.messageId)})` : '';
    const intro = `Shared message from ${userName(shared.user)}${when ? ` at ${when}` : ''}${id}:`;
    const quoted = (sharedRendered.text || '(empty message)')
      .split('\n')
      .map((l) => (l ? `> ${l}` : '>'))
      .join('\n');
    textParts.push(`${intro}\n${quoted}`);
    htmlParts.push(`<p><b>${escapeHtml(intro)}</b></p><blockquote>${sharedRendered.html}</blockquote>`);
  }

  const listed = [
    ...input.attachments,
    ...images.map((i) => ({ name: i.filename, size: i.content.length, inline: i.contentId !== undefined })),
  ];
  if (listed.length > 0) {
    const items = listed.map(
      (a) =>
        `${a.name} (${a.size} bytes${'missing' in a && a.missing ? ', not included: the content was not provided' : ''}` +
        `${'inline' in a && a.inline ? ', shown inline' : ''})`,
    );
    textParts.push(`Attachments:\n${items.map((i) => `- ${i}`).join('\n')}`);
    htmlParts.push(`<hr><p><b>Attachments:</b></p><ul>${items.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`);
  }

  if (typeof message.disclaimer === 'string' && message.disclaimer.trim() !== '') {
    textParts.push(`Disclaimer: ${message.disclaimer.trim()}`);
    htmlParts.push(`<hr><p>${escapeHtml(message.disclaimer.trim())}</p>`);
  }

  // LF here; the MIME writer turns every line end into CRLF (RFC 5322 §2.3).
  const text = textParts.join('\n\n') + '\n';
  const html = HTML_OPEN + sanitize(htmlParts.join('\n')) + HTML_CLOSE;
  return { text, html, images, warnings };
}
