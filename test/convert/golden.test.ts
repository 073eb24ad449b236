/**
 * Golden files: one `.eml` per fixture input (`test/fixtures/convert/*.json`), compared byte for byte. Each
 * fixture is a PresentationML construct of symphony-api.md §6 or a message kind (reply, edit, shared post,
 * suppression, Elements form and response, hostile input). Regenerate after an intended change with
 * `UPDATE_GOLDEN=1 node --import tsx --test test/convert/golden.test.ts` and review the diff.
 *
 * Issue 4 is done when every §6 construct and every §3 event type that carries content has a golden. The two
 * tables below say which golden shows what; the tests check that each fixture still holds its construct, that
 * its golden reads as intended (no construct dropped or left as markup), and that the event table names every
 * V4Event type, so a construct or type without a golden fails here.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, test } from 'node:test';
import { simpleParser } from 'mailparser';
import {
  ITEM_EVENT_TYPES,
  NON_ITEM_EVENT_TYPES,
  createSymphonyMimeConverter,
  readV4Event,
} from '../../src/convert/index.ts';
import { FIXTURE_DIR, assertWireFormat, fixtureNames, loadFixture } from './helpers.ts';

const update = process.env['UPDATE_GOLDEN'] === '1';
const names = fixtureNames();
const EVENT_DIR = fileURLToPath(new URL('./golden/', import.meta.url));

interface Construct {
  /** The fixture whose golden shows it. */
  fixture: string;
  /** What the fixture's `message` and `data` must contain: the construct as the agent delivers it. */
  input: RegExp[];
  /** What the golden's text/plain part must contain: the construct rendered readably. */
  shows: (string | RegExp)[];
}

/** symphony-api.md §6, construct by construct. */
const CONSTRUCTS: Record<string, Construct> = {
  'root div': {
    fixture: 'bot-null-fields',
    input: [/^<div data-format="PresentationML" data-version="2\.0">Hello/],
    shows: ['\n\nHello, World!\n'],
  },
  'root div, class="wysiwyg"': {
    fixture: 'room-plain',
    input: [/^<div data-format="PresentationML" data-version="2\.0" class="wysiwyg">/],
    shows: ['Morning all, EUR 5y swaps opening tight.'],
  },
  'root div, single-quoted (DevDocs sample)': {
    fixture: 'legacy-entities',
    input: [/^<div data-format='PresentationML' data-version='2\.0'>/],
    shows: ['Message content. With'],
  },
  mention: {
    fixture: 'im-entities',
    input: [/class="entity" data-entity-id="0">@Bob Chen/, /"type":"com\.symphony\.user\.mention"/],
    shows: ['Hi @Bob Chen <bob.chen@bank.example>, re'],
  },
  'mention, numeric user id': {
    fixture: 'unicode-names',
    input: [/"com\.symphony\.user\.userId","value":1305690252351/],
    shows: ['@山田 太郎 (Symphony user 1305690252351)'],
  },
  hashtag: {
    fixture: 'im-entities',
    input: [/>#rates<\/span>/, /"org\.symphonyoss\.taxonomy\.hashtag"/],
    shows: ['re #rates on'],
  },
  'cashtag, legacy v1.0': {
    fixture: 'cashtag-enhanced',
    input: [/"tag2":\{"type":"org\.symphonyoss\.fin\.security","version":"1\.0"/],
    shows: ['and $VOD.'],
  },
  'cashtag, enhanced v2.0 with every field': {
    fixture: 'cashtag-enhanced',
    input: [
      /"version":"2\.0"/,
      ...[
        'id.ticker', 'id.uniqueId', 'id.fullBbgTicker', 'id.isin', 'id.figi', 'id.localCode', 'id.operationalMic',
        'exchangeName', 'countryName', 'countryCode', 'displayName', 'currency', 'instrumentTypeCode',
        'instrumentTypeName', 'bbgcompticker',
      ].map((f) => new RegExp(`"org\\.symphonyoss\\.fin\\.security\\.${f.replace('.', '\\.')}"`)),
    ], // prettier-ignore
    shows: [
      '$IBM (Name: International Business Machines Corp; Bloomberg: IBM US Equity; Bloomberg composite: IBM US; ' +
        'Exchange: New York Stock Exchange; MIC: XNYS; Country: United States; Country code: US; Currency: USD; ' +
        'Type: Equity Shares; ISIN: US4592001014; FIGI: BBG000BLNNH6)',
    ],
  },
  'cashtag, entity on the message as a whole': {
    fixture: 'cashtag-enhanced',
    input: [/"entityIdentifier":/],
    shows: ['Tagged in the message data:\n- security (ISIN: US0378331005; CUSIP: 037833100; FIGI: BBG000B9XRY4)'],
  },
  "old class='cashTag' / class='hashTag' spans": {
    fixture: 'legacy-entities',
    input: [/<span class='cashTag' data-entity-id='cashtag2'>/, /<span class='hashTag' data-entity-id='hashtag3'>/],
    shows: ['$ticker (Ticker: ibm), and #keyword (hashtag: #unexpected).'],
  },
  'chime (audio)': {
    fixture: 'chime',
    input: [/<audio src="https:\/\/asset\.symphony\.com\/symphony\/audio\/chime\.mp3" autoplay="true" \/>/],
    shows: ['\n\n[Chime]\n'],
  },
  'card: barStyle, icon, accent, header, body': {
    fixture: 'card',
    input: [/class="card barStyle"/, /data-icon-src="https:/, /data-accent-color="blue"/, /"cardHeader"/, /"cardBody"/],
    shows: ['| EUR 5y swap — auction result\n|\n| Clearing level 3.128, bid-to-cover 2.4.'],
  },
  'emoji entity': {
    fixture: 'emoji',
    input: [/"type":"com\.symphony\.emoji"/],
    shows: ['Done 👍 :custom_logo: and a typed 🎉.'],
  },
  'h1–h6': {
    fixture: 'formatting',
    input: [/<h1>/, /<h2>/, /<h3>/, /<h4>/, /<h5>/, /<h6>/],
    shows: ['Desk update\n===========\n\nRates\n-----\n\nEUR\n\nSwaps\n\n5y\n\nNotes'],
  },
  'p, div, span, hr': {
    fixture: 'formatting',
    input: [/<p>/, /<div>A div/, /<span>span<\/span>/, /<hr\/>/],
    shows: ['A div with a span.\n\n----------\n\n'],
  },
  'ul, ol, li (nested)': {
    fixture: 'formatting',
    input: [/<ul><li>/, /<ol><li>/],
    shows: ['- first\n- second\n  - nested a\n  - nested b\n\n1. one\n2. two'],
  },
  br: { fixture: 'formatting', input: [/<br\/>/], shows: ['text.\nSecond line after a break.'] },
  'a href': {
    fixture: 'formatting',
    input: [/<a href="https:/, /<a href="mailto:/],
    shows: ['rates page (https://www.bank.example/rates?x=1&y=2), desk@bank.example, https://www.bank.example/.'],
  },
  'b, i (and strong, em, u)': {
    fixture: 'formatting',
    input: [/<b>bold<\/b>/, /<i>italic<\/i>/],
    shows: ['Plain, bold, italic, strong, em and underlined'],
  },
  pre: { fixture: 'formatting', input: [/<pre>/], shows: ['```\n  curve   5y   10y\n  EUR   3.13  3.21\n```'] },
  'code with language': {
    fixture: 'formatting',
    input: [/<code data-language="python">/],
    shows: ['```python\ndef npv(rate, flows):', 'Inline `npv()` call.'],
  },
  'table: thead, tbody, tfoot, rowspan, colspan': {
    fixture: 'table',
    input: [/<thead>/, /<tbody>/, /<tfoot>/, /rowspan="2"/, /colspan="2"/, /colspan="3"/],
    shows: ['Tenor  | Bid   | Ask   | Note\n-------+-------+-------+-----------', 'Source | Rates Desk EMEA'],
  },
  'img src URL (never loaded: a link)': {
    fixture: 'image',
    input: [/<img src="https:\/\/charts\.bank\.example\/eur-5y\.png"/],
    shows: ['[image: EUR 5y curve] (https://charts.bank.example/eur-5y.png)'],
  },
  'img src data: URI (inline by cid)': {
    fixture: 'inline-image',
    input: [/<img src="data:image\/gif;base64,/, /<img src="data:image\/png;base64,/],
    shows: ['[image: blotter, image-1.gif] and the desk logo [image: image-2.png].'],
  },
  'expandable-card, collapsed': {
    fixture: 'expandable-card',
    input: [/class="expandable-card" data-state="collapsed"/],
    shows: ['| (expandable card, shown collapsed in Symphony)'],
  },
  'expandable-card, cropped (error variant)': {
    fixture: 'expandable-card',
    input: [/data-state="cropped"/, /data-variant="error"/],
    shows: ['| Rejected ticket 4712\n|\n| (error)'],
  },
  'expandable-card, expanded': {
    fixture: 'expandable-card',
    input: [/data-state="expanded"/],
    // Shown in full, with no note: Symphony showed it so too.
    shows: [/\| Booked ticket 4713\n\|\n\| Receive fixed 3\.12 vs 6m EURIBOR, EUR 25m, 10y\.\n(?!\|)/],
  },
  'dateTime (value, format)': {
    fixture: 'datetime-dialog',
    input: [/<time data-entity-id="datetime1" data-format="date_time" datetime="2024-06-14T10:30:00Z">/],
    shows: ['Auction closes 2024-06-14T10:30:00Z.'],
  },
  'Elements form': {
    fixture: 'elements-form',
    input: [/<form id=/],
    shows: ['Symphony Elements form "trade-request":'],
  },
  'Elements button': {
    fixture: 'elements-form',
    input: [/<button type="action" name="submit-trade">/, /<button type="reset">/],
    shows: [/Submit +\| submit-trade +\| Button \(action\)/, /Clear +\| +\| Button \(reset\)/],
  },
  'Elements text-field': {
    fixture: 'elements-form',
    input: [/<input type="text"/],
    shows: [/Notional \(EUR m\) \(hint: Whole millions\) \| notional +\| Text field, required/],
  },
  'Elements textarea': {
    fixture: 'elements-form',
    input: [/<textarea/],
    shows: [/comment +\| Text area +\| Call me before booking/],
  },
  'Elements select / option': {
    fixture: 'elements-form',
    input: [/<select name="tenor"/, /<option value="5y" selected="true">/],
    shows: [/tenor +\| Dropdown, required +\| 2 years \[2y\]; 5 years \[5y\] \(selected\); 10 years \[10y\]/],
  },
  'Elements checkbox': {
    fixture: 'elements-form',
    input: [/<input type="checkbox"/],
    shows: [/Urgent +\| urgent +\| Checkbox +\| yes \(checked\)/],
  },
  'Elements radio': {
    fixture: 'elements-form',
    input: [/<input type="radio"/],
    shows: [/Pay fixed +\| side +\| Radio button +\| pay \(checked\)/],
  },
  'Elements person-selector': {
    fixture: 'elements-form',
    input: [/class="person-selector"/],
    shows: [/Approver +\| approver +\| Person selector/],
  },
  'Elements room-selector': {
    fixture: 'elements-room-selector',
    input: [/class="room-selector" data-name="room-selector"/],
    shows: [/room-selector \| Room selector +\| rsxB51ieSYfPLQ0jgFKg93___nUqhvz4dA, 9139691037944/],
  },
  'Elements date-picker': {
    fixture: 'elements-form',
    input: [/<input type="date"/],
    shows: [/trade-date +\| Date picker +\| 2024-06-14/],
  },
  'Elements time-picker': {
    fixture: 'elements-form',
    input: [/<input type="time"/],
    shows: [/cutoff +\| Time picker +\| 16:00:00/],
  },
  'Elements timezone-picker': {
    fixture: 'elements-form',
    input: [/class="timezone-picker"/],
    shows: [/tz +\| Timezone picker +\| Europe\/London/],
  },
  'Elements table-select (checkbox, button)': {
    fixture: 'elements-table-select',
    input: [/<input type="checkbox" name="tablesel-row-1"\/>/, /<button type="action" name="tablesel-row-1">/],
    shows: ['[ ] (tablesel-row-1)  | 2y     | 3.010      | 3.020', '| [SELECT] (tablesel-row-2)'],
  },
  'ui-action': {
    fixture: 'datetime-dialog',
    input: [/class="ui-action" data-action="open-dialog"/],
    shows: ['[Show terms]'],
  },
  dialog: {
    fixture: 'datetime-dialog',
    input: [/<dialog id="terms"/],
    shows: ['| Auction terms\n|\n| Minimum bid EUR 5m.', '| (dialog, opened from a button in Symphony)'],
  },
  'markdown quirk (**x** / *x*), shown as delivered': {
    fixture: 'formatting',
    input: [/\*\*3\.13\*\*/, / \*mid\*/],
    shows: ['comes back as markdown: **3.13** and *mid*.'],
  },
  '&nbsp; (not XML)': { fixture: 'edit', input: [/&nbsp;/], shows: ['the 5y mid is 3.130 not 3.120.'] },
  'com.symphony.media.image': {
    fixture: 'image',
    input: [/"type":"com\.symphony\.media\.image"/],
    shows: ['chart [image] (https://charts.bank.example/eur-10y.png)'],
  },
  'com.symphony.media.video, youtube': {
    fixture: 'video',
    input: [/"format":"youtube"/],
    shows: ['Rates outlook, June [YouTube video] (https://www.youtube.com/watch?v=dQw4w9WgXcQ)'],
  },
  'com.symphony.media.video, vimeo': {
    fixture: 'video',
    input: [/"format":"vimeo"/],
    shows: ['Desk briefing [Vimeo video] (https://vimeo.com/76979871)'],
  },
  'article entity': {
    fixture: 'article',
    input: [/"title":/, /"subTitle":/, /"blurb":/, /"date":/, /"publisher":/, /"author":/, /"thumbnail":/, /"href":/],
    shows: [
      '| Article: ECB preview: a cut is priced in (https://research.bank.example/notes/ecb-preview)',
      '| Bank Research, by Jane Doe, published 2024-06-13T00:00:00.000Z',
      '| [image: thumbnail, image-1.png]',
    ],
  },
  'fdc3.entity.action': {
    fixture: 'fdc3-action',
    input: [/"type":"fdc3\.entity\.action"/],
    shows: [
      '[Action button "View a chart": raises intent ViewChart with fdc3.instrument "Tesla, inc." (ticker: TSLA)]',
    ],
  },
};

/**
 * Every V4Event type of symphony-api.md §3: the goldens of those that become items (`fixtures/NAME` under
 * test/fixtures/convert, `golden/NAME` under test/convert/golden), or none for those that make no item
 * (events.ts `NON_ITEM_EVENT_TYPES` says why).
 */
const EVENT_TYPES: Record<string, string[]> = {
  MESSAGESENT: ['fixtures/room-plain', 'fixtures/im-entities', 'fixtures/reply', 'fixtures/edit'],
  SHAREDPOST: ['fixtures/shared-post'],
  INSTANTMESSAGECREATED: ['golden/im-created'],
  ROOMCREATED: ['golden/room-created'],
  ROOMUPDATED: ['golden/room-updated', 'golden/room-renamed', 'golden/hostile'],
  ROOMDEACTIVATED: ['golden/room-deactivated'],
  ROOMREACTIVATED: ['golden/room-reactivated'],
  USERJOINEDROOM: ['golden/user-joined'],
  USERLEFTROOM: ['golden/user-left'],
  ROOMMEMBERPROMOTEDTOOWNER: ['golden/member-promoted'],
  ROOMMEMBERDEMOTEDFROMOWNER: ['golden/member-demoted'],
  CONNECTIONREQUESTED: [],
  CONNECTIONACCEPTED: [],
  MESSAGESUPPRESSED: ['golden/message-suppressed', 'fixtures/suppression'],
  SYMPHONYELEMENTSACTION: ['golden/elements-action', 'fixtures/elements-action'],
  USERREQUESTEDTOJOINROOM: [],
  GENERICSYSTEMEVENT: [],
};

function source(name: string): string {
  const { message } = loadFixture(name);
  return `${String(message.message)}\n${String(message.data)}`;
}

const textOf = new Map<string, Promise<string>>();
function goldenText(name: string): Promise<string> {
  let text = textOf.get(name);
  if (!text) {
    text = simpleParser(readFileSync(`${FIXTURE_DIR}${name}.eml`)).then((m) => m.text ?? '');
    textOf.set(name, text);
  }
  return text;
}

test('every golden .eml has its fixture input', () => {
  const orphans = readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.eml'))
    .filter((f) => !names.includes(f.slice(0, -4)));
  assert.deepEqual(orphans, []);
  assert.ok(names.length >= 20, `only ${names.length} fixtures`);
});

for (const name of names) {
  test(`golden: ${name}.eml`, async () => {
    const item = await createSymphonyMimeConverter().convert(loadFixture(name));
    assert.equal(assertWireFormat(item.raw), undefined);
    const path = `${FIXTURE_DIR}${name}.eml`;
    if (update || !existsSync(path)) {
      assert.ok(update, `golden ${path} is missing; run with UPDATE_GOLDEN=1 to create it`);
      writeFileSync(path, item.raw);
      return;
    }
    const expected = readFileSync(path);
    assert.ok(
      item.raw.equals(expected),
      `${name}.eml differs from the golden file (UPDATE_GOLDEN=1 regenerates it)\n${item.raw.toString('utf8')}`,
    );
  });
}

describe('coverage of symphony-api.md §6 constructs', () => {
  for (const [construct, c] of Object.entries(CONSTRUCTS)) {
    it(construct, async () => {
      assert.ok(names.includes(c.fixture), `fixture ${c.fixture} exists`);
      const input = source(c.fixture);
      for (const re of c.input) assert.match(input, re, `${c.fixture} holds ${construct}`);
      const text = await goldenText(c.fixture);
      for (const s of c.shows) {
        if (typeof s === 'string') assert.ok(text.includes(s), `${c.fixture}.eml shows ${JSON.stringify(s)}:\n${text}`);
        else assert.match(text, s, `${c.fixture}.eml`);
      }
    });
  }
});

describe('coverage of symphony-api.md §3 event types', () => {
  it('names every V4Event type of §3', () => {
    assert.equal(Object.keys(EVENT_TYPES).length, 17);
    for (const t of ITEM_EVENT_TYPES) assert.ok(EVENT_TYPES[t]!.length > 0, `${t} becomes an item: it needs a golden`);
    assert.deepEqual(
      Object.keys(EVENT_TYPES)
        .filter((t) => EVENT_TYPES[t]!.length === 0)
        .sort(),
      Object.keys(NON_ITEM_EVENT_TYPES)
        .filter((t) => t !== 'MESSAGESENT' && t !== 'SHAREDPOST')
        .sort(),
    );
  });

  for (const [type, goldens] of Object.entries(EVENT_TYPES)) {
    it(`${type}: ${goldens.length > 0 ? goldens.join(', ') : 'no item'}`, () => {
      for (const g of goldens) {
        const [dir, name] = g.split('/') as [string, string];
        const base = dir === 'fixtures' ? FIXTURE_DIR : EVENT_DIR;
        assert.ok(existsSync(`${base}${name}.json`) && existsSync(`${base}${name}.eml`), `${g}.json and .eml`);
      }
      if (goldens.length > 0) return;
      const read = readV4Event({ id: 'x', timestamp: 1718272800000, type, initiator: { user: { userId: 1 } } });
      assert.ok('skip' in read && read.skip === 'unsupported', `${type} makes no item`);
      assert.match(read.detail, /^not archived as an item of its own: \w/);
    });
  }
});
