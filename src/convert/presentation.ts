/**
 * PresentationML → sanitized HTML and text/plain (symphony-api.md §6). PresentationML is XHTML in theory but
 * not in practice (`&nbsp;`, unclosed tags), so it is parsed with htmlparser2's lenient HTML mode. One walk
 * over the DOM writes both bodies: the HTML from a fixed allow-list of tags whose only attributes are checked
 * `href`s and numeric spans (no `style`, `class`, `src` or event handler ever passes), the text through
 * {@link TextOut}. The assembled HTML then goes through sanitize-html as a second, independent guard
 * (reliability.md §3 row 3: the HTML part is viewed in OWA and eDiscovery tools).
 */
import { ElementType, parseDocument } from 'htmlparser2';
import sanitizeHtml from 'sanitize-html';
import type { Person } from '../core/types.ts';
import { cashtagText, type EntityInfo } from './entities.ts';
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
}

/** An image carried inline as a `data:` URI, turned into an attachment so the HTML never loads anything. */
export interface InlineImage {
  filename: string;
  contentType: string;
  content: Buffer;
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
}

function mentionText(visible: string, userId: string, st: State): string {
  const person = st.ctx.people.get(userId);
  const main = visible || `@${person ? personName(person) : `user ${userId}`}`;
  const email = typeof person?.email === 'string' ? person.email.trim() : '';
  if (email && isSimpleAddress(email)) return `${main} <${email}>`;
  return `${main} (Symphony user ${userId})`;
}

/** The visible form of an entity span, completed with what EntityJSON adds. `undefined`: no entity data. */
function entityText(el: DomElement, visible: string, st: State): { text: string; href?: string } | undefined {
  const id = el.attribs['data-entity-id'];
  const info = id === undefined ? undefined : st.ctx.entities.get(id);
  if (!info || id === undefined) return undefined;
  st.usedEntities.add(id);
  switch (info.kind) {
    case 'mention':
      return { text: mentionText(visible, info.userId, st) };
    case 'hashtag':
      return { text: visible || `#${info.value}` };
    case 'cashtag':
      return { text: cashtagText(visible, info) };
    case 'emoji':
      // The span's own text is the `:shortcode:` fallback (messageml-utils Emoji); the entity has the character.
      return { text: info.unicode ?? (visible || `:${info.shortcode ?? 'emoji'}:`) };
    case 'datetime':
      return { text: visible || info.value };
    case 'media': {
      const href = safeHref(info.url);
      const label = visible || `[${info.media}${info.title ? `: ${info.title}` : ''}]`;
      return href ? { text: label, href } : { text: label };
    }
    default:
      return undefined;
  }
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

/** `<img>`: never an `<img>` in the output (remote loads); a link for URLs, an attachment for `data:` URIs. */
function renderImage(el: DomElement, out: Out, st: State): void {
  const alt = oneLine(el.attribs['alt'] ?? el.attribs['title'] ?? '');
  const src = (el.attribs['src'] ?? '').trim();
  const label = alt ? `[image: ${alt}]` : '[image]';
  const data = IMAGE_DATA_URI.exec(src);
  if (data && src.length <= (MAX_INLINE_IMAGE_BYTES * 4) / 3 + 64) {
    const sub = data[1]!.toLowerCase();
    const ext = sub === 'jpeg' ? 'jpg' : sub;
    const filename = uniqueName(st, 'image', ext);
    st.images.push({
      filename,
      contentType: `image/${sub === 'jpg' ? 'jpeg' : sub}`,
      content: Buffer.from(data[2]!, 'base64'),
    });
    emitText(out, `${label.slice(0, -1)}, attached as ${filename}]`, st);
    return;
  }
  const href = safeHref(src);
  if (href) emitLink(out, label, href);
  else emitText(out, label, st);
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

function addField(el: DomElement, form: FormState): boolean {
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
      form.fields.push({ label: fieldLabel(el, form), name, type: extras(type), value: shown });
      return true;
    }
    case 'textarea': {
      const value = textContent(el).trim();
      const shown = value || (el.attribs['placeholder'] ? `(placeholder: ${oneLine(el.attribs['placeholder'])})` : '');
      form.fields.push({ label: fieldLabel(el, form), name, type: extras('Text area'), value: shown });
      return true;
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
      form.fields.push({ label: fieldLabel(el, form), name, type, value: options.join('; ') });
      return true;
    }
    case 'button': {
      const kind = oneLine(el.attribs['type'] ?? 'action');
      form.fields.push({ label: oneLine(textContent(el)), name, type: `Button (${kind})`, value: '' });
      return true;
    }
    case 'div': {
      const cls = classesOf(el).find((c) => SELECTOR_CLASSES[c] !== undefined);
      if (!cls) return false;
      const value = oneLine(el.attribs['data-value'] ?? '');
      form.fields.push({ label: fieldLabel(el, form), name, type: extras(SELECTOR_CLASSES[cls]!), value });
      return true;
    }
    default:
      return false;
  }
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
  const form: FormState = { fields: [], ...collectFormLabels(el) };
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

  if (st.form && addField(node, st.form)) return;
  if (isEntityElement(node)) {
    const entity = entityText(node, oneLine(textContent(node)), st);
    if (entity) {
      const block = name === 'p' || BLOCK_TAGS.has(name);
      if (block) {
        out.html.push('<div>');
        out.text.para();
      }
      if (entity.href) emitLink(out, entity.text, entity.href);
      else emitText(out, entity.text, st);
      if (block) {
        out.html.push('</div>');
        out.text.para();
      }
      return;
    }
  }

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
      out.html.push('<p><b>');
      const lines = subText(node.children, out, st, d);
      out.html.push('</b></p>');
      out.text.para();
      out.text.lines(lines);
      out.text.para();
      return;
    }
    if (hasClass(node, 'expandableCardBody') && node.attribs['data-variant'] === 'error') {
      out.text.para();
      emitText(out, '(error)', st);
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
    'h1', 'h2', 'h3', 'h4', 'h5', 'h6',
  ], // prettier-ignore
  allowedAttributes: {
    a: ['href', 'rel'],
    td: ['colspan', 'rowspan'],
    th: ['colspan', 'rowspan'],
    table: [{ name: 'border', multiple: false, values: ['1'] }],
  },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesAppliedToAttributes: ['href'],
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
