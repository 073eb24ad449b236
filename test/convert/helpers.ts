import { readFileSync, readdirSync } from 'node:fs';
import type fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import type { ConvertInput } from '../../src/convert/converter.ts';
import type { V4Message } from '../../src/source/symphony/api-types.ts';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/convert/', import.meta.url));

export const OPTIONS = { messageIdDomain: 'archive.example.com', syntheticDomain: 'symphony.invalid' } as const;

/**
 * fast-check parameters for a property: PROPERTY_RUNS cases when set (the bar is 10,000), else the
 * test's own default, sized so that test/convert stays within a minute in CI; PROPERTY_SEED replays a failure.
 */
export function propertyParams(defaultRuns: number, defaultSeed?: number): fc.Parameters<unknown> {
  const runs = process.env['PROPERTY_RUNS'];
  const seed = process.env['PROPERTY_SEED'] ?? defaultSeed;
  return {
    numRuns: runs === undefined ? defaultRuns : Number(runs),
    includeErrorInReport: true,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
  };
}

/**
 * Fixture files hold a ConvertInput whose attachment contents are base64 strings (JSON has no Buffer) and
 * whose options, if any, are merged over {@link OPTIONS}.
 */
interface FixtureFile extends Omit<ConvertInput, 'attachments' | 'options'> {
  attachments: { id: string; name: string; contentBase64: string }[];
  options?: Partial<ConvertInput['options']>;
}

/** Every fixture input in the directory (`*.json`), sorted. */
export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function loadFixture(name: string): ConvertInput {
  const file = JSON.parse(readFileSync(`${FIXTURE_DIR}${name}.json`, 'utf8')) as FixtureFile;
  return {
    ...file,
    attachments: file.attachments.map((a) => ({
      id: a.id,
      name: a.name,
      content: Buffer.from(a.contentBase64, 'base64'),
    })),
    options: { ...OPTIONS, ...file.options },
  };
}

export const ALICE = { userId: '7215545078461', displayName: 'Alice Martin', email: 'alice.martin@bank.example' };
export const BOB = { userId: '344147139494862', displayName: 'Bob Chen', email: 'bob.chen@bank.example' };
export const CAROL = { userId: '68719476737', firstName: 'Carol', lastName: 'Ng' };

/** A plain ROOM message from Alice to Bob and Carol; tests override what they need. */
export function baseInput(overrides: Partial<V4Message> = {}, rest: Partial<ConvertInput> = {}): ConvertInput {
  const message: V4Message = {
    messageId: 'E_U_0jnuzmQcBOr1CIGPqX___ouMNdY5bQ',
    timestamp: 1599670462918,
    message: '<div data-format="PresentationML" data-version="2.0"><p>Hello, World!</p></div>',
    data: null,
    attachments: null,
    user: { userId: 7215545078461, displayName: 'Alice Martin', email: 'alice.martin@bank.example' },
    stream: { streamId: 'gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA', streamType: 'ROOM', roomName: 'Rates Desk' },
    ...overrides,
  };
  return {
    message,
    conversation: { id: 'gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA', type: 'ROOM', name: 'Rates Desk' },
    sender: ALICE,
    participants: [ALICE, BOB, CAROL],
    attachments: [],
    options: { ...OPTIONS },
    ...rest,
  };
}

/** The header section of a raw message, unfolded (RFC 5322 §2.2.3), one entry per field. */
export function headerLines(raw: Buffer): string[] {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return text
    .slice(0, end)
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n');
}

export function countHeader(raw: Buffer, name: string): number {
  const prefix = `${name.toLowerCase()}:`;
  return headerLines(raw).filter((l) => l.toLowerCase().startsWith(prefix)).length;
}

/** RFC 5322 §2.1.1 / §2.3: CRLF only, no line over 998 octets, no NUL. */
export function assertWireFormat(raw: Buffer): string | undefined {
  const text = raw.toString('latin1');
  if (/[^\r]\n|^\n/.test(text)) return 'bare LF';
  if (/\r(?!\n)/.test(text)) return 'bare CR';
  if (text.includes('\0')) return 'NUL';
  const long = text.split('\r\n').find((l) => l.length > 998);
  if (long !== undefined) return `line of ${long.length} octets`;
  return undefined;
}

/** The only elements the HTML part may contain: the renderer's allow-list and the fixed document shell. */
const SAFE_TAGS = new Set([
  'html', 'head', 'meta', 'body', 'p', 'div', 'span', 'br', 'hr', 'b', 'strong', 'i', 'em', 'u', 's', 'sub', 'sup',
  'ul', 'ol', 'li', 'table', 'thead', 'tbody', 'tfoot', 'tr', 'td', 'th', 'pre', 'code', 'blockquote', 'a',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'img',
]); // prettier-ignore
const SAFE_ATTRIBUTES = new Set(['href', 'rel', 'colspan', 'rowspan', 'border', 'charset', 'src', 'alt']);

/**
 * Returns why `html` is not inert, or undefined: every `<` opens an allow-listed tag (text `<` is escaped),
 * no attribute other than href/rel/colspan/rowspan/border/src/alt (so no `on*`, `style`, `background`), every
 * href an absolute http(s) or mailto URL on an `<a>`, and every src a `cid:` URL on an `<img>`: a part of the
 * message itself, never a remote load (reliability.md §3 row 3). Parse with mailparser's `keepCidLinks`, which
 * otherwise rewrites `cid:` to `data:`.
 */
export function unsafeHtml(html: string): string | undefined {
  const body = html.replace(/^<!DOCTYPE html>\n/, '');
  const tag = /<(\/?)([A-Za-z][A-Za-z0-9]*)((?:\s+[^\s="'<>/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'))?)*)\s*(\/?)>/y;
  for (let i = body.indexOf('<'); i >= 0; i = body.indexOf('<', i + 1)) {
    tag.lastIndex = i;
    const m = tag.exec(body);
    if (!m) return `"<" that opens no tag at ${i}: ${body.slice(i, i + 40)}`;
    const name = m[2]!.toLowerCase();
    if (!SAFE_TAGS.has(name)) return `element <${name}>`;
    for (const a of m[3]!.matchAll(/([^\s=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'))?/g)) {
      const attr = a[1]!.toLowerCase();
      const value = a[2] ?? a[3] ?? '';
      if (!SAFE_ATTRIBUTES.has(attr)) return `attribute ${attr} on <${name}>`;
      if (attr === 'href' && (name !== 'a' || !/^(https?:\/\/|mailto:)/.test(value))) return `href ${value}`;
      if (attr === 'src' && (name !== 'img' || !/^cid:[^\s]+$/.test(value))) return `src ${value.slice(0, 60)}`;
    }
    if (name === 'img' && !/\ssrc="cid:/.test(m[3]!)) return 'an <img> without a cid: source';
  }
  return undefined;
}

/**
 * The `cid:` URLs the HTML refers to that no part of the message carries as its Content-ID (RFC 2392: the URL is
 * the Content-ID, URL-encoded). Empty when every inline image the HTML shows is in the message.
 */
export function danglingCids(html: string, contentIds: readonly (string | undefined)[]): string[] {
  const ids = new Set(contentIds.filter((c) => c !== undefined).map((c) => c.replace(/^<|>$/g, '')));
  // Text `<` is escaped, so `<img` starts a tag; `src="cid:` in text is no reference.
  return [...html.matchAll(/<img\s[^>]*?src="cid:([^"]+)"/g)]
    .map((m) => decodeURIComponent(m[1]!.replace(/&amp;/g, '&')))
    .filter((cid) => !ids.has(cid));
}
