/**
 * PresentationML rendering (symphony-api.md §6) in isolation: both bodies of each construct, the allow-list
 * under hostile markup (reliability.md §3 row 3) and pathological nesting (row 15).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEntities } from '../../src/convert/entities.ts';
import {
  MAX_DEPTH,
  renderPresentation,
  safeHref,
  sanitize,
  wellFormednessProblems,
  type RenderContext,
} from '../../src/convert/presentation.ts';
import { TextOut, displayWidth, layoutTable } from '../../src/convert/text.ts';
import { ALICE, BOB, CAROL, unsafeHtml } from './helpers.ts';

const people = new Map([ALICE, BOB, CAROL].map((p) => [p.userId, p]));

function render(markup: string, data: unknown = null) {
  const entities = parseEntities(data);
  const ctx: RenderContext = { entities: entities.byId, people };
  const r = renderPresentation(markup, ctx);
  return { ...r, html: sanitize(r.html), warnings: [...entities.warnings, ...r.warnings] };
}

const pml = (body: string) => `<div data-format="PresentationML" data-version="2.0">${body}</div>`;

describe('entities', () => {
  it('shows a mention with the name and email, or the user id when there is no email', () => {
    const data = {
      m1: { type: 'com.symphony.user.mention', id: [{ type: 'com.symphony.user.userId', value: 344147139494862 }] },
      m2: { type: 'com.symphony.user.mention', id: [{ type: 'com.symphony.user.userId', value: '68719476737' }] },
      m3: { type: 'com.symphony.user.mention', id: [{ type: 'com.symphony.user.userId', value: '42' }] },
      m4: { type: 'com.symphony.user.mention', id: [{ type: 'com.symphony.user.userId', value: '43' }] },
    };
    const r = render(
      pml(
        '<span class="entity" data-entity-id="m1">@Bob Chen</span> <span class="entity" data-entity-id="m2">@Carol</span> ' +
          '<span class="entity" data-entity-id="m3">@Ghost</span> <span class="entity" data-entity-id="m4"></span>',
      ),
      JSON.stringify(data),
    );
    assert.equal(
      r.text,
      '@Bob Chen <bob.chen@bank.example> @Carol (Symphony user 68719476737) @Ghost (Symphony user 42) ' +
        '@user 43 (Symphony user 43)',
    );
    assert.match(r.html, /@Bob Chen &lt;bob\.chen@bank\.example&gt;/);
  });

  it('shows hashtags, legacy and enhanced cashtags, emoji as Unicode', () => {
    const data = {
      h: { type: 'org.symphonyoss.taxonomy', id: [{ type: 'org.symphonyoss.taxonomy.hashtag', value: 'rates' }] },
      c: {
        type: 'org.symphonyoss.fin.security',
        id: [{ type: 'org.symphonyoss.fin.security.id.ticker', value: 'ibm' }],
      },
      e: {
        type: 'org.symphonyoss.fin.security',
        version: '2.0',
        id: [
          { type: 'org.symphonyoss.fin.security.id.ticker', value: 'VOD' },
          { type: 'org.symphonyoss.fin.security.id.isin', value: 'GB00BH4HKS39' },
          { type: 'org.symphonyoss.fin.security.exchangeName', value: 'London Stock Exchange' },
          { type: 'org.symphonyoss.fin.security.currency', value: 'GBp' },
        ],
      },
      j: { type: 'com.symphony.emoji', data: { annotation: 'grinning', unicode: '😀' } },
    };
    const r = render(
      pml(
        '<span class="hashTag" data-entity-id="h">#rates</span> <span class="cashTag" data-entity-id="c">$ibm</span> ' +
          '<span class="entity" data-entity-id="e">$VOD</span> <span class="entity" data-entity-id="j">:grinning:</span>',
      ),
      JSON.stringify(data),
    );
    assert.equal(r.text, '#rates $ibm $VOD (Exchange: London Stock Exchange; Currency: GBp; ISIN: GB00BH4HKS39) 😀');
  });

  it('falls back to the visible text on broken entity JSON and says so', () => {
    const r = render(pml('<span class="entity" data-entity-id="0">@Bob</span>'), '{"0": {"type": "com.sym');
    assert.equal(r.text, '@Bob');
    assert.ok(
      r.warnings.some((w) => /not valid JSON/.test(w)),
      'r.warnings.some((w) => /not valid JSON/.test(w))',
    );
  });

  it('renders more than the 80 entities Symphony allows, each once', () => {
    const data = Object.fromEntries(
      Array.from({ length: 200 }, (_, i) => [
        `h${i}`,
        { type: 'org.symphonyoss.taxonomy', id: [{ type: 'org.symphonyoss.taxonomy.hashtag', value: `t${i}` }] },
      ]),
    );
    const spans = Array.from({ length: 200 }, (_, i) => `<span class="entity" data-entity-id="h${i}"></span>`).join(
      ' ',
    );
    const r = render(pml(spans), JSON.stringify(data));
    assert.equal(r.text.split(' ').length, 200);
    assert.match(r.text, /^#t0 #t1 .* #t199$/);
  });

  it('ignores __proto__ keys in entity data', () => {
    const parsed = parseEntities('{"__proto__": {"type": "com.symphony.emoji", "data": {"unicode": "x"}}}');
    assert.equal(({} as Record<string, unknown>)['type'], undefined);
    assert.equal(parsed.byId.get('__proto__')?.kind, 'emoji');
  });
});

describe('standard entities', () => {
  it('marks media links as image or video, with the video id when there is no text', () => {
    const data = {
      v: { type: 'com.symphony.media.video', format: 'vimeo', url: 'https://vimeo.com/1', id: '1' },
      w: { type: 'com.symphony.media.video', format: 'youtube', url: 'https://youtu.be/x', id: 'x' },
      i: { type: 'com.symphony.media.image', format: 'image', url: 'https://e.example/i.png' },
    };
    const r = render(
      pml(
        '<span class="entity" data-entity-id="v">Talk</span> <span class="entity" data-entity-id="w"></span> ' +
          '<span class="entity" data-entity-id="i"></span>',
      ),
      JSON.stringify(data),
    );
    assert.equal(
      r.text,
      'Talk [Vimeo video] (https://vimeo.com/1) [YouTube video x] (https://youtu.be/x) [image] (https://e.example/i.png)',
    );
  });

  it('shows an article as a card, an FDC3 action with its intent, and what the data tags beyond the text', () => {
    const data = {
      a: { type: 'com.symphony.article', title: 'T', href: 'javascript:alert(1)', date: 1718236800000, author: 'A' },
      f: { type: 'fdc3.entity.action', label: 'Go', actionData: { intent: 'ViewNews' } },
      h: { type: 'org.symphonyoss.taxonomy', id: [{ type: 'org.symphonyoss.taxonomy.hashtag', value: 'eur' }] },
      c: {
        type: 'org.symphonyoss.fin.security',
        version: '2.0',
        id: [
          { type: 'org.symphonyoss.fin.security.id.ticker', value: 'VOD' },
          { type: 'org.symphonyoss.fin.security.country', value: 'GB' },
          { type: 'org.symphonyoss.fin.security.rootBbgCompTicker', value: 'VOD LN' },
        ],
      },
    };
    const r = render(
      pml(
        '<div class="entity" data-entity-id="a"></div><span class="entity" data-entity-id="f">fallback</span> ' +
          '<span class="entity" data-entity-id="h">#EUR</span> <span class="entity" data-entity-id="c">$VOD.L</span>',
      ),
      JSON.stringify(data),
    );
    assert.equal(
      r.text,
      '| Article: T\n|\n| by A, published 2024-06-13T00:00:00.000Z\n\n' +
        '[Action button "Go": raises intent ViewNews] #EUR $VOD.L (Ticker: VOD; Bloomberg root: VOD LN; Country: GB)',
    );
    assert.equal(unsafeHtml(r.html), undefined, r.html);
  });
});

describe('markup', () => {
  it('lays out tables as aligned text, spans included, and counts wide characters as two columns', () => {
    assert.deepEqual(
      layoutTable([
        { header: true, cells: ['a', 'bb', 'c'].map((text) => ({ text, colspan: 1, rowspan: 1 })) },
        {
          header: false,
          cells: [
            { text: '利率', colspan: 1, rowspan: 2 },
            { text: 'wide cell', colspan: 2, rowspan: 1 },
          ],
        },
        { header: false, cells: ['x', 'y'].map((text) => ({ text, colspan: 1, rowspan: 1 })) },
      ]),
      // "wide cell" spans two columns and widens the last of them.
      ['a    | bb | c', '-----+----+-----', '利率 | wide cell', '     | x  | y'],
    );
    assert.equal(displayWidth('a利😀\u0301'), 5);
  });

  it('writes code blocks fenced with their language, inline code in backticks', () => {
    const r = render(pml('<p>Call <code>f()</code>:</p><code data-language="js">const a = 1;\nf(a);</code>'));
    assert.equal(r.text, 'Call `f()`:\n\n```js\nconst a = 1;\nf(a);\n```');
    assert.match(r.html, /<pre><code>const a = 1;\nf\(a\);<\/code><\/pre>/);
  });

  it('shows links as "text (url)" and drops those with an unsafe scheme', () => {
    const r = render(
      pml('<a href="https://x.example/a">doc</a> <a href="javascript:alert(1)">bad</a> <a href="/relative">rel</a>'),
    );
    assert.equal(r.text, 'doc (https://x.example/a) bad rel');
    assert.equal(r.html, '<div><a href="https://x.example/a" rel="noopener noreferrer">doc</a> bad rel</div>');
  });

  it('accepts only absolute http(s) and mailto URLs', () => {
    for (const bad of [
      'javascript:alert(1)',
      ' JaVaScRiPt:x',
      'java\nscript:x',
      'data:text/html,x',
      'vbscript:x',
      '//e.example',
      'x',
      '',
    ]) {
      assert.equal(safeHref(bad), undefined, bad);
    }
    assert.equal(safeHref('https://e.example/?q="a"'), 'https://e.example/?q=%22a%22');
    assert.equal(safeHref('mailto:a@b.example'), 'mailto:a@b.example');
  });

  it('never emits an image: URLs become links, data: images attachments, anything else a label', () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
    const r = render(
      pml(
        `<img src="https://e.example/a.png" alt="chart"/><img src="data:image/png;base64,${png}"/>` +
          '<img src="data:image/svg+xml;base64,PHN2Zz4="/><img src="cid:x"/>',
      ),
    );
    assert.equal(r.text, '[image: chart] (https://e.example/a.png)[image, attached as image-1.png][image][image]');
    assert.equal(r.images.length, 1);
    assert.equal(r.images[0]!.contentType, 'image/png');
    assert.doesNotMatch(r.html, /<img|src=/);
  });

  it('shows a data: image by cid when the caller assigns Content-IDs; a URL or cid: in the markup is never an image', () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
    const entities = parseEntities(
      JSON.stringify({ i: { type: 'com.symphony.media.image', url: `data:image/png;base64,${png}` } }),
    );
    const r = renderPresentation(
      pml(
        `<img src="https://e.example/a.png"/><img src="data:image/png;base64,${png}" alt='"x"'/>` +
          '<img src="cid:other@evil.example"/><div class="entity" data-entity-id="i">logo</div>',
      ),
      { entities: entities.byId, people, contentIdFor: (f) => `${f}.m@archive.example` },
    );
    assert.deepEqual(
      r.images.map((i) => [i.filename, i.contentId]),
      [
        ['image-1.png', 'image-1.png.m@archive.example'],
        ['image-2.png', 'image-2.png.m@archive.example'],
      ],
    );
    const html = sanitize(r.html);
    assert.equal(
      html,
      '<div><a href="https://e.example/a.png" rel="noopener noreferrer">[image]</a>' +
        '<img src="cid:image-1.png.m@archive.example" alt="&quot;x&quot;" />[image]' +
        '<div><img src="cid:image-2.png.m@archive.example" alt="logo" /></div></div>',
    );
    assert.equal(
      r.text,
      '[image] (https://e.example/a.png)[image: "x", image-1.png][image]\n\n[image: logo, image-2.png]',
    );
  });

  it('lets no image through the sanitizer but one shown by cid:', () => {
    assert.equal(
      sanitize(
        '<img src="https://evil.example/t.gif"><img src="t.gif"><img src="//evil.example/t.gif"><img>' +
          '<img src="data:image/png;base64,AAAA"><img src="cid:a@b" onerror="alert(1)" width="1">',
      ),
      '<img src="cid:a@b" />',
    );
  });

  it('renders a chime as a label and drops other audio and video', () => {
    const r = render(
      pml('<audio src="https://asset.symphony.com/symphony/audio/chime.mp3" autoplay="true"/><video src="https://v"/>'),
    );
    assert.equal(r.text, '[Chime]');
  });

  it('reports where strict XML would fail: HTML entities, unbalanced tags, bare < and &', () => {
    assert.deepEqual(wellFormednessProblems(pml('<p>a&amp;b&#160;<br>c<img src="x"></p>')), []);
    assert.deepEqual(wellFormednessProblems(pml('<p>a&nbsp;b & c</p>')), ['HTML-only entity &nbsp;', 'bare "&"']);
    assert.deepEqual(wellFormednessProblems('<div><b>x</div>'), ['unclosed <b>']);
    assert.deepEqual(wellFormednessProblems('x</p><'), ['stray </p>', 'bare "<"']);
  });

  it('collapses white space and keeps paragraphs one blank line apart', () => {
    const t = new TextOut();
    t.inline('  a \n b ');
    t.para();
    t.para();
    t.inline(' c');
    t.br();
    t.inline('d');
    assert.equal(t.toString(), 'a b\n\nc\nd');
  });
});

describe('hostile markup', () => {
  const VECTORS = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href=" &#14;javascript:alert(1)">x</a>',
    '<svg><script>alert(1)</script></svg>',
    '<svg onload=alert(1)>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>',
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<p style="background:url(https://evil.example/t.gif)">x</p>',
    '<div style="width: expression(alert(1))">x</div>',
    '<style>@import url(https://evil.example/x.css)</style>',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<form action="https://evil.example"><button formaction="javascript:alert(1)">x</button></form>',
    '<table background="https://evil.example/t.gif"><tr><td background="x">x</td></tr></table>',
    '<a href="https://ok.example/&quot;onmouseover=&quot;alert(1)">x</a>',
    '<p title="</p><script>alert(1)</script>">x</p>',
    '<!--<script>alert(1)</script>-->',
    '<![CDATA[<script>alert(1)</script>]]>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<xmp><script>alert(1)</script></xmp>',
    '<template><script>alert(1)</script></template>',
    '<a href="https://ok.example" target="_blank" ping="https://evil.example">x</a>',
    '<span class="entity" data-entity-id="0"><img src=x onerror=alert(1)></span>',
  ];

  for (const v of VECTORS) {
    it(`neutralises ${v.slice(0, 60)}`, () => {
      const r = render(pml(v), JSON.stringify({ '0': { type: 'org.symphonyoss.taxonomy', id: [] } }));
      assert.equal(unsafeHtml(r.html), undefined, r.html);
    });
  }

  it('renders entity values only as escaped text', () => {
    const data = {
      h: {
        type: 'org.symphonyoss.taxonomy',
        id: [{ type: 'org.symphonyoss.taxonomy.hashtag', value: '<img src=x onerror=alert(1)>' }],
      },
      i: { type: 'com.symphony.media.image', url: 'javascript:alert(1)' },
    };
    const r = render(
      pml('<span class="entity" data-entity-id="h"></span><div class="entity" data-entity-id="i"></div>'),
      JSON.stringify(data),
    );
    assert.equal(unsafeHtml(r.html), undefined, r.html);
    assert.match(r.html, /#&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.equal(r.text, '#<img src=x onerror=alert(1)>\n\n[image]');
  });

  for (const [name, open, close] of [
    ['div', '<div>', '</div>'],
    ['list', '<ul><li>', '</li></ul>'],
    ['table', '<table><tr><td>', '</td></tr></table>'],
    ['quote', '<blockquote>', '</blockquote>'],
    ['card', '<div class="card"><div class="cardBody">', '</div></div>'],
    ['unclosed b', '<b>', ''],
  ] as const) {
    it(`survives 10,000 nested ${name} elements`, () => {
      const depth = 10_000;
      const markup = pml(open.repeat(depth) + 'deep' + close.repeat(depth));
      const t0 = performance.now();
      const r = render(markup);
      const ms = performance.now() - t0;
      assert.match(r.text, /deep/);
      assert.ok(ms < 5000, `${ms} ms`);
      assert.ok(r.html.length < 50 * MAX_DEPTH * 10, `html ${r.html.length} chars`);
      if (name !== 'unclosed b')
        assert.ok(
          r.warnings.some((w) => /nested deeper/.test(w)),
          'r.warnings.some((w) => /nested deeper/.test(w))',
        );
      assert.equal(unsafeHtml(r.html), undefined);
    });
  }
});

describe('Symphony Elements', () => {
  it('lists the fields of a form as a table, labels and tooltips from their group', () => {
    const r = render(
      pml(
        '<form id="f"><p>Fill in:</p><div class="textfield-group"><label for="t1">Amount</label>' +
          '<span class="info-hint" data-target-id="t1" data-title="EUR"></span><input type="text" name="amt" value="5" id="t1"/></div>' +
          '<div class="room-selector" data-name="room"></div><button type="action" name="go">Go</button></form>',
      ),
    );
    assert.equal(
      r.text,
      'Symphony Elements form "f":\n\nFill in:\n\n' +
        'Field              | Name | Type            | Default / options\n' +
        '-------------------+------+-----------------+------------------\n' +
        'Amount (hint: EUR) | amt  | Text field      | 5\n' +
        '                   | room | Room selector   |\n' +
        'Go                 | go   | Button (action) |',
    );
    assert.match(r.html, /<td>Amount \(hint: EUR\)<\/td><td>amt<\/td><td>Text field<\/td><td>5<\/td>/);
    assert.doesNotMatch(r.html, /<input|<button|<label/);
  });
});
