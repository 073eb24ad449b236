/**
 * PresentationML → sanitized HTML and text/plain (symphony-api.md §6). PresentationML is XHTML in theory but
 * not in practice (`&nbsp;`, unclosed tags), so it is parsed with htmlparser2's lenient HTML mode. One walk
 * over the DOM writes both bodies: the HTML from a fixed allow-list of tags whose only attributes are checked
 * `href`s, numeric spans and the `cid:` source of an image carried in the message itself (no `style`, `class`,
 * remote `src` or event handler ever passes), the text through {@link TextOut}. The assembled HTML then goes
 * through sanitize-html as a second, independent guard (reliability.md §3 row 3: the HTML part is viewed in OWA
 * and eDiscovery tools).
 */
import { ElementType, parseDocument } from 'htmlparser2';
import sanitizeHtml from 'sanitize-html';
import type { Person } from '../core/types.ts';
import { actionText, cashtagText, hashtagText, type ArticleInfo, type EntityInfo } from './entities.ts';
import { isSimpleAddress, personName } from './headers.ts';
import { TextOut, layoutTable, type TextCell, type TextRow } from './text.ts';

type DomDocument = ReturnType<typeof parseDocument>;
type DomNode = DomDocument['children'][number];
type DomElement = Extract<DomNode, { attribs: Record<string, string> }>;

export interface RenderContext {
  entities: ReadonlyMap<string, EntityInfo>;
  /** Known people by user id, to show a mentioned person's name and email. */
  people: ReadonlyMap<string, Person>;
  /** Names already taken by attachments, so images from `data:` URIs get unique names. */
  takenNames?: Set<string>;
  /**
   * The Content-ID (RFC 2392) an image from a `data:` URI gets, from its file name. Given, the HTML shows the
   * image as `<img src="cid:…">`, for a multipart/related part of that id (RFC 2387); absent, the image is only
   * named in the text and the caller attaches it.
   */
  contentIdFor?: (filename: string) => string;
}

/** An image carried inline as a `data:` URI, turned into a part of its own so the HTML never loads anything. */
export interface InlineImage {
  filename: string;
  contentType: string;
  content: Buffer;
  /** Set when the HTML refers to it as `cid:{contentId}` (see {@link RenderContext.contentIdFor}). */
  contentId?: string;
}

export interface RenderedContent {
  html: string;
  text: string;
  warnings: string[];
  images: InlineImage[];
  /** Entity ids that a span in the markup referred to. */
  usedEntities: Set<string>;
}

/**
 * Nesting beyond this is flattened to its text. Real messages nest a handful of levels; hostile ones nest
 * thousands (reliability.md §3 row 15), which a recursive renderer would turn into a stack overflow.
 */
export const MAX_DEPTH = 64;

/** Symphony allows 1.5 MB per message (symphony-api.md §6); a bigger `data:` image is only named. */
const MAX_INLINE_IMAGE_BYTES = 2 * 1024 * 1024;

/** Elements whose content is never shown: active content, metadata, and anything that can load remotely. */
const DROPPED_TAGS = new Set([
  'script', 'style', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'template', 'svg', 'math',
  'noscript', 'head', 'title', 'meta', 'link', 'base', 'video', 'source', 'track', 'canvas', 'param', 'picture',
  'portal', 'xml', 'noembed', 'noframes',
]); // prettier-ignore

/** Tags copied to the HTML body as they are (without any attribute). */
const PLAIN_INLINE = new Set(['b', 'strong', 'i', 'em', 'u', 's', 'sub', 'sup']);
const INLINE_ALIASES: Record<string, string> = { strike: 's', del: 's', ins: 'u', mark: 'b', small: 'span' };

/** Containers that start a new paragraph in the text body. */
const BLOCK_TAGS = new Set([
  'p', 'div', 'section', 'article', 'header', 'footer', 'body', 'main', 'aside', 'nav', 'figure', 'figcaption',
  'address', 'details', 'summary', 'dl', 'dt', 'dd', 'fieldset', 'legend', 'center', 'messageml', 'card', 'dialog',
]); // prettier-ignore

const HEADINGS = new Set(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']);

/** Elements that make a block of their own, so they cannot sit inside a paragraph. */
const BLOCK_CONTENT = new Set([...BLOCK_TAGS, ...HEADINGS, 'p', 'ul', 'ol', 'table', 'pre', 'blockquote', 'hr']);

function hasBlockContent(node: DomElement): boolean {
  const stack: DomNode[] = [...node.children];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (!isElement(n)) continue;
    if (BLOCK_CONTENT.has(n.name)) return true;
    for (const c of n.children) stack.push(c);
  }
  return false;
}

/** Symphony Elements placeholders rendered as `<div class="…" data-name="…">` (messageml-utils). */
const SELECTOR_CLASSES: Record<string, string> = {
  'person-selector': 'Person selector',
  'room-selector': 'Room selector',
  'timezone-picker': 'Timezone picker',
  'country-picker': 'Country picker',
};

const INPUT_TYPES: Record<string, string> = {
  text: 'Text field',
  date: 'Date picker',
  time: 'Time picker',
  checkbox: 'Checkbox',
  radio: 'Radio button',
  number: 'Number field',
  hidden: 'Hidden field',
};

const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function isElement(node: DomNode): node is DomElement {
  return node.type === ElementType.Tag || node.type === ElementType.Script || node.type === ElementType.Style;
}

function isTextLike(node: DomNode): node is Extract<DomNode, { data: string }> {
  return node.type === ElementType.Text || node.type === ElementType.CDATA;
}

function classesOf(el: DomElement): string[] {
  const c = el.attribs['class'];
  return c ? c.split(/\s+/) : [];
}

function hasClass(el: DomElement, name: string): boolean {
  return classesOf(el).includes(name);
}

/** The text below a node, iteratively (any depth), skipping dropped elements. */
export function textContent(node: DomNode): string {
  const parts: string[] = [];
  const stack: DomNode[] = [node];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (isTextLike(n)) parts.push(n.data);
    else if (isElement(n) && !DROPPED_TAGS.has(n.name)) {
      for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
    }
  }
  return parts.join('');
}

function oneLine(value: string): string {
  return value.replace(/\s+/g, ' ').trim();
}

/** Only absolute http(s)/mailto URLs survive; `javascript:`, `data:`, relative and malformed URLs do not. */
export function safeHref(href: string | undefined): string | undefined {
  if (!href) return undefined;
  // eslint-disable-next-line no-control-regex
  const trimmed = href.replace(/[\u0000-\u0020\u007f-\u009f]/g, '');
  if (!/^(?:https?|mailto):/i.test(trimmed)) return undefined;
  try {
    const url = new URL(trimmed);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function spanCount(value: string | undefined, max: number): number {
  if (!value || !/^\s*\d{1,4}\s*$/.test(value)) return 1;
  return Math.min(Math.max(Number(value), 1), max);
}

/** Both bodies of one rendering target: HTML fragments and the text model. */
interface Out {
  html: string[];
  text: TextOut;
}

interface FormField {
  label: string;
  name: string;
  type: string;
  value: string;
}

/** The Elements form being rendered: its fields become a table instead of inline widgets. */
interface FormState {
  fields: FormField[];
  labels: Map<string, string>;
  hints: Map<string, string>;
  /** How many tables enclosed the form: a field inside more is in a table of the form's own. */
  tables: number;
}

interface State {
  ctx: RenderContext;
  warnings: Set<string>;
  images: InlineImage[];
  usedEntities: Set<string>;
  takenNames: Set<string>;
  form: FormState | undefined;
  pre: boolean;
  /** How many lists enclose the node being rendered. */
  lists: number;
  /** How many tables enclose the node being rendered. */
  tables: number;
}

function mentionText(visible: string, userId: string, st: State): string {
  const person = st.ctx.people.get(userId);
  const main = visible || `@${person ? personName(person) : `user ${userId}`}`;
  const email = typeof person?.email === 'string' ? person.email.trim() : '';
  if (email && isSimpleAddress(email)) return `${main} <${email}>`;
  return `${main} (Symphony user ${userId})`;
}

/** What a media entity shows: its visible text and what it is (image, YouTube or Vimeo video). */
function mediaLabel(info: Extract<EntityInfo, { kind: 'media' }>, visible: string): string {
  const what =
    info.media === 'image'
      ? 'image'
      : info.format === 'youtube'
        ? 'YouTube video'
        : info.format === 'vimeo'
          ? 'Vimeo video'
          : 'video';
  if (visible) return `${visible} [${what}]`;
  return `[${what}${info.media === 'video' && info.videoId ? ` ${info.videoId}` : ''}]`;
}

/**
 * An element that refers to EntityJSON (`data-entity-id`), shown with what the entity adds: the mentioned
 * person's email, the tagged keyword or security, the emoji's character, the media link, an article, an FDC3
 * action. Returns false when the entity is unknown, so the element's own content is rendered instead.
 */
function renderEntity(el: DomElement, out: Out, st: State): boolean {
  const id = el.attribs['data-entity-id'];
  const info = id === undefined ? undefined : st.ctx.entities.get(id);
  if (!info || id === undefined) return false;
  st.usedEntities.add(id);
  const visible = oneLine(textContent(el));
  let text: string;
  let href: string | undefined;
  switch (info.kind) {
    case 'mention':
      text = mentionText(visible, info.userId, st);
      break;
    case 'hashtag':
      text = hashtagText(visible, info.value);
      break;
    case 'cashtag':
      text = cashtagText(visible, info);
      break;
    case 'emoji':
      // The span's own text is the `:shortcode:` fallback (messageml-utils Emoji); the entity has the character.
      text = info.unicode ?? (visible || `:${info.shortcode ?? 'emoji'}:`);
      break;
    case 'datetime':
      text = visible || info.value;
      break;
    case 'media':
      text = mediaLabel(info, visible);
      href = safeHref(info.url);
      break;
    case 'action':
      // The span's text is the fallback shown where no desktop integration platform raises the intent.
      text = actionText(info);
      break;
    case 'article':
      renderArticle(info, visible, out, st);
      return true;
    default:
      return false;
  }
  const block = el.name === 'p' || BLOCK_TAGS.has(el.name);
  if (block) {
    out.html.push('<div>');
    out.text.para();
  }
  const embedded =
    info.kind === 'media' && info.media === 'image' && info.url !== undefined && embedImage(info.url, visible, out, st);
  if (!embedded && href) emitLink(out, text, href);
  else if (!embedded) emitText(out, text, st);
  if (block) {
    out.html.push('</div>');
    out.text.para();
  }
  return true;
}

/** An article entity, set off as a card: title (linked), subtitle, blurb, publisher, author, date and thumbnail. */
function renderArticle(info: ArticleInfo, visible: string, out: Out, st: State): void {
  const title = info.title ?? (visible || 'Article');
  const sub: Out = { html: out.html, text: new TextOut() };
  const savedPre = st.pre;
  st.pre = false;
  out.html.push('<blockquote><p><b>');
  emitText(sub, 'Article: ', st);
  const href = safeHref(info.href);
  if (href) emitLink(sub, title, href);
  else emitText(sub, title, st);
  out.html.push('</b></p>');
  const para = (value: string | undefined, tag?: string): void => {
    if (!value) return;
    out.html.push(tag ? `<p><${tag}>` : '<p>');
    sub.text.para();
    emitText(sub, value, st);
    out.html.push(tag ? `</${tag}></p>` : '</p>');
  };
  if (visible && visible !== title) para(visible);
  para(info.subTitle, 'i');
  para(info.blurb);
  para(
    [info.publisher, info.author && `by ${info.author}`, info.date && `published ${info.date}`]
      .filter(Boolean)
      .join(', '),
  );
  para(info.articleId && `Article id: ${info.articleId}`);
  if (info.thumbnail) {
    out.html.push('<p>');
    sub.text.para();
    const thumb = safeHref(info.thumbnail);
    if (!embedImage(info.thumbnail, 'thumbnail', sub, st)) {
      if (thumb) emitLink(sub, '[thumbnail]', thumb);
      else emitText(sub, '[thumbnail]', st);
    }
    out.html.push('</p>');
  }
  out.html.push('</blockquote>');
  st.pre = savedPre;
  out.text.para();
  out.text.lines(prefixLines(sub.text.toLines(), '| ', '| '));
  out.text.para();
}

function isEntityElement(el: DomElement): boolean {
  if (el.attribs['data-entity-id'] !== undefined) return true;
  return el.name === 'span' && classesOf(el).some((c) => c === 'entity' || c === 'hashTag' || c === 'cashTag');
}

/** Writes plain text to both bodies. */
function emitText(out: Out, value: string, st: State): void {
  out.html.push(escapeHtml(value));
  if (st.pre) out.text.pre(value);
  else out.text.inline(value);
}

/** A link in both bodies: `<a>` in HTML, "label (url)" in text. */
function emitLink(out: Out, label: string, href: string): void {
  out.html.push(`<a href="${escapeHtml(href)}" rel="noopener noreferrer">${escapeHtml(label)}</a>`);
  const bare = href.startsWith('mailto:') ? href.slice(7) : href;
  out.text.inline(label === bare ? label : label && label !== href ? `${label} (${href})` : href);
}

function uniqueName(st: State, base: string, ext: string): string {
  for (let i = st.images.length + 1; ; i++) {
    const name = `${base}-${i}.${ext}`;
    if (!st.takenNames.has(name)) {
      st.takenNames.add(name);
      return name;
    }
  }
}

const IMAGE_DATA_URI = /^data:image\/(png|jpeg|jpg|gif|webp|bmp);base64,([A-Za-z0-9+/=\s]+)$/i;

/**
 * A `data:` image (symphony-api.md §6: `img src` may be a `data:` URI) as a part of the message: `<img src="cid:…">`
 * (RFC 2392) where the caller assigns Content-IDs, else named in the text for the caller to attach. False when
 * `src` is no `data:` image of a raster type within the size Symphony allows (`image/svg+xml` can script).
 */
function embedImage(src: string, alt: string, out: Out, st: State): boolean {
  const data = IMAGE_DATA_URI.exec(src.trim());
  if (!data || src.length > (MAX_INLINE_IMAGE_BYTES * 4) / 3 + 64) return false;
  const sub = data[1]!.toLowerCase();
  const ext = sub === 'jpeg' ? 'jpg' : sub;
  const filename = uniqueName(st, 'image', ext);
  const contentId = st.ctx.contentIdFor?.(filename);
  const image: InlineImage = {
    filename,
    contentType: `image/${sub === 'jpg' ? 'jpeg' : sub}`,
    content: Buffer.from(data[2]!, 'base64'),
  };
  st.images.push(contentId === undefined ? image : { ...image, contentId });
  if (contentId === undefined) {
    emitText(out, `[image${alt ? `: ${alt}` : ''}, attached as ${filename}]`, st);
    return true;
  }
  out.html.push(`<img src="cid:${escapeHtml(cidUrl(contentId))}" alt="${escapeHtml(alt || filename)}">`);
  out.text.inline(`[image: ${alt ? `${alt}, ` : ''}${filename}]`);
  return true;
}

/**
 * `<img>`. A URL is never loaded (a remote load tells the sender who read the archive, and when): it becomes a
 * link. A `data:` image travels in the message itself ({@link embedImage}). Only these qualify: PresentationML
 * has no way to name one of the message's own attachments (V4Message `attachments` is a list beside the markup,
 * symphony-api.md §4.1; `com.symphony.media.image` carries a URL), so attachments stay attachments.
 */
function renderImage(el: DomElement, out: Out, st: State): void {
  const alt = oneLine(el.attribs['alt'] ?? el.attribs['title'] ?? '');
  const src = (el.attribs['src'] ?? '').trim();
  if (embedImage(src, alt, out, st)) return;
  const label = alt ? `[image: ${alt}]` : '[image]';
  const href = safeHref(src);
  if (href) emitLink(out, label, href);
  else emitText(out, label, st);
}

/** A `cid:` URL's content-id is URL-encoded (RFC 2392 §2); `@` and the dot-atom characters need no escape. */
function cidUrl(contentId: string): string {
  return encodeURIComponent(contentId).replace(/%40/g, '@');
}

function renderAudio(src: string, out: Out, st: State): void {
  // `<chime/>` becomes `<audio src=".../chime.mp3" autoplay="true"/>` and nothing else (symphony-api.md §6).
  emitText(out, /chime/i.test(src) ? '[Chime]' : '[audio]', st);
}

/** Renders children into a separate text buffer (same HTML target) and returns its lines. */
function subText(nodes: readonly DomNode[], out: Out, st: State, depth: number, pre = st.pre): string[] {
  const sub: Out = { html: out.html, text: new TextOut() };
  const savedPre = st.pre;
  st.pre = pre;
  renderNodes(nodes, sub, st, depth);
  st.pre = savedPre;
  return sub.text.toLines();
}

function prefixLines(lines: readonly string[], first: string, rest: string): string[] {
  return lines.map((l, i) => (i === 0 ? first : rest) + l);
}

function renderList(el: DomElement, out: Out, st: State, depth: number): void {
  const ordered = el.name === 'ol';
  // A list inside a list item hugs its item; a top-level list is a paragraph of its own.
  const nested = st.lists > 0;
  st.lists += 1;
  out.html.push(ordered ? '<ol>' : '<ul>');
  if (nested) out.text.block();
  else out.text.para();
  let n = ordered ? spanCount(el.attribs['start'], 1_000_000) - 1 : 0;
  for (const child of el.children) {
    if (isElement(child) && child.name === 'li') {
      n += 1;
      out.html.push('<li>');
      const bullet = ordered ? `${n}. ` : '- ';
      const lines = subText(child.children, out, st, depth + 1);
      out.text.lines(prefixLines(lines.length ? lines : [''], bullet, ' '.repeat(bullet.length)));
      out.html.push('</li>');
    } else if (isElement(child) || oneLine(textContent(child)) !== '') {
      out.html.push('<li>');
      out.text.lines(subText([child], out, st, depth + 1));
      out.html.push('</li>');
    }
  }
  out.html.push(ordered ? '</ol>' : '</ul>');
  st.lists -= 1;
  if (nested) out.text.block();
  else out.text.para();
}

function renderTable(el: DomElement, out: Out, st: State, depth: number): void {
  const rows: TextRow[] = [];
  st.tables += 1;
  out.html.push('<table border="1">');
  const renderRow = (children: readonly DomNode[], inHead: boolean): void => {
    out.html.push('<tr>');
    const cells: TextCell[] = [];
    let allTh = true;
    for (const c of children) {
      if (isElement(c) && (c.name === 'td' || c.name === 'th')) {
        const colspan = spanCount(c.attribs['colspan'], 50);
        const rowspan = spanCount(c.attribs['rowspan'], 500);
        const spans = (colspan > 1 ? ` colspan="${colspan}"` : '') + (rowspan > 1 ? ` rowspan="${rowspan}"` : '');
        out.html.push(`<${c.name}${spans}>`);
        const text = subText(c.children, out, st, depth + 2).join(' ');
        out.html.push(`</${c.name}>`);
        cells.push({ text, colspan, rowspan });
        if (c.name !== 'th') allTh = false;
      } else if (isElement(c) || oneLine(textContent(c)) !== '') {
        out.html.push('<td>');
        cells.push({ text: subText([c], out, st, depth + 2).join(' '), colspan: 1, rowspan: 1 });
        out.html.push('</td>');
        allTh = false;
      }
    }
    out.html.push('</tr>');
    rows.push({ cells, header: inHead || (allTh && cells.length > 0) });
  };
  const loose: DomNode[] = [];
  // Content outside any cell (invalid, but the lenient parser keeps it) becomes a row of its own.
  const flushLoose = (): void => {
    if (loose.length === 0) return;
    out.html.push('<tr><td>');
    const lines = subText(loose.splice(0), out, st, depth + 1);
    out.html.push('</td></tr>');
    rows.push({ cells: [{ text: lines.join(' '), colspan: 1, rowspan: 1 }], header: false });
  };
  for (const child of el.children) {
    if (!isElement(child)) {
      if (oneLine(textContent(child)) !== '') loose.push(child);
      continue;
    }
    if (child.name === 'thead' || child.name === 'tbody' || child.name === 'tfoot') {
      flushLoose();
      out.html.push(`<${child.name}>`);
      for (const r of child.children) {
        if (isElement(r) && r.name === 'tr') renderRow(r.children, child.name === 'thead');
        else if (isElement(r)) renderRow([r], false);
      }
      out.html.push(`</${child.name}>`);
    } else if (child.name === 'tr') {
      flushLoose();
      renderRow(child.children, false);
    } else if (child.name === 'caption') {
      flushLoose();
      out.html.push('<tr><td>');
      const lines = subText(child.children, out, st, depth + 1);
      out.html.push('</td></tr>');
      rows.push({ cells: [{ text: lines.join(' '), colspan: 1, rowspan: 1 }], header: false });
    } else loose.push(child);
  }
  flushLoose();
  st.tables -= 1;
  out.html.push('</table>');
  out.text.para();
  out.text.lines(layoutTable(rows));
  out.text.para();
}

/** `pre`, or `code` used as a block (messageml-utils `Code` is a block container with `data-language`). */
function renderCodeBlock(el: DomElement, out: Out, st: State, depth: number): void {
  const language = oneLine(el.attribs['data-language'] ?? el.attribs['language'] ?? '').replace(/[^\w+#.-]/g, '');
  out.html.push(el.name === 'pre' ? '<pre>' : '<pre><code>');
  const lines = subText(el.children, out, st, depth + 1, true);
  out.html.push(el.name === 'pre' ? '</pre>' : '</code></pre>');
  out.text.para();
  out.text.lines(['```' + language, ...lines, '```']);
  out.text.para();
}

function isBlockCode(el: DomElement): boolean {
  if (el.attribs['data-language'] !== undefined || el.attribs['language'] !== undefined) return true;
  return el.children.some(
    (c) => (isTextLike(c) && c.data.includes('\n')) || (isElement(c) && (c.name === 'br' || c.name === 'p')),
  );
}

/**
 * A card, expandable card or dialog: shown in full whatever its initial state, set off as a quote, with a
 * note where the Symphony client showed less (collapsed or cropped cards, dialogs opened by a button).
 */
function renderCard(el: DomElement, out: Out, st: State, depth: number, kind: 'card' | 'expandable' | 'dialog'): void {
  out.html.push('<blockquote>');
  const state = oneLine(el.attribs['data-state'] ?? el.attribs['state'] ?? '');
  const lines = subText(el.children, out, st, depth + 1);
  let note: string | undefined;
  if (kind === 'expandable' && state && state !== 'expanded') {
    note = `(expandable card, shown ${state === 'cropped' ? 'cropped' : 'collapsed'} in Symphony)`;
  } else if (kind === 'dialog') note = '(dialog, opened from a button in Symphony)';
  if (note) {
    out.html.push(`<p><i>${escapeHtml(note)}</i></p>`);
    lines.push('', note);
  }
  out.html.push('</blockquote>');
  out.text.para();
  out.text.lines(prefixLines(lines, '| ', '| '));
  out.text.para();
}

function renderHeading(el: DomElement, out: Out, st: State, depth: number): void {
  out.html.push(`<${el.name}>`);
  const lines = subText(el.children, out, st, depth + 1);
  out.html.push(`</${el.name}>`);
  out.text.para();
  const text = lines.join(' ');
  out.text.lines(text ? [text] : []);
  if (text && (el.name === 'h1' || el.name === 'h2')) {
    out.text.lines([(el.name === 'h1' ? '=' : '-').repeat(Math.min(Array.from(text).length, 76))]);
  }
  out.text.para();
}

function renderQuote(el: DomElement, out: Out, st: State, depth: number): void {
  out.html.push('<blockquote>');
  const lines = subText(el.children, out, st, depth + 1);
  out.html.push('</blockquote>');
  out.text.para();
  out.text.lines(prefixLines(lines, '> ', '> '));
  out.text.para();
}

// ---- Symphony Elements ----------------------------------------------------------------------------------

/** Labels (`<label for>`) and tooltips (`<span class="info-hint" data-target-id>`) of a form, by field id. */
function collectFormLabels(form: DomElement): { labels: Map<string, string>; hints: Map<string, string> } {
  const labels = new Map<string, string>();
  const hints = new Map<string, string>();
  const stack: DomNode[] = [...form.children];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (!isElement(n) || DROPPED_TAGS.has(n.name)) continue;
    if (n.name === 'label' && n.attribs['for']) labels.set(n.attribs['for'], oneLine(textContent(n)));
    else if (n.name === 'span' && hasClass(n, 'info-hint') && n.attribs['data-target-id']) {
      hints.set(n.attribs['data-target-id'], oneLine(n.attribs['data-title'] ?? ''));
    } else for (const c of n.children) stack.push(c);
  }
  return { labels, hints };
}

function fieldLabel(el: DomElement, form: FormState): string {
  const id = el.attribs['id'];
  const label = (id && form.labels.get(id)) || oneLine(el.attribs['label'] ?? el.attribs['title'] ?? '');
  const hint = id ? form.hints.get(id) : undefined;
  return hint ? (label ? `${label} (hint: ${hint})` : `(hint: ${hint})`) : label;
}

function flag(el: DomElement, name: string): boolean {
  const v = el.attribs[name];
  return v !== undefined && v !== 'false';
}

/** A Symphony Elements field as a row of the form's table; undefined for an element that is none. */
function formField(el: DomElement, form: FormState, st: State): FormField | undefined {
  const name = oneLine(el.attribs['name'] ?? el.attribs['data-name'] ?? '');
  const extras = (type: string): string =>
    [type, flag(el, 'required') ? 'required' : '', flag(el, 'disabled') ? 'disabled' : '', flag(el, 'readonly') ? 'read-only' : '']
      .filter(Boolean)
      .join(', '); // prettier-ignore
  switch (el.name) {
    case 'input': {
      const kind = (el.attribs['type'] ?? 'text').toLowerCase();
      const type = INPUT_TYPES[kind] ?? `Input (${oneLine(kind)})`;
      const value = oneLine(el.attribs['value'] ?? '');
      let shown = value;
      if (kind === 'checkbox' || kind === 'radio') shown = `${value || 'on'}${flag(el, 'checked') ? ' (checked)' : ''}`;
      else if (!value && el.attribs['placeholder']) shown = `(placeholder: ${oneLine(el.attribs['placeholder'])})`;
      return { label: fieldLabel(el, form), name, type: extras(type), value: shown };
    }
    case 'textarea': {
      const value = textContent(el).trim();
      const shown = value || (el.attribs['placeholder'] ? `(placeholder: ${oneLine(el.attribs['placeholder'])})` : '');
      return { label: fieldLabel(el, form), name, type: extras('Text area'), value: shown };
    }
    case 'select': {
      const options: string[] = [];
      const stack: DomNode[] = [...el.children].reverse();
      while (stack.length > 0) {
        const o = stack.pop()!;
        if (!isElement(o)) continue;
        if (o.name === 'option') {
          const text = oneLine(textContent(o));
          const value = oneLine(o.attribs['value'] ?? text);
          const shown = text && text !== value ? `${text} [${value}]` : value;
          options.push(flag(o, 'selected') ? `${shown} (selected)` : shown);
        } else for (let i = o.children.length - 1; i >= 0; i--) stack.push(o.children[i]!);
      }
      const type = extras(flag(el, 'multiple') || flag(el, 'data-multi-select') ? 'Dropdown, multiple' : 'Dropdown');
      return { label: fieldLabel(el, form), name, type, value: options.join('; ') };
    }
    case 'button': {
      const kind = oneLine(el.attribs['type'] ?? 'action');
      return { label: oneLine(textContent(el)), name, type: `Button (${kind})`, value: '' };
    }
    case 'div': {
      const cls = classesOf(el).find((c) => SELECTOR_CLASSES[c] !== undefined);
      if (!cls) return undefined;
      const value = selectorValue(el.attribs['data-value'] ?? '', st);
      return { label: fieldLabel(el, form), name, type: extras(SELECTOR_CLASSES[cls]!), value };
    }
    default:
      return undefined;
  }
}

/**
 * The `data-value` of a person or room selector: a JSON array of user and stream ids, single-quoted as
 * messageml-utils writes it (DevDocs room-selector.md). Known people are named; anything else is shown as given.
 */
function selectorValue(raw: string, st: State): string {
  const value = raw.trim();
  if (value.startsWith('[')) {
    try {
      const ids: unknown = JSON.parse(value.replace(/'/g, '"'));
      if (Array.isArray(ids)) {
        return ids
          .map((id) => {
            const p = st.ctx.people.get(String(id));
            return p ? `${personName(p)} (${String(id)})` : oneLine(String(id));
          })
          .join(', ');
      }
    } catch {
      // Not the array messageml-utils writes: shown as it is.
    }
  }
  return oneLine(value);
}

/**
 * A field inside a table of a form (a Table Select, DevDocs table-select.md: a checkbox or button per row) stays
 * in its cell, where it says which row it selects: `[x] (tablesel-row-1)`, `[SELECT] (tablesel-row-2)`.
 */
function controlText(el: DomElement, field: FormField): string {
  const kind = (el.attribs['type'] ?? '').toLowerCase();
  const checked = flag(el, 'checked');
  const widget =
    el.name === 'input' && kind === 'checkbox'
      ? checked ? '[x]' : '[ ]'
      : el.name === 'input' && kind === 'radio'
        ? checked ? '(x)' : '( )'
        : el.name === 'button'
          ? `[${field.label || 'button'}]`
          : `[${field.type}${field.value ? `: ${field.value}` : ''}]`; // prettier-ignore
  return field.name ? `${widget} (${field.name})` : widget;
}

function fieldsTable(fields: readonly FormField[], out: Out): void {
  const head = ['Field', 'Name', 'Type', 'Default / options'];
  out.html.push('<table border="1"><thead><tr>' + head.map((h) => `<th>${h}</th>`).join('') + '</tr></thead><tbody>');
  for (const f of fields) {
    out.html.push(
      '<tr>' + [f.label, f.name, f.type, f.value].map((v) => `<td>${escapeHtml(v)}</td>`).join('') + '</tr>',
    );
  }
  out.html.push('</tbody></table>');
  const rows: TextRow[] = [
    { header: true, cells: head.map((text) => ({ text, colspan: 1, rowspan: 1 })) },
    ...fields.map((f) => ({
      header: false,
      cells: [f.label, f.name, f.type, f.value].map((text) => ({ text, colspan: 1, rowspan: 1 })),
    })),
  ];
  out.text.para();
  out.text.lines(layoutTable(rows));
  out.text.para();
}

function renderForm(el: DomElement, out: Out, st: State, depth: number): void {
  if (st.form) {
    renderNodes(el.children, out, st, depth + 1);
    return;
  }
  const id = oneLine(el.attribs['id'] ?? '');
  const title = `Symphony Elements form${id ? ` "${id}"` : ''}:`;
  out.html.push(`<div><p><b>${escapeHtml(title)}</b></p>`);
  out.text.para();
  out.text.inline(title);
  out.text.para();
  const form: FormState = { fields: [], ...collectFormLabels(el), tables: st.tables };
  st.form = form;
  try {
    renderNodes(el.children, out, st, depth + 1);
  } finally {
    st.form = undefined;
  }
  if (form.fields.length > 0) fieldsTable(form.fields, out);
  out.html.push('</div>');
  out.text.para();
}

// ---- the walk ---------------------------------------------------------------------------------------------

function renderNodes(nodes: readonly DomNode[], out: Out, st: State, depth: number): void {
  for (const node of nodes) renderNode(node, out, st, depth);
}

function renderNode(node: DomNode, out: Out, st: State, depth: number): void {
  if (isTextLike(node)) {
    emitText(out, node.data, st);
    return;
  }
  if (!isElement(node)) return;
  const name = node.name;
  if (DROPPED_TAGS.has(name)) return;
  if (depth > MAX_DEPTH) {
    st.warnings.add(`markup is nested deeper than ${MAX_DEPTH} levels; the deeper content is shown as plain text`);
    out.text.block();
    emitText(out, textContent(node), st);
    return;
  }
  const d = depth + 1;

  const form = st.form;
  const field = form && formField(node, form, st);
  if (form && field) {
    if (st.tables > form.tables) emitText(out, controlText(node, field), st);
    else form.fields.push(field);
    return;
  }
  if (isEntityElement(node) && renderEntity(node, out, st)) return;

  switch (name) {
    case 'br':
      out.html.push('<br>');
      if (st.pre) out.text.pre('\n');
      else out.text.br();
      return;
    case 'hr':
      out.html.push('<hr>');
      out.text.para();
      out.text.lines(['----------']);
      out.text.para();
      return;
    case 'img':
      renderImage(node, out, st);
      return;
    case 'audio':
    case 'chime':
      renderAudio(name === 'chime' ? 'chime' : (node.attribs['src'] ?? ''), out, st);
      return;
    case 'a': {
      const href = safeHref(node.attribs['href']);
      if (!href) {
        renderInline(node, out, st, d);
        return;
      }
      const label = oneLine(subText(node.children, { html: [], text: out.text }, st, d).join(' '));
      emitLink(out, label, href);
      return;
    }
    case 'ul':
    case 'ol':
      renderList(node, out, st, d);
      return;
    case 'li':
      out.html.push('<ul><li>');
      out.text.lines(prefixLines(subText(node.children, out, st, d), '- ', '  '));
      out.html.push('</li></ul>');
      return;
    case 'table':
      renderTable(node, out, st, d);
      return;
    case 'pre':
      renderCodeBlock(node, out, st, d);
      return;
    case 'code':
      if (!st.pre && isBlockCode(node)) renderCodeBlock(node, out, st, d);
      else if (st.pre) renderInline(node, out, st, d, 'code');
      else {
        out.html.push('<code>');
        const inner = oneLine(subText(node.children, out, st, d).join(' '));
        out.html.push('</code>');
        out.text.inline(inner ? `\`${inner}\`` : '');
      }
      return;
    case 'blockquote':
      renderQuote(node, out, st, d);
      return;
    case 'form':
      renderForm(node, out, st, d);
      return;
    case 'label':
      if (st.form && node.attribs['for']) return;
      break;
    case 'span':
      if (hasClass(node, 'info-hint') || hasClass(node, 'tooltip')) {
        if (st.form) return;
        const hint = oneLine(node.attribs['data-title'] ?? '');
        if (hint) emitText(out, ` (hint: ${hint})`, st);
        renderInline(node, out, st, d);
        return;
      }
      break;
    case 'button':
      emitText(out, `[${oneLine(textContent(node)) || 'button'}]`, st);
      return;
    case 'mention': {
      // MessageML shorthand, for content stored before conversion (symphony-api.md §6).
      const uid = node.attribs['uid'];
      emitText(out, uid && /^\d+$/.test(uid) ? mentionText('', uid, st) : `@${node.attribs['email'] ?? 'user'}`, st);
      return;
    }
    case 'hash':
      emitText(out, `#${node.attribs['tag'] ?? ''}`, st);
      return;
    case 'cash':
      emitText(out, `$${node.attribs['tag'] ?? ''}`, st);
      return;
    case 'emoji':
      emitText(out, `:${node.attribs['shortcode'] ?? node.attribs['annotation'] ?? 'emoji'}:`, st);
      return;
    case 'time': {
      const visible = oneLine(textContent(node));
      emitText(out, visible || oneLine(node.attribs['datetime'] ?? ''), st);
      return;
    }
  }

  if (name === 'dialog') return renderCard(node, out, st, d, 'dialog');
  if (name === 'div' || name === 'card' || name === 'expandable-card') {
    if (name === 'card' || hasClass(node, 'card')) return renderCard(node, out, st, d, 'card');
    if (name === 'expandable-card' || hasClass(node, 'expandable-card')) {
      return renderCard(node, out, st, d, 'expandable');
    }
    if (['cardHeader', 'expandableCardHeader', 'dialog-title'].some((c) => hasClass(node, c))) {
      // A header that is a heading or paragraph already stands out; inside <p><b> it would break the paragraph.
      const [open, close] = hasBlockContent(node) ? ['<div>', '</div>'] : ['<p><b>', '</b></p>'];
      out.html.push(open);
      const lines = subText(node.children, out, st, d);
      out.html.push(close);
      out.text.para();
      out.text.lines(lines);
      out.text.para();
      return;
    }
    if (hasClass(node, 'expandableCardBody') && node.attribs['data-variant'] === 'error') {
      out.html.push('<p><i>');
      out.text.para();
      emitText(out, '(error)', st);
      out.html.push('</i></p>');
    }
  }
  if (HEADINGS.has(name)) return renderHeading(node, out, st, d);
  if (name === 'p' || BLOCK_TAGS.has(name)) {
    const tag = name === 'p' ? 'p' : 'div';
    const mark = out.html.length;
    out.html.push(`<${tag}>`);
    out.text.para();
    renderNodes(node.children, out, st, d);
    // An element that rendered nothing (a form group whose field went to the table) leaves no empty box.
    if (out.html.length === mark + 1) out.html.pop();
    else out.html.push(`</${tag}>`);
    out.text.para();
    return;
  }
  renderInline(node, out, st, d);
}

/** An inline element: kept when it is on the allow-list, otherwise only its content is rendered. */
function renderInline(node: DomElement, out: Out, st: State, depth: number, forced?: string): void {
  const tag = forced ?? (PLAIN_INLINE.has(node.name) ? node.name : INLINE_ALIASES[node.name]);
  if (tag) out.html.push(`<${tag}>`);
  renderNodes(node.children, out, st, depth);
  if (tag) out.html.push(`</${tag}>`);
}

/** The sanitize-html policy: the tags and attributes the renderer emits, enforced a second time. */
export const SANITIZE_OPTIONS: sanitizeHtml.IOptions = {
  allowedTags: [
    'p', 'div', 'span', 'br', 'hr', 'b', 'strong', 'i', 'em', 'u', 's', 'sub', 'sup', 'ul', 'ol', 'li',
    'table', 'thead', 'tbody', 'tfoot', 'tr', 'td', 'th', 'pre', 'code', 'blockquote', 'a',
    'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'img',
  ], // prettier-ignore
  allowedAttributes: {
    a: ['href', 'rel'],
    img: ['src', 'alt'],
    td: ['colspan', 'rowspan'],
    th: ['colspan', 'rowspan'],
    table: [{ name: 'border', multiple: false, values: ['1'] }],
  },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['cid'] },
  allowedSchemesAppliedToAttributes: ['href', 'src'],
  // sanitize-html passes a scheme-less (relative) `src`, which a webmail viewer would load from its own host.
  exclusiveFilter: (frame) => frame.tag === 'img' && !/^cid:[^\s"'<>]+$/.test(frame.attribs['src'] ?? ''),
  allowProtocolRelative: false,
  allowedStyles: {},
  disallowedTagsMode: 'discard',
  nonTextTags: [...DROPPED_TAGS],
  parseStyleAttributes: false,
  transformTags: { a: sanitizeHtml.simpleTransform('a', { rel: 'noopener noreferrer' }) },
};

export function sanitize(html: string): string {
  return sanitizeHtml(html, SANITIZE_OPTIONS);
}

const TAG = /<(\/?)([A-Za-z][^\s/>]*)((?:\s+[^\s=/>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(\/?)>/y;

/** HTML void elements: legal without a closing tag in the lenient reading. */
const VOID = new Set(['br', 'hr', 'img', 'input', 'meta', 'link', 'source', 'wbr', 'col', 'area', 'base', 'param']);

/** The five entities XML predefines and numeric references; any other named reference (`&nbsp;`) is an HTML-ism. */
const XML_ENTITY = /^&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/;

/**
 * A diagnostic, not a parser: reports the first few reasons the markup is not well-formed XML (unclosed or
 * stray tags, a bare `<` or `&`, HTML-only entities such as `&nbsp;`, symphony-api.md §6). The content is
 * rendered leniently either way; the warning tells a reviewer where a strict XML reader (BDK) would fail and
 * the rendering may differ from what the Symphony client showed.
 */
export function wellFormednessProblems(markup: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const add = (p: string): void => {
    if (problems.length < 3 && !problems.includes(p)) problems.push(p);
  };
  const next = (from: number): number => {
    const lt = markup.indexOf('<', from);
    const amp = markup.indexOf('&', from);
    return lt < 0 ? amp : amp < 0 ? lt : Math.min(lt, amp);
  };
  let i = next(0);
  while (i >= 0 && problems.length < 3) {
    if (markup.charCodeAt(i) === 0x26 /* & */) {
      if (!XML_ENTITY.test(markup.slice(i, i + 12))) {
        const named = /^&([A-Za-z][A-Za-z0-9]{0,31});/.exec(markup.slice(i, i + 40));
        add(named ? `HTML-only entity &${named[1]};` : 'bare "&"');
      }
      i = next(i + 1);
      continue;
    }
    if (markup.startsWith('<!--', i)) {
      const end = markup.indexOf('-->', i + 4);
      i = end < 0 ? -1 : next(end + 3);
      continue;
    }
    if (markup.startsWith('<![CDATA[', i)) {
      const end = markup.indexOf(']]>', i + 9);
      i = end < 0 ? -1 : next(end + 3);
      continue;
    }
    TAG.lastIndex = i;
    const m = TAG.exec(markup);
    if (!m) {
      add('bare "<"');
      i = next(i + 1);
      continue;
    }
    const [, closing, rawName, , selfClosing] = m;
    const name = (rawName ?? '').toLowerCase();
    if (closing) {
      if (stack[stack.length - 1] === name) stack.pop();
      else if (stack.lastIndexOf(name) >= 0) {
        add(`unclosed <${stack[stack.length - 1] ?? ''}>`);
        stack.length = stack.lastIndexOf(name);
      } else if (!VOID.has(name)) add(`stray </${name}>`);
    } else if (!selfClosing && !VOID.has(name)) stack.push(name);
    i = next(TAG.lastIndex);
  }
  if (stack.length > 0) add(`unclosed <${stack[stack.length - 1] ?? ''}>`);
  return problems;
}

/** Renders one PresentationML string. Never throws on bad markup. The HTML is not yet sanitized. */
export function renderPresentation(markup: string, ctx: RenderContext): RenderedContent {
  const st: State = {
    ctx,
    warnings: new Set(),
    images: [],
    usedEntities: new Set(),
    takenNames: ctx.takenNames ?? new Set(),
    form: undefined,
    pre: false,
    lists: 0,
    tables: 0,
  };
  const problems = wellFormednessProblems(markup);
  if (problems.length > 0) {
    st.warnings.add(`PresentationML is not well-formed (${problems.join('; ')}); rendered leniently`);
  }
  const doc = parseDocument(markup, { decodeEntities: true, recognizeSelfClosing: true, lowerCaseTags: true });
  const out: Out = { html: [], text: new TextOut() };
  renderNodes(doc.children, out, st, 0);
  return {
    html: out.html.join(''),
    text: out.text.toString(),
    warnings: [...st.warnings],
    images: st.images,
    usedEntities: st.usedEntities,
  };
}
