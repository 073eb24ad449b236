/**
 * Property tests over random markup, names and entity data (reliability.md §3, §5 tests 25, 27, 28, 31; the
 * issue's bad-input list: CR/LF and bidi overrides in display and room names, `<script>`/`on*`/`javascript:`/CSS
 * tricks, unclosed tags, deep nesting, more than 80 entities, broken `data` JSON, lone UTF-16 surrogates, empty
 * messages, null fields): whatever the input, conversion yields exactly one well-formed message — one From,
 * Date, Message-ID, only the header fields the converter writes (in every part too), CRLF lines of at most 998
 * octets, 7-bit bytes, encoded words of at most 75 characters, names and a Subject free of controls and bidi
 * overrides, an HTML part without active content or remote loads whose every `cid:` image is in the message —
 * or it throws ERR_CONVERT_FAILED. The same input always gives the same bytes, in memory or streamed from files.
 *
 * Runs: PROPERTY_RUNS (default 1,000; the issue's bar is 10,000). Reproduce a failure with PROPERTY_SEED and
 * the printed path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { simpleParser, type AddressObject } from 'mailparser';
import { createSymphonyMimeConverter, MESSAGE_ID_MAX, SOURCE_ATTACHMENT_NAME } from '../../src/convert/index.ts';
import { messageIdFor } from '../../src/core/ids.ts';
import type { ConvertInput } from '../../src/convert/index.ts';
import { addressOf, personName } from '../../src/convert/headers.ts';
import { isAppError } from '../../src/core/errors.ts';
import type { Person } from '../../src/core/types.ts';
import type { V4Message } from '../../src/source/symphony/api-types.ts';
import { OPTIONS, assertWireFormat, danglingCids, headerLines, propertyParams, unsafeHtml } from './helpers.ts';

const params = propertyParams(1000);
const RUNS = params.numRuns;
const converter = createSymphonyMimeConverter();
const dir = mkdtempSync(join(tmpdir(), 'convert-property-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// ---- arbitraries ------------------------------------------------------------------------------------------

/** Any UTF-16 code unit sequence, lone surrogates included (reliability.md §3 row 4). */
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const anyText = fc.string({
  unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), loneSurrogate),
  maxLength: 24,
});

/** Strings that have broken mail systems or viewers before. */
const NASTY = [
  'Alice\r\nBcc: eve@evil.example',
  'Bob\nX-Injected: 1',
  'Carol\rTo: x@evil.example',
  'line\u2028sep\u2029para\u0085nel',
  'invoice\u202Efdp.exe',
  '\u2066isolate\u2069',
  '=?UTF-8?B?PHNjcmlwdD4=?=',
  '"Quoted" \\ back\\slash',
  'a,b;c:<d>@e.example',
  'nul\u0000byte',
  '\ud800lone',
  'tail\udfff',
  '   ',
  '',
  'x'.repeat(1200),
  '利率交易台 — Zoë',
  '--_sym-',
  '<script>alert(1)</script>',
  '&nbsp;&amp;&lt;&#0;&#x202e;',
] as const;

const text = fc.oneof(anyText, fc.string({ unit: 'grapheme', maxLength: 30 }), fc.constantFrom(...NASTY));

const URLS = [
  'javascript:alert(1)',
  ' JaVaScRiPt:alert(1)',
  'java\tscript:alert(1)',
  'vbscript:msgbox(1)',
  'data:text/html,<script>alert(1)</script>',
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+',
  'https://ok.example/a?b="c"&d=<e>',
  'http://tracker.example/pixel.gif',
  '//evil.example/x',
  'mailto:desk@bank.example',
  'https://asset.symphony.com/symphony/audio/chime.mp3',
  'expression(alert(1))',
  'url(https://evil.example/x)',
];
const attrValue = fc.oneof(
  fc.constantFrom(
    ...URLS,
    'entity',
    'card barStyle',
    'expandable-card',
    'cardHeader',
    'info-hint',
    'e0',
    'e1',
    '0',
    '1',
    '3',
    '99999',
  ),
  text,
);
const ATTRS = [
  'href', 'src', 'onclick', 'onerror', 'onload', 'style', 'class', 'data-entity-id', 'colspan', 'rowspan',
  'data-state', 'type', 'name', 'value', 'id', 'for', 'data-language', 'alt', 'data-title', 'data-target-id',
  'xlink:href', 'formaction', 'background', 'srcset', 'data-name', 'checked', 'selected', 'datetime',
] as const; // prettier-ignore
const TAGS = [
  'p', 'div', 'span', 'b', 'i', 'u', 'a', 'ul', 'ol', 'li', 'table', 'thead', 'tbody', 'tr', 'td', 'th', 'pre',
  'code', 'h1', 'h3', 'br', 'hr', 'img', 'audio', 'blockquote', 'time', 'form', 'input', 'select', 'option',
  'textarea', 'button', 'label', 'dialog', 'card', 'expandable-card', 'mention', 'emoji', 'chime',
  'script', 'style', 'iframe', 'svg', 'math', 'object', 'embed', 'template', 'link', 'meta', 'base', 'video',
  'noscript', 'xmp', 'plaintext', 'unknown-tag',
] as const; // prettier-ignore

interface El {
  tag: string;
  attrs: [string, string, number][];
  children: unknown[];
  close: number;
}

const { node } = fc.letrec<{ node: unknown; element: El }>((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, text, tie('element')),
  element: fc.record({
    tag: fc.constantFrom(...TAGS),
    attrs: fc.array(fc.tuple(fc.constantFrom(...ATTRS), attrValue, fc.nat(3)), { maxLength: 3 }),
    children: fc.array(tie('node'), { maxLength: 4 }),
    close: fc.nat(4),
  }),
}));

/** Serialises a tree with every quoting style and, now and then, no closing tag or a broken attribute. */
function serialise(n: unknown): string {
  if (typeof n === 'string') return n;
  const el = n as El;
  const attrs = el.attrs
    .map(([k, v, q]) =>
      q === 0 ? ` ${k}="${v.replace(/"/g, '&quot;')}"` : q === 1 ? ` ${k}='${v}'` : q === 2 ? ` ${k}=${v}` : ` ${k}`,
    )
    .join('');
  const inner = el.children.map(serialise).join('');
  if (el.close === 0) return `<${el.tag}${attrs}>${inner}`;
  if (el.close === 1 && inner === '') return `<${el.tag}${attrs}/>`;
  return `<${el.tag}${attrs}>${inner}</${el.tag}>`;
}

/** Images of every kind `src` takes: remote, relative, `cid:`, `data:` of any type, broken base64. */
const image = fc
  .tuple(
    fc.constantFrom(
      ...URLS,
      'cid:x@evil.example',
      'eur-5y.png',
      'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==',
      'data:image/jpeg;base64,not base64 at all!',
      'data:image/webp;base64,',
    ),
    fc.option(text, { nil: undefined }),
  )
  .map(([src, alt]) => `<img src="${src.replace(/"/g, '&quot;')}"${alt === undefined ? '' : ` alt='${alt}'`}/>`);

/** Nesting far past MAX_DEPTH (reliability.md §3 row 15), closed or not. */
const deep = fc
  .tuple(fc.constantFrom(...TAGS), fc.integer({ min: 60, max: 1500 }), text, fc.boolean())
  .map(([tag, n, t, close]) => `<${tag}>`.repeat(n) + t + (close ? `</${tag}>`.repeat(n) : ''));

const fragment = fc.oneof({ weight: 6, arbitrary: node.map(serialise) }, image, { weight: 1, arbitrary: deep });
const markup = fc.oneof(
  fc
    .array(fragment, { maxLength: 5 })
    .map((ns) => `<div data-format="PresentationML" data-version="2.0">${ns.join('')}</div>`),
  fc.array(fragment, { maxLength: 5 }).map((ns) => ns.join('')),
  text,
);

const SECURITY_IDS = ['ticker', 'isin', 'figi', 'fullBbgTicker', 'exchangeName', 'displayName', 'currency', 'cusip'];
const entity = fc.oneof(
  fc.record({
    type: fc.constant('com.symphony.user.mention'),
    id: fc.array(
      fc.record({
        type: fc.constantFrom('com.symphony.user.userId', 'other'),
        value: fc.oneof(fc.constantFrom(7215545078461, '344147139494862', -1, 1e300, 'x<b>'), text),
      }),
      { maxLength: 2 },
    ),
  }),
  fc.record({
    type: fc.constant('org.symphonyoss.taxonomy'),
    id: fc.array(fc.record({ type: fc.constant('org.symphonyoss.taxonomy.hashtag'), value: text }), { maxLength: 2 }),
  }),
  fc.record({
    type: fc.constant('org.symphonyoss.fin.security'),
    version: fc.constantFrom('1.0', '2.0'),
    id: fc.array(
      fc.record({
        type: fc.constantFrom(...SECURITY_IDS).map((s) => `org.symphonyoss.fin.security.id.${s}`),
        value: text,
      }),
      { maxLength: 8 },
    ),
  }),
  fc.record({
    type: fc.constant('com.symphony.emoji'),
    data: fc.record({ unicode: text, shortcode: text, annotation: text }, { requiredKeys: [] }),
  }),
  fc.record({ type: fc.constant('com.symphony.media.image'), url: fc.oneof(fc.constantFrom(...URLS), text) }),
  fc.record({
    type: fc.constant('com.symphony.media.video'),
    format: fc.oneof(fc.constantFrom('youtube', 'vimeo'), text),
    url: fc.oneof(fc.constantFrom(...URLS), text),
    id: text,
  }),
  fc.record(
    {
      type: fc.constant('com.symphony.article'),
      title: text,
      subTitle: text,
      blurb: text,
      date: fc.oneof(fc.integer(), text),
      publisher: text,
      author: text,
      thumbnail: fc.oneof(fc.constantFrom(...URLS), text),
      href: fc.oneof(fc.constantFrom(...URLS), text),
      id: text,
    },
    { requiredKeys: ['type'] },
  ),
  fc.record({
    type: fc.constant('fdc3.entity.action'),
    label: text,
    actionData: fc.oneof(
      fc.record({ intent: text, context: fc.record({ type: text, name: text, id: fc.dictionary(text, text) }) }),
      fc.jsonValue({ maxDepth: 2 }),
    ),
  }),
  fc.record({
    type: fc.constant('org.symphonyoss'),
    data: fc.record({ type: fc.constant('org.symphonyoss.datetime'), value: text }),
  }),
  fc.jsonValue({ maxDepth: 2 }),
);
const entityKey = fc.constantFrom('e0', 'e1', '0', '1', 'mention1', 'x');
const data = fc.oneof(
  fc.constant(null),
  fc.constant('{}'),
  fc.dictionary(entityKey, entity, { maxKeys: 4 }).map((d) => JSON.stringify(d)),
  // Truncated JSON, as from a cut-off read.
  fc
    .tuple(fc.dictionary(entityKey, entity, { maxKeys: 4 }), fc.nat(200))
    .map(([d, n]) => JSON.stringify(d).slice(0, n)),
  // More than Symphony's 80 entities.
  fc
    .array(entity, { minLength: 81, maxLength: 120 })
    .map((es) => JSON.stringify(Object.fromEntries(es.map((e, i) => [`e${i}`, e])))),
  fc.constant(
    '{"__proto__": {"polluted": true}, "constructor": {"type": "com.symphony.emoji", "data": {"unicode": "x"}}}',
  ),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
);

const userId = fc.oneof(
  fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String),
  fc.constantFrom('7215545078461', '344147139494862'),
  fc.string({ minLength: 1, maxLength: 20 }),
);
const email = fc.oneof(
  fc.emailAddress(),
  fc.constantFrom('bad\r\nBcc: x@evil.example', '"a@b x"@c.example', 'a@b@c.example', 'zoë@ex.example', 'no-at-sign'),
  text,
);
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const person: fc.Arbitrary<Person> = fc.record(
  {
    userId,
    displayName: optional(text),
    firstName: optional(text),
    lastName: optional(text),
    username: optional(text),
    email: optional(email),
  },
  { requiredKeys: ['userId'] },
) as fc.Arbitrary<Person>;

const symphonyId = fc.oneof(
  fc.uint8Array({ minLength: 25, maxLength: 25 }).map((b) => Buffer.from(b).toString('base64url')),
  fc.uint8Array({ minLength: 25, maxLength: 25 }).map((b) => Buffer.from(b).toString('base64')),
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.constantFrom(...NASTY.filter((s) => s.trim() !== '')),
);
const timestamp = fc.oneof(
  fc.integer({ min: 1_400_000_000_000, max: 1_900_000_000_000 }),
  fc.integer({ min: -8.64e15, max: 8.64e15 }),
  fc.constantFrom(0, -1, 253402300800000),
);
const streamType = fc.constantFrom('IM', 'MIM', 'ROOM', 'POST', 'WEIRD', '', 'ROOM\r\nX: 1');

const attachment = fc.record({
  id: fc.oneof(symphonyId, fc.constant('internal_14362370637825/T2vTuh+gWTtZFQtI/HDXYg==')),
  name: fc.oneof(
    text,
    fc.constantFrom(
      '../../etc/passwd',
      '..\\..\\win.ini',
      'C:\\x.pdf',
      'r\u202Efdp.exe',
      'Überblick Q2.pdf',
      'x'.repeat(400) + '.pdf',
      'con',
      '',
    ),
  ),
  content: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
});

/** Absent, or null as the agent sends an empty field (symphony-api.md §4.3 sample). */
const nullable = <T>(arb: fc.Arbitrary<T>) => fc.oneof(fc.constant(undefined), fc.constant(null), arb);

const baseMessage = fc.record({
  messageId: symphonyId,
  timestamp,
  message: fc.option(markup, { nil: null }),
  data,
  disclaimer: nullable(text),
  diagnostic: nullable(text),
  parentMessageId: nullable(symphonyId),
  replacing: nullable(symphonyId),
  initialMessageId: nullable(symphonyId),
  initialTimestamp: nullable(timestamp),
  replacedBy: nullable(symphonyId),
  attachments: nullable(
    fc.array(fc.oneof(fc.record({ id: symphonyId, name: text, size: fc.nat() }), fc.constant(null)), { maxLength: 2 }),
  ),
});

const input: fc.Arbitrary<ConvertInput> = fc
  .record({
    message: baseMessage,
    shared: optional(baseMessage),
    sender: person,
    others: fc.array(person, { maxLength: 6 }),
    senderIsParticipant: fc.boolean(),
    stream: fc.record({ id: symphonyId, type: streamType, name: optional(text) }),
    attachments: fc.array(attachment, { maxLength: 3 }),
    template: optional(
      fc.oneof(text, fc.constantFrom('{room} / {participants}{label}', '{sender}: {type} {streamId} {nope}')),
    ),
    event: fc.oneof(
      fc.constant(undefined),
      fc.record({
        kind: fc.constant('suppression' as const),
        id: symphonyId,
        by: optional(person),
        at: optional(timestamp),
      }),
      fc.record({
        kind: fc.constant('action' as const),
        id: symphonyId,
        formId: text,
        values: fc.dictionary(text, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
      }),
    ),
  })
  .map((g) => {
    const message: V4Message = {
      ...(g.message as unknown as Omit<V4Message, 'user' | 'stream'>),
      user: {
        userId: g.sender.userId,
        displayName: g.sender.displayName ?? null,
        email: g.sender.email ?? null,
        firstName: null,
        lastName: null,
      },
      stream: { streamId: g.stream.id, streamType: g.stream.type, roomName: g.stream.name ?? null, members: null },
      sharedMessage: g.shared
        ? ({ ...g.shared, user: { userId: 1 }, stream: { streamId: 'x' } } as unknown as V4Message)
        : null,
    };
    const result: ConvertInput = {
      message,
      conversation: {
        id: g.stream.id,
        type: g.stream.type,
        ...(g.stream.name === undefined ? {} : { name: g.stream.name }),
      },
      sender: g.sender,
      participants: g.senderIsParticipant ? [g.sender, ...g.others] : g.others,
      attachments: g.attachments,
      options: { ...OPTIONS, ...(g.template === undefined ? {} : { subjectTemplate: g.template }) },
    };
    if (g.event?.kind === 'suppression') {
      result.suppression = {
        messageId: g.event.id,
        ...(g.event.by ? { suppressedBy: g.event.by } : {}),
        ...(g.event.at === undefined ? {} : { suppressedAt: g.event.at }),
      };
    } else if (g.event?.kind === 'action') {
      result.elementsAction = { formMessageId: g.event.id, formId: g.event.formId, formValues: g.event.values };
    }
    return result;
  });

// ---- the invariants ------------------------------------------------------------------------------------------

/** The header fields the converter writes; anything else in the output would be injected. */
const ALLOWED_HEADERS =
  /^(From|To|Subject|Date|Message-ID|In-Reply-To|References|MIME-Version|Content-Type|X-Symphony-[A-Za-z-]+)$/;
const ONCE = ['From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type'];

function addresses(a: AddressObject | AddressObject[] | undefined): { name: string; address: string }[] {
  return (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) =>
    o.value.map((v) => ({ name: v.name, address: v.address ?? '' })),
  );
}

/** Header fields a MIME part may have: the converter writes these and no others. */
const PART_HEADERS = new Set([
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'content-id',
  'x-symphony-attachment-id',
]);
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_HEADER = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

let files = 0;
/** The same input with its attachments in files, as the pipeline streams large ones (mime-stream.ts). */
function inFiles(i: ConvertInput): ConvertInput {
  return {
    ...i,
    attachments: i.attachments.map((a) => {
      const path = join(dir, `a${files++}`);
      writeFileSync(path, a.content as Buffer);
      return { ...a, content: { path, size: (a.content as Buffer).length } };
    }),
  };
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}

async function checkInvariants(i: ConvertInput): Promise<void> {
  let item;
  try {
    item = await converter.convert(i);
  } catch (err) {
    assert.ok(isAppError(err, 'ERR_CONVERT_FAILED'), `only ERR_CONVERT_FAILED may escape, got ${String(err)}`);
    // Only input without an id (or one too long for a Message-ID), a time or an author is unconvertible.
    const ts = i.message.timestamp;
    const id = i.message.messageId;
    assert.ok(
      id.trim() === '' ||
        messageIdFor(id, OPTIONS.messageIdDomain).length > MESSAGE_ID_MAX ||
        !Number.isFinite(ts) ||
        i.sender.userId.trim() === '',
      `convertible input rejected: ${String(err)}`,
    );
    return;
  }

  const raw = item.raw;
  assert.equal(assertWireFormat(raw), undefined);
  assert.ok(
    raw.every((b) => b < 0x80),
    'the whole message is 7-bit',
  );
  const again = await converter.convert(i);
  assert.ok(again.raw.equals(raw), 'same input, same bytes');
  if (i.attachments.length > 0) {
    const streamed = await converter.convertStreamed(inFiles(i));
    assert.equal(streamed.size, raw.length, 'streamed size');
    assert.ok((await collect(streamed.chunks())).equals(raw), 'streamed from files, the same bytes');
  }

  const head = raw.toString('latin1', 0, raw.indexOf('\r\n\r\n'));
  for (const w of head.match(/=\?[^?\s]+\?[QB]\?[^?\s]*\?=/g) ?? []) assert.ok(w.length <= 75, `encoded word ${w}`);
  const names = headerLines(raw).map((l) => l.slice(0, l.indexOf(':')));
  for (const n of names) assert.match(n, ALLOWED_HEADERS);
  for (const n of ONCE) assert.equal(names.filter((x) => x === n).length, 1, `${n} exactly once`);
  assert.equal(new Set(names).size, names.length, 'no header field twice');

  const mail = await simpleParser(raw, { keepCidLinks: true });
  assert.equal(mail.messageId, `<${item.messageId}>`);
  assert.match(item.messageId, /^sym\.[a-z0-9]+@archive\.example\.com$/);
  const from = addresses(mail.from);
  assert.equal(from.length, 1);
  const expected = addressOf(i.sender, OPTIONS.syntheticDomain);
  assert.deepEqual(from[0], { name: personName(i.sender), address: expected.address });
  assert.ok(
    mail.date instanceof Date && !Number.isNaN(mail.date.getTime()),
    'mail.date instanceof Date && !Number.isNaN(mail.date.getTime())',
  );
  assert.ok(addresses(mail.to).length >= 1, 'addresses(mail.to).length >= 1');
  for (const shown of [mail.subject ?? '', ...[...addresses(mail.from), ...addresses(mail.to)].map((a) => a.name)]) {
    assert.doesNotMatch(shown, UNSAFE_IN_HEADER, `no control or bidi override in ${JSON.stringify(shown)}`);
  }

  const html = typeof mail.html === 'string' ? mail.html : '';
  assert.equal(unsafeHtml(html), undefined);
  assert.deepEqual(
    danglingCids(
      html,
      mail.attachments.map((a) => a.cid),
    ),
    [],
    'every cid: image the HTML shows is a part of the message',
  );
  const last = mail.attachments[mail.attachments.length - 1];
  assert.equal(last?.filename, SOURCE_ATTACHMENT_NAME);
  for (const a of mail.attachments) {
    for (const h of a.headers.keys()) assert.ok(PART_HEADERS.has(h), `part header ${h}`);
    assert.ok(
      // eslint-disable-next-line no-control-regex
      a.filename && !/[/\\\u0000-\u001f\u202a-\u202e\u2066-\u2069]/.test(a.filename),
      `file name ${a.filename}`,
    );
    assert.ok(
      Buffer.byteLength(a.filename) <= 255,
      `file name of ${Buffer.byteLength(a.filename)} bytes: ${a.filename}`,
    );
  }
}

describe('conversion invariants (fast-check)', () => {
  it(`holds for random messages, names, markup and entity data (${RUNS} runs)`, { timeout: 30 * 60_000 }, async () => {
    await fc.assert(fc.asyncProperty(input, checkInvariants), params);
  });

  it('holds for markup alone, in a plain room message', { timeout: 30 * 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(markup, data, async (m, d) => {
        await checkInvariants({
          message: {
            messageId: 'E_U_0jnuzmQcBOr1CIGPqX___ouMNdY5bQ',
            timestamp: 1599670462918,
            message: m,
            data: d,
            user: { userId: 7215545078461 },
            stream: { streamId: 'gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA', streamType: 'ROOM' },
          },
          conversation: { id: 'gXFV8vN37dNqjojYS_y2wX___o2KxfmUdA', type: 'ROOM', name: 'Rates Desk' },
          sender: { userId: '7215545078461', displayName: 'Alice Martin', email: 'alice.martin@bank.example' },
          participants: [],
          attachments: [],
          options: { ...OPTIONS },
        });
      }),
      params,
    );
  });
});
