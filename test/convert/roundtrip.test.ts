/**
 * Round trip through an independent MIME parser (mailparser, destinations.md §3 "Round-trip verification"):
 * every fixture is converted, parsed back, and its headers, bodies and attachments are compared with what
 * the input said. The golden files pin the bytes; these tests pin the meaning.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { createSymphonyMimeConverter, SOURCE_ATTACHMENT_NAME } from '../../src/convert/index.ts';
import type { ConvertInput, ConvertedItem } from '../../src/convert/index.ts';
import { messageIdFor } from '../../src/core/ids.ts';
import {
  OPTIONS,
  assertWireFormat,
  countHeader,
  danglingCids,
  fixtureNames,
  loadFixture,
  unsafeHtml,
} from './helpers.ts';

const converter = createSymphonyMimeConverter();

function addresses(a: AddressObject | AddressObject[] | undefined): { name: string; address: string }[] {
  return (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) =>
    o.value.map((v) => ({ name: v.name, address: v.address ?? '' })),
  );
}

const mid = (symphonyId: string) => `<${messageIdFor(symphonyId, OPTIONS.messageIdDomain)}>`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function convertFixture(name: string): Promise<{ input: ConvertInput; item: ConvertedItem; mail: ParsedMail }> {
  const input = loadFixture(name);
  const item = await converter.convert(input);
  return { input, item, mail: await simpleParser(item.raw, { keepCidLinks: true }) };
}

/** What each fixture must show after parsing: subject, text and HTML fragments, threading. */
const EXPECT: Record<
  string,
  { subject: string; text?: (string | RegExp)[]; html?: string[]; inReplyTo?: string; references?: string[] }
> = {
  'room-plain': { subject: '[Symphony] Rates Desk EMEA', text: ['EUR 5y swaps opening tight.\n\nWill update'] },
  'im-entities': {
    subject: '[Symphony] Chat: Alice Martin, Bob Chen',
    text: ['@Bob Chen <bob.chen@bank.example>', '#rates', '$IBM', 'the note (https://research.bank.example/notes/42)'],
    html: ['<td colspan="2">10y</td>', '<a href="https://research.bank.example/notes/42" rel="noopener noreferrer">'],
  },
  attachment: { subject: '[Symphony] Chat: Bob Chen, Jürgen Müller, Zoë Ångström', text: ['Überblick Q2 2024.pdf'] },
  edit: {
    subject: '[Symphony] Rates Desk EMEA (edited)',
    text: ['Edited version of message: kWpOSc30hEJtOoT89gLinH___ouMyhHwdA', 'the 5y mid is 3.130 not 3.120'],
    inReplyTo: 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA',
    references: ['kWpOSc30hEJtOoT89gLinH___ouMyhHwdA'],
  },
  reply: {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['Reply to / forward of message: kWpOSc30hEJtOoT89gLinH___ouMyhHwdA'],
    html: ['<i>Will confirm after the auction.</i>'],
    inReplyTo: 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA',
    references: ['kWpOSc30hEJtOoT89gLinH___ouMyhHwdA'],
  },
  'shared-post': {
    subject: '[Symphony] Wall post: Bob Chen',
    text: [
      'Worth reading:',
      'Shared message from Alice Martin at 2024-06-13T07:00:00.123Z',
      '> Morning all, EUR 5y swaps',
    ],
    html: ['<blockquote><div><p>Morning all, EUR 5y swaps opening tight.</p></div></blockquote>'],
  },
  chime: { subject: '[Symphony] Rates Desk EMEA', text: ['[Chime]'] },
  formatting: {
    subject: '[Symphony] Rates Desk EMEA',
    text: [
      'Desk update\n===========',
      'Rates\n-----',
      'underlined text.\nSecond line after a break.',
      '- second\n  - nested a\n  - nested b',
      '1. one\n2. two',
      'rates page (https://www.bank.example/rates?x=1&y=2), desk@bank.example, https://www.bank.example/.',
      'Inline `npv()` call.',
      '```python\ndef npv(rate, flows):\n    return sum(',
      '```\n  curve   5y   10y\n  EUR   3.13  3.21\n```',
      '**3.13**',
    ],
    html: ['<h1>Desk update</h1>', '<pre><code>def npv(rate, flows):', '<ol><li>one</li>', '<u>underlined</u>'],
  },
  table: {
    subject: '[Symphony] Rates Desk EMEA',
    text: [
      'Tenor  | Bid   | Ask   | Note\n-------+-------+-------+-----------\n2y     | 3.010 | 3.020 | indicative\n' +
        '5y     | 3.125 | 3.135 |\n10y    | no quote      | —\nSource | Rates Desk EMEA',
    ],
    html: ['<td rowspan="2">indicative</td>', '<tfoot><tr><td>Source</td><td colspan="3">'],
  },
  emoji: { subject: '[Symphony] Rates Desk EMEA', text: ['Done 👍 :custom_logo: and a typed 🎉.'] },
  'cashtag-enhanced': {
    subject: '[Symphony] Rates Desk EMEA',
    text: [
      '$IBM (Name: International Business Machines Corp; Bloomberg: IBM US Equity;',
      'ISIN: US4592001014; FIGI: BBG000BLNNH6)',
      'and $VOD.',
      '- security (ISIN: US0378331005; CUSIP: 037833100; FIGI: BBG000B9XRY4)',
    ],
  },
  card: {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['| EUR 5y swap — auction result\n|\n| Clearing level 3.128, bid-to-cover 2.4.\n|\n| - Allotted 62%'],
    html: ['<blockquote><p><b>EUR 5y swap — auction result</b></p>'],
  },
  'expandable-card': {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['| Trade ticket 4711', '(expandable card, shown collapsed in Symphony)', '| (error)', 'shown cropped'],
    html: ['<blockquote><div><h3>Trade ticket 4711</h3></div>', '<p><i>(error)</i></p>'],
  },
  image: {
    subject: '[Symphony] Rates Desk EMEA',
    text: [
      '[image: EUR 5y curve] (https://charts.bank.example/eur-5y.png)',
      '[image: pixel, image-1.png]',
      'chart [image] (https://charts.bank.example/eur-10y.png)',
      '- image-1.png (68 bytes, shown inline)',
    ],
    html: [
      '<a href="https://charts.bank.example/eur-5y.png" rel="noopener noreferrer">[image: EUR 5y curve]</a>',
      '<img src="cid:image-1.png.sym.6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51ec@archive.example.com" alt="pixel" />',
    ],
  },
  'inline-image': {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['[image: blotter, image-1.gif]', '- curve.png (68 bytes)\n- confirm 4711.pdf (98 bytes)'],
    html: ['alt="blotter" />', 'alt="image-2.png" />'],
  },
  'legacy-entities': {
    subject: '[Symphony] Chat: Reed Feldman (SUP), User Name',
    text: [
      'Message content. With @user name <user.name@symphony.com>, $ticker (Ticker: ibm), and #keyword ' +
        '(hashtag: #unexpected).',
    ],
  },
  'bot-null-fields': { subject: '[Symphony] Chat: Alice Martin, bot-name', text: ['----------\n\nHello, World!\n'] },
  video: {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['[YouTube video aqz-KE-bpKQ] (https://youtu.be/aqz-KE-bpKQ)'],
    html: ['<a href="https://vimeo.com/76979871" rel="noopener noreferrer">Desk briefing [Vimeo video]</a>'],
  },
  article: {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['| What the swaps curve says about June', '| [thumbnail] (https://research.bank.example/thumbs/ecb.png)'],
    html: ['<p><i>What the swaps curve says about June</i></p>', 'alt="thumbnail" />'],
  },
  'fdc3-action': {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['This is a FDC3 action button:\n[Action button "View a chart": raises intent ViewChart'],
  },
  'elements-room-selector': {
    subject: '[Symphony] Rates Desk EMEA',
    text: [/Create Alert +\| submit_button +\| Button \(action\)/],
  },
  'elements-table-select': {
    subject: '[Symphony] Rates Desk EMEA',
    text: [
      '[ ] (tablesel-header) | Tenor  | Bid        | Ask',
      'Source | Rates Desk | EMEA  | [SELECT] (tablesel-footer)',
      /Execute +\| execute +\| Button \(action\)/,
    ],
  },
  'elements-form': {
    subject: '[Symphony] Rates Desk EMEA',
    text: [
      'Symphony Elements form "trade-request":',
      /Notional \(EUR m\) \(hint: Whole millions\) \| notional +\| Text field, required +\| \(placeholder: e\.g\. 50\)/,
      /\| tenor +\| Dropdown, required +\| 2 years \[2y\]; 5 years \[5y\] \(selected\); 10 years \[10y\]/,
      /Urgent +\| urgent +\| Checkbox +\| yes \(checked\)/,
      /Approver +\| approver +\| Person selector/,
      /Submit +\| submit-trade +\| Button \(action\)/,
    ],
    html: ['<th>Default / options</th>'],
  },
  'elements-action': {
    subject: '[Symphony] Rates Desk EMEA (form response)',
    text: [
      'Response to Symphony Elements form "trade-request"',
      /action +\| Button pressed: Submit +\| submit-trade/,
      /approver +\| Approver +\| Alice Martin \(7215545078461\)/,
    ],
    inReplyTo: 'uVP4JyNoCRg4XBi-xC8aATtwBIAuISr7vg',
    references: ['uVP4JyNoCRg4XBi-xC8aATtwBIAuISr7vg'],
  },
  suppression: {
    subject: '[Symphony] Rates Desk EMEA (removed)',
    text: [
      'Message kWpOSc30hEJtOoT89gLinH___ouMyhHwdA was removed (suppressed) in Symphony by Compliance Officer ' +
        '<compliance@bank.example> at 2024-06-13T12:00:00.000Z.',
    ],
    inReplyTo: 'kWpOSc30hEJtOoT89gLinH___ouMyhHwdA',
    references: ['kWpOSc30hEJtOoT89gLinH___ouMyhHwdA'],
  },
  'datetime-dialog': {
    subject: '[Symphony] Rates Desk EMEA',
    text: ['Auction closes 2024-06-14T10:30:00Z.', '[Show terms]', '| Auction terms', '(dialog, opened from a button'],
  },
  hostile: {
    subject: '[Symphony] Ops X-Injected: 1 room',
    text: ['Click here or there', 'unclosed tags & bare & ampersand'],
  },
  'unicode-names': {
    // 200 code points (SUBJECT_MAX), the cut marked with an ellipsis; the full name is in the body.
    subject: ('[Symphony] 利率交易台 · Desk des taux — ' + 'très longue salle '.repeat(12)).slice(0, 199) + '…',
    text: ['Привет, 你好, مرحبا — @山田 太郎 (Symphony user 1305690252351)'],
  },
};

describe('round trip through mailparser', () => {
  it('has an expectation for every fixture', () => {
    assert.deepEqual(
      fixtureNames().filter((n) => !(n in EXPECT)),
      [],
    );
  });

  for (const name of fixtureNames()) {
    it(name, async () => {
      const { input, item, mail } = await convertFixture(name);
      const expect = EXPECT[name]!;
      assert.equal(assertWireFormat(item.raw), undefined);
      for (const h of ['from', 'date', 'message-id', 'subject', 'to', 'mime-version']) {
        assert.equal(countHeader(item.raw, h), 1, `${h} once`);
      }
      assert.equal(mail.messageId, `<${item.messageId}>`);
      assert.equal(item.messageId, messageIdFor(input.message.messageId, OPTIONS.messageIdDomain));
      assert.match(item.messageId, /^sym\.[a-z0-9]+@archive\.example\.com$/);
      assert.equal(mail.date?.getTime(), Math.floor(input.message.timestamp / 1000) * 1000);
      assert.equal(item.date.getTime(), input.message.timestamp);
      assert.equal(mail.subject, expect.subject);
      assert.equal(mail.headers.get('x-symphony-message-id'), input.message.messageId);
      assert.equal(mail.headers.get('x-symphony-sender-id'), input.sender.userId);
      assert.equal(item.sha256, sha(item.raw));

      const from = addresses(mail.from);
      assert.equal(from.length, 1);
      const email = input.sender.email && /^[^\s@]+@[^\s@]+$/.test(input.sender.email) ? input.sender.email : undefined;
      assert.equal(from[0]!.address, email ?? `user-${input.sender.userId}@${OPTIONS.syntheticDomain}`);
      const to = addresses(mail.to).map((a) => a.address);
      const others = input.participants.filter((p) => p.userId !== input.sender.userId);
      assert.equal(to.length, others.length || 1);

      if (expect.inReplyTo) assert.equal(mail.inReplyTo, mid(expect.inReplyTo));
      else assert.equal(mail.inReplyTo, undefined);
      const refs = mail.references === undefined ? [] : ([] as string[]).concat(mail.references);
      assert.deepEqual(refs, (expect.references ?? []).map(mid));

      const text = mail.text ?? '';
      for (const t of expect.text ?? []) {
        if (typeof t === 'string') assert.ok(text.includes(t), `text has ${JSON.stringify(t)}:\n${text}`);
        else assert.match(text, t);
      }
      const html = typeof mail.html === 'string' ? mail.html : '';
      for (const h of expect.html ?? []) assert.ok(html.includes(h), `html has ${JSON.stringify(h)}:\n${html}`);
      assert.equal(unsafeHtml(html), undefined);
      assert.deepEqual(
        danglingCids(
          html,
          mail.attachments.map((a) => a.cid),
        ),
        [],
      );

      // Attachments: inline images, the provided files byte for byte, then the source JSON.
      const names = mail.attachments.map((a) => a.filename);
      assert.equal(names[names.length - 1], SOURCE_ATTACHMENT_NAME);
      for (const a of input.attachments) {
        const got = mail.attachments.find((m) => m.filename === a.name);
        assert.ok(got, `attachment ${a.name} in ${JSON.stringify(names)}`);
        assert.equal(sha(got.content), sha(a.content as Buffer));
        assert.equal(got.contentDisposition, 'attachment');
      }
      const source = JSON.parse(mail.attachments[mail.attachments.length - 1]!.content.toString('utf8')) as unknown;
      if (input.suppression || input.elementsAction) {
        assert.deepEqual((source as { message: unknown }).message, input.message);
      } else assert.deepEqual(source, input.message);
    });
  }

  it('decodes the RFC 2231 file name and the RFC 2047 names of the attachment fixture', async () => {
    const { item, mail } = await convertFixture('attachment');
    const raw = item.raw.toString('latin1');
    assert.match(raw, /filename\*0\*=utf-8''%C3%9Cberblick%20Q2%202024\.pdf/);
    assert.deepEqual(
      addresses(mail.to).map((a) => a.name),
      ['Jürgen Müller', 'Zoë Ångström'],
    );
    assert.equal(mail.attachments[0]!.contentType, 'application/pdf');
    assert.equal(mail.attachments[1]!.contentType, 'text/csv');
    assert.equal(
      mail.attachments[0]!.headers.get('x-symphony-attachment-id'),
      'internal_14362370637825/T2vTuh+gWTtZFQtI/HDXYg==',
    );
  });

  it('shows a data: image inline: a multipart/related part by Content-ID, an <img> by cid: (RFC 2387, 2392)', async () => {
    const { item, mail } = await convertFixture('inline-image');
    const raw = item.raw.toString('latin1');
    // multipart/alternative [ text/plain, multipart/related [ text/html, image/gif, image/png ] ], then the files.
    const order = [
      /Content-Type: multipart\/mixed;/,
      /Content-Type: multipart\/alternative;/,
      /Content-Type: text\/plain;/,
      /Content-Type: multipart\/related; type="text\/html";/,
      /Content-Type: text\/html;/,
      /Content-Type: image\/gif; name=image-1\.gif\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: inline; filename=image-1\.gif\r\nContent-ID:/,
      /Content-Type: image\/png; name=image-2\.png/,
      /Content-Type: image\/png; name=curve\.png\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment;/,
      /Content-Type: application\/pdf;/,
      /Content-Type: application\/json;/,
    ];
    let at = 0;
    for (const re of order) {
      const m = re.exec(raw.slice(at));
      assert.ok(m, `${String(re)} after offset ${at}`);
      at += m.index + m[0].length;
    }
    const gif = mail.attachments.find((a) => a.filename === 'image-1.gif');
    assert.ok(gif?.cid && gif.related, 'the GIF is a related part with a Content-ID');
    assert.equal(gif.content.subarray(0, 6).toString('latin1'), 'GIF89a');
    assert.ok(String(mail.html).includes(`<img src="cid:${gif.cid}" alt="blotter" />`));
    const curve = mail.attachments.find((a) => a.filename === 'curve.png');
    assert.ok(curve && !curve.cid && !curve.related, 'an image file the markup does not show stays an attachment');
  });

  it('never loads a remote image: a URL in img src or an image entity becomes a link', async () => {
    const { mail } = await convertFixture('image');
    const html = String(mail.html);
    assert.doesNotMatch(html, /<img[^>]+src="(?!cid:)/);
    assert.match(
      html,
      /<a href="https:\/\/charts\.bank\.example\/eur-10y\.png" rel="noopener noreferrer">chart \[image\]<\/a>/,
    );
  });

  it('keeps every header a hostile sender tried to inject inside its own field', async () => {
    const { item, mail } = await convertFixture('hostile');
    assert.equal(countHeader(item.raw, 'bcc'), 0);
    assert.equal(countHeader(item.raw, 'x-injected'), 0);
    assert.deepEqual(addresses(mail.from), [
      { name: 'Mallory Bcc: eve@evil.example gpj.exe', address: 'user-555@symphony.invalid' },
    ]);
    assert.ok(!item.raw.toString('utf8').includes('\u202e'), 'no bidi override anywhere in the headers or bodies');
    assert.ok(
      item.warnings.some((w) => /not valid JSON/.test(w)),
      'item.warnings.some((w) => /not valid JSON/.test(w))',
    );
    assert.ok(
      item.warnings.some((w) => /not well-formed/.test(w)),
      'item.warnings.some((w) => /not well-formed/.test(w))',
    );
  });
});
