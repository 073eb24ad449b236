/**
 * PresentationML → sanitized HTML and text/plain (symphony-api.md §6). PresentationML is XHTML in theory but
 * not in practice (`&nbsp;`, unclosed tags), so it is parsed with htmlparser2's lenient HTML mode; the
 * result is rebuilt from an allow-list and then passed through sanitize-html as a second, independent guard
 * (reliability.md §3 row 3: the HTML part is viewed in OWA and eDiscovery tools).
 */
import { ElementType, parseDocument } from 'htmlparser2';
import sanitizeHtml from 'sanitize-html';
import type { Person } from '../core/types.ts';
import type { EntityInfo } from './entities.ts';
import { isSimpleAddress, personName } from './headers.ts';

type DomDocument = ReturnType<typeof parseDocument>;
type DomNode = DomDocument['children'][number];
type DomElement = Extract<DomNode, { attribs: Record<string, string> }>;

export interface RenderContext {
  entities: ReadonlyMap<string, EntityInfo>;
  /** Known people by user id, to show a mentioned person's email. */
  people: ReadonlyMap<string, Person>;
}

export interface RenderedContent {
  html: string;
  text: string;
  warnings: string[];
}

/** Tags kept as they are (with only the attributes below). Matches the allow-list in the brief and §6. */
const ALLOWED_TAGS = new Set([
  'p', 'br', 'b', 'strong', 'i', 'em', 'u', 's', 'ul', 'ol', 'li',
  'table', 'thead', 'tbody', 'tfoot', 'tr', 'td', 'th',
  'pre', 'code', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'span', 'div', 'blockquote', 'a',
]); // prettier-ignore

/** Elements whose content is never shown: active content, metadata, and anything that can load remotely. */
const DROPPED_TAGS = new Set([
  'script', 'style', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'template', 'svg', 'math',
  'noscript', 'head', 'title', 'meta', 'link', 'base', 'video', 'source', 'track', 'canvas', 'select', 'textarea',
]); // prettier-ignore

const VOID_TAGS = new Set(['br', 'hr']);

const BLOCK_TAGS = new Set([
  'p', 'div', 'ul', 'ol', 'table', 'thead', 'tbody', 'tfoot', 'tr', 'pre', 'blockquote', 'form',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'body', 'card', 'expandable-card', 'dialog',
]); // prettier-ignore

const SAFE_SCHEMES = ['http:', 'https:', 'mailto:'];

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function isElement(node: DomNode): node is DomElement {
  return node.type === ElementType.Tag || node.type === ElementType.Script || node.type === ElementType.Style;
}

function isTextLike(node: DomNode): node is Extract<DomNode, { data: string }> {
  return node.type === ElementType.Text || node.type === ElementType.CDATA;
}

function textContent(node: DomNode): string {
  if (isTextLike(node)) return node.data;
  if (isElement(node)) {
    if (DROPPED_TAGS.has(node.name)) return '';
    return node.children.map(textContent).join('');
  }
  return '';
}

/** Only absolute http(s)/mailto URLs survive; `javascript:`, `data:`, relative and malformed URLs do not. */
export function safeHref(href: string | undefined): string | undefined {
  if (!href) return undefined;
  // eslint-disable-next-line no-control-regex
  const trimmed = href.replace(/[\u0000-\u0020\u007f-\u009f]/g, '');
  try {
    const url = new URL(trimmed);
    return SAFE_SCHEMES.includes(url.protocol) ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function spanCount(value: string | undefined): string | undefined {
  return value && /^\s*\d{1,3}\s*$/.test(value) ? String(Number(value)) : undefined;
}

/** An entity span's visible text, completed with what EntityJSON adds (the mentioned person's email). */
interface EntityText {
  main: string;
  /** Shown after the main text: a mention's address. */
  suffix?: string;
}

function isEntitySpan(el: DomElement): boolean {
  if (el.name !== 'span') return false;
  if (el.attribs['data-entity-id'] !== undefined) return true;
  const classes = (el.attribs['class'] ?? '').split(/\s+/);
  return classes.some((c) => ['entity', 'mention', 'hashTag', 'cashTag'].includes(c));
}

function entityText(el: DomElement, ctx: RenderContext): EntityText {
  const visible = textContent(el).replace(/\s+/g, ' ').trim();
  const id = el.attribs['data-entity-id'];
  const info = id === undefined ? undefined : ctx.entities.get(id);
  if (!info) return { main: visible };
  switch (info.kind) {
    case 'mention': {
      const person = ctx.people.get(info.userId);
      const main = visible || `@${person ? personName(person) : `user ${info.userId}`}`;
      const email = person?.email?.trim();
      if (email && isSimpleAddress(email)) return { main, suffix: `<${email}>` };
      return { main, suffix: `(Symphony user ${info.userId})` };
    }
    case 'hashtag':
      return { main: visible || `#${info.value}` };
    case 'cashtag':
      return { main: visible || `$${info.value}` };
    case 'emoji':
      return { main: visible || info.unicode };
    default:
      return { main: visible };
  }
}

function audioLabel(el: DomElement): string {
  return /chime/i.test(el.attribs['src'] ?? '') ? '[chime]' : '[audio]';
}

function imageLabel(el: DomElement): string {
  const alt = (el.attribs['alt'] ?? '').replace(/\s+/g, ' ').trim();
  return alt ? `[image: ${alt}]` : '[image]';
}

function renderHtmlNodes(nodes: readonly DomNode[], ctx: RenderContext): string {
  return nodes.map((n) => renderHtmlNode(n, ctx)).join('');
}

function renderHtmlNode(node: DomNode, ctx: RenderContext): string {
  if (isTextLike(node)) return escapeHtml(node.data);
  if (!isElement(node)) return '';
  const name = node.name;
  if (DROPPED_TAGS.has(name)) return '';
  if (name === 'audio') return `<span>${escapeHtml(audioLabel(node))}</span>`;
  if (name === 'img') return `<span>${escapeHtml(imageLabel(node))}</span>`;
  if (isEntitySpan(node)) {
    const { main, suffix } = entityText(node, ctx);
    return `<span>${escapeHtml(suffix ? `${main} ${suffix}` : main)}</span>`;
  }
  if (!ALLOWED_TAGS.has(name)) {
    const inner = renderHtmlNodes(node.children, ctx);
    return BLOCK_TAGS.has(name) ? `<div>${inner}</div>` : inner;
  }
  if (VOID_TAGS.has(name)) return `<${name}>`;
  let attrs = '';
  if (name === 'a') {
    const href = safeHref(node.attribs['href']);
    if (!href) return renderHtmlNodes(node.children, ctx);
    attrs = ` href="${escapeHtml(href)}" rel="noopener noreferrer"`;
  } else if (name === 'td' || name === 'th') {
    for (const attr of ['colspan', 'rowspan']) {
      const v = spanCount(node.attribs[attr]);
      if (v) attrs += ` ${attr}="${v}"`;
    }
  }
  return `<${name}${attrs}>${renderHtmlNodes(node.children, ctx)}</${name}>`;
}

/** The sanitize-html policy: the same allow-list as the builder above, enforced a second time. */
export const SANITIZE_OPTIONS: sanitizeHtml.IOptions = {
  allowedTags: [...ALLOWED_TAGS],
  allowedAttributes: { a: ['href', 'rel'], td: ['colspan', 'rowspan'], th: ['colspan', 'rowspan'] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesAppliedToAttributes: ['href'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'discard',
  nonTextTags: [...DROPPED_TAGS],
  transformTags: { a: sanitizeHtml.simpleTransform('a', { rel: 'noopener noreferrer' }) },
};

export function sanitize(html: string): string {
  return sanitizeHtml(html, SANITIZE_OPTIONS);
}

/** Accumulates text/plain output line by line, collapsing HTML white space outside `pre`. */
class TextOut {
  readonly lines: string[] = [''];

  write(value: string, preformatted = false): void {
    if (preformatted) {
      const parts = value.replace(/\r\n?/g, '\n').split('\n');
      parts.forEach((part, i) => {
        if (i > 0) this.lines.push('');
        this.lines[this.lines.length - 1] += part;
      });
      return;
    }
    let s = value.replace(/\s+/g, ' ');
    const current = this.lines[this.lines.length - 1] ?? '';
    if (current === '' || current.endsWith(' ') || current.endsWith('\t')) s = s.replace(/^ /, '');
    this.lines[this.lines.length - 1] = current + s;
  }

  newline(): void {
    this.lines.push('');
  }

  /** Starts a new line unless already at the start of one. */
  block(): void {
    if ((this.lines[this.lines.length - 1] ?? '').trim() !== '') this.lines.push('');
  }

  toString(): string {
    return normalizeText(this.lines.join('\n'));
  }
}

function normalizeText(value: string): string {
  return value
    .split('\n')
    .map((l) => l.replace(/[ \t]+$/, ''))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(/^\n+|\n+$/g, '');
}

function renderTextNodes(nodes: readonly DomNode[], ctx: RenderContext, out: TextOut, pre: boolean): void {
  for (const n of nodes) renderTextNode(n, ctx, out, pre);
}

function renderSubText(nodes: readonly DomNode[], ctx: RenderContext, pre: boolean): string {
  const sub = new TextOut();
  renderTextNodes(nodes, ctx, sub, pre);
  return sub.toString();
}

function renderTextNode(node: DomNode, ctx: RenderContext, out: TextOut, pre: boolean): void {
  if (isTextLike(node)) {
    out.write(node.data, pre);
    return;
  }
  if (!isElement(node)) return;
  const name = node.name;
  if (DROPPED_TAGS.has(name)) return;
  switch (name) {
    case 'br':
      out.newline();
      return;
    case 'hr':
      out.block();
      out.write('----------');
      out.newline();
      return;
    case 'audio':
      out.write(audioLabel(node));
      return;
    case 'img':
      out.write(imageLabel(node));
      return;
    case 'a': {
      const label = renderSubText(node.children, ctx, pre).replace(/\s+/g, ' ');
      const href = safeHref(node.attribs['href']);
      if (!href || href === label || `mailto:${label}` === href) out.write(label || href || '');
      else out.write(label ? `${label} (${href})` : href);
      return;
    }
    case 'ul':
    case 'ol': {
      out.block();
      let index = 0;
      for (const child of node.children) {
        if (isElement(child) && child.name === 'li') {
          index += 1;
          const bullet = name === 'ol' ? `${index}. ` : '- ';
          const body = renderSubText(child.children, ctx, pre).split('\n');
          body.forEach((line, i) => {
            out.write(i === 0 ? bullet + line : ' '.repeat(bullet.length) + line, true);
            out.newline();
          });
        } else renderTextNode(child, ctx, out, pre);
      }
      out.block();
      return;
    }
    case 'li': {
      out.block();
      const body = renderSubText(node.children, ctx, pre).split('\n');
      body.forEach((line, i) => {
        out.write(i === 0 ? `- ${line}` : `  ${line}`, true);
        out.newline();
      });
      return;
    }
    case 'tr': {
      out.block();
      const cells = node.children
        .filter((c): c is DomElement => isElement(c) && (c.name === 'td' || c.name === 'th'))
        .map((c) => renderSubText(c.children, ctx, pre).replace(/\s*\n\s*/g, ' '));
      out.write(cells.join('\t'), true);
      out.newline();
      return;
    }
    case 'pre':
      out.block();
      renderTextNodes(node.children, ctx, out, true);
      out.block();
      return;
  }
  if (isEntitySpan(node)) {
    const { main, suffix } = entityText(node, ctx);
    out.write(suffix ? `${main} ${suffix}` : main);
    return;
  }
  const block = BLOCK_TAGS.has(name) || name === 'blockquote' || /^h[1-6]$/.test(name);
  if (block) out.block();
  if (name === 'blockquote') {
    const inner = renderSubText(node.children, ctx, pre);
    for (const line of inner.split('\n')) {
      out.write(`> ${line}`, true);
      out.newline();
    }
    return;
  }
  renderTextNodes(node.children, ctx, out, pre);
  if (block) out.block();
}

/** The five entities XML predefines; any other named reference (`&nbsp;`) is an HTML-ism. */
const XML_ENTITY = /^&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/;
const TAG = /<(\/?)([A-Za-z][^\s/>]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(\/?)>/y;

/**
 * A diagnostic, not a parser: reports the first few reasons the markup is not well-formed XML (unbalanced
 * tags, HTML-only named entities, bare `&`). The content is rendered leniently either way; the warning
 * tells a reviewer the rendering may differ from what the Symphony client showed.
 */
export function wellFormednessProblems(markup: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const add = (p: string): void => {
    if (problems.length < 3 && !problems.includes(p)) problems.push(p);
  };
  for (let i = 0; i < markup.length && problems.length < 3; i++) {
    const ch = markup[i];
    if (ch === '&') {
      if (!XML_ENTITY.test(markup.slice(i, i + 12))) {
        const named = /^&([A-Za-z][A-Za-z0-9]{0,31});/.exec(markup.slice(i, i + 40));
        add(named ? `HTML-only entity &${named[1]};` : 'bare "&"');
      }
      continue;
    }
    if (ch !== '<') continue;
    if (markup.startsWith('<!--', i)) {
      const end = markup.indexOf('-->', i + 4);
      i = end < 0 ? markup.length : end + 2;
      continue;
    }
    if (markup.startsWith('<![CDATA[', i)) {
      const end = markup.indexOf(']]>', i + 9);
      i = end < 0 ? markup.length : end + 2;
      continue;
    }
    TAG.lastIndex = i;
    const m = TAG.exec(markup);
    if (!m) {
      add('bare "<"');
      continue;
    }
    const [, closing, rawName, , selfClosing] = m;
    const name = (rawName ?? '').toLowerCase();
    if (closing) {
      if (stack[stack.length - 1] === name) stack.pop();
      else if (stack.includes(name)) {
        add(`unclosed <${stack[stack.length - 1] ?? ''}>`);
        while (stack.length > 0 && stack.pop() !== name);
      } else add(`stray </${name}>`);
    } else if (!selfClosing) stack.push(name);
    i = TAG.lastIndex - 1;
  }
  if (stack.length > 0) add(`unclosed <${stack[stack.length - 1] ?? ''}>`);
  return problems;
}

/** Renders one PresentationML string. Never throws on bad markup. */
export function renderPresentation(markup: string, ctx: RenderContext): RenderedContent {
  const warnings: string[] = [];
  const problems = wellFormednessProblems(markup);
  if (problems.length > 0) {
    warnings.push(`PresentationML is not well-formed (${problems.join('; ')}); rendered leniently`);
  }
  const doc = parseDocument(markup, { decodeEntities: true, recognizeSelfClosing: true, lowerCaseTags: true });
  const html = sanitize(renderHtmlNodes(doc.children, ctx));
  const text = renderSubText(doc.children, ctx, false);
  return { html, text, warnings };
}
