/**
 * Text and PresentationML for the generated pod: names, sentences and every message body kind an archiver
 * must render (symphony-api.md §4.3, §6).
 */
import type { Prng } from './prng.ts';
import type { PodUser } from './types.ts';

export const FIRST_NAMES = [
  'Alice',
  'Benjamin',
  'Chloé',
  'Daniel',
  'Emma',
  'Felix',
  'Grace',
  'Hugo',
  'Isabel',
  'Jack',
  'Karin',
  'Liam',
  'Maya',
  'Noah',
  'Olivia',
  'Pierre',
  'Quinn',
  'Rosa',
  'Samuel',
  'Tara',
  'Umar',
  'Vera',
  'William',
  'Xenia',
  'Yusuf',
  'Zoë',
  'Amir',
  'Björn',
  'Carmen',
  'Dmitri',
  'Elena',
  'Farah',
  'Giulia',
  'Hiroshi',
  'Ingrid',
  'José',
  'Kofi',
  'Lucía',
  'Mei',
  'Nadia',
  'Oscar',
  'Priya',
  'Renée',
  'Sven',
  'Tomás',
  'Ursula',
  'Viktor',
  'Wen',
];
export const LAST_NAMES = [
  'Anderson',
  'Becker',
  'Chen',
  'Dubois',
  'Evans',
  'Fischer',
  'García',
  'Hansen',
  'Ivanova',
  'Jensen',
  'Kim',
  'Lefèvre',
  'Müller',
  'Nakamura',
  'Okafor',
  "O'Brien",
  'Patel',
  'Quintero',
  'Rossi',
  'Schmidt',
  'Tanaka',
  'Ueda',
  'Vasquez',
  'Weber',
  'Xu',
  'Yamamoto',
  'Zimmermann',
  'Novak',
  'Silva',
  'Moreau',
  'Kowalski',
  'Haddad',
];
export const ROOM_NAMES = [
  'FX Spot Desk',
  'Rates Trading EMEA',
  'Credit Research',
  'Equity Derivatives',
  'Risk & Controls',
  'Ops Breaks',
  'Repo Desk',
  'Client Coverage — Nordics',
  'Treasury Funding',
  'Commodities Flow',
  'Compliance Notices',
  'Syndicate Deals',
  'Macro Strategy',
  'Prime Brokerage',
  'EM Sovereigns',
  'Algo Execution',
];
export const SENTENCES = [
  'Can you send me the latest levels before the close?',
  'EUR/USD looks heavy into the fix, watching 1.0850.',
  'Client is asking for a two-way in 5y swaps, size 50m.',
  'Booked, ticket number will follow shortly.',
  'Spreads tightened 3bp on the new issue.',
  "I'll check with ops about the settlement break.",
  'Morning all, quiet start in Asia overnight.',
  'The P&L report for yesterday is out.',
  'Please confirm the allocation by 3pm.',
  'Risk limits were updated, see the note from the CRO.',
  'Lunch at 12:30? Café downstairs.',
  'Bid 99.25 / offer 99.40 on the 2030s.',
  'Vol is bid across the curve after the CPI print.',
  'Naïve question: does this roll before or after the holiday?',
  'Thanks — that works for me.',
  'Let me loop in the desk head on this one.',
  'Order filled at average 101.375 < limit 101.50.',
  'Reminder: end-of-quarter attestations are due Friday.',
];
const HASHTAGS = ['rates', 'fx', 'credit', 'newissue', 'cpi', 'ops', 'eod'];
const CASHTAGS = ['IBM', 'AAPL', 'MSFT', 'VOD', 'SAP', 'BNP', 'TSLA'];
export const USER_AGENTS = [
  'DESKTOP-43.0.0-10902-MacOSX-10.14.6-Chrome-83.0.4103.61',
  'DESKTOP-24.9.1-14120-Windows-10-Chrome-128.0.6613.84',
  'MOBILE-24.8.0-iOS-17.5',
  'Agent-24.9.0-Linux-5.15.0-1064-aws',
];
export const ATTACHMENT_NAMES = [
  'term-sheet.pdf',
  'pricing.csv',
  'notes.txt',
  'chart.png',
  'model.xlsx',
  'Résumé été.docx',
];

export const ROOM_RENAME_SUFFIXES = ['Q4', 'EMEA', 'Archive', 'Project Atlas', 'New'];

/** Shown with the first message of the day in rooms that have one (V4Message.disclaimer, §4.1). */
export const DISCLAIMER = 'This conversation is recorded and may be monitored by Bank Example for regulatory purposes.';

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** `SENTENCES` ready for markup, escaped once rather than per message. */
export const XML_SENTENCES = SENTENCES.map(escapeXml);

export function presentationMl(body: string, wysiwyg = true): string {
  return `<div data-format="PresentationML" data-version="2.0"${wysiwyg ? ' class="wysiwyg"' : ''}>${body}</div>`;
}

/** `<chime/>` in MessageML; a chime message has no other content (symphony-api.md §6). */
export const CHIME = presentationMl(
  '<audio src="https://asset.symphony.com/symphony/audio/chime.mp3" autoplay="true" />',
  false,
);

/** A Symphony Elements form as a bot sends it (§6); answers arrive as SYMPHONYELEMENTSACTION events. */
export function elementsForm(formId: string, question: string): string {
  return presentationMl(
    `<form id="${formId}"><h3>${escapeXml(question)}</h3>` +
      '<text-field name="comment" placeholder="Comment" required="false"></text-field>' +
      '<button name="approve" type="action" class="primary">Approve</button>' +
      '<button name="reject" type="action" class="secondary">Reject</button></form>',
    false,
  );
}

export const FORM_QUESTIONS = [
  'Approve the allocation for the new issue?',
  'Confirm the settlement instructions?',
  'Sign off the end-of-day risk report?',
];

export interface Content {
  html: string;
  data?: Record<string, unknown>;
  malformed: boolean;
}

function mention(rng: Prng, key: string, user: PodUser): { span: string; entity: Record<string, unknown> } {
  // Current clients send the user id as a string, older ones as a number (symphony-api.md §4.3).
  const value = rng.chance(0.5) ? user.id : String(user.id);
  return {
    span: `<span class="entity" data-entity-id="${key}">@${escapeXml(user.displayName)}</span>`,
    entity: { id: [{ type: 'com.symphony.user.userId', value }], type: 'com.symphony.user.mention', version: '1.0' },
  };
}

export function buildContent(rng: Prng, kind: number, others: PodUser[], malformed: boolean): Content {
  const s = rng.pick(XML_SENTENCES);
  if (malformed) {
    // Not well-formed XML on purpose: HTML entities and unclosed tags happen in real pods (symphony-api.md §6).
    return rng.chance(0.5)
      ? { html: `<p>Desk&nbsp;update:&nbsp;${s}</p>`, malformed: true }
      : { html: `<p><b>Heads up: ${s}</p><p>more to follow<br></p>`, malformed: true };
  }
  switch (kind) {
    case 1: {
      const who = others.length > 0 ? rng.pick(others) : undefined;
      if (!who) break;
      const m = mention(rng, '0', who);
      return { html: `<p>Hi ${m.span}, ${s}</p>`, data: { '0': m.entity }, malformed: false };
    }
    case 2: {
      const tag = rng.pick(HASHTAGS);
      const cash = rng.pick(CASHTAGS);
      return {
        html: `<p>${s} <span class="entity" data-entity-id="0">#${tag}</span> <span class="entity" data-entity-id="1">$${cash}</span></p>`,
        data: {
          '0': {
            id: [{ type: 'org.symphonyoss.taxonomy.hashtag', value: tag }],
            type: 'org.symphonyoss.taxonomy',
            version: '1.0',
          },
          '1': {
            id: [{ type: 'org.symphonyoss.fin.security.id.ticker', value: cash }],
            type: 'org.symphonyoss.fin.security',
            version: '1.0',
          },
        },
        malformed: false,
      };
    }
    case 3: {
      const rows = ['2y', '5y', '10y']
        .map((t) => {
          const bid = (2 + rng.next() * 2).toFixed(3);
          return `<tr><td>${t}</td><td>${bid}</td><td>${(Number(bid) + 0.02).toFixed(3)}</td></tr>`;
        })
        .join('');
      return {
        html: `<p>Levels:</p><table><thead><tr><th>Tenor</th><th>Bid</th><th>Ask</th></tr></thead><tbody>${rows}</tbody></table>`,
        malformed: false,
      };
    }
    case 4: {
      const tag = rng.chance(0.5) ? 'ul' : 'ol';
      const items = rng
        .sample(XML_SENTENCES, 3)
        .map((x) => `<li>${x}</li>`)
        .join('');
      return { html: `<p>Agenda for today:</p><${tag}>${items}</${tag}>`, malformed: false };
    }
    case 5:
      return {
        html: `<p>${s} See <a href="https://research.bank.example/notes/${rng.int(100000)}?lang=en&amp;v=2">the research note</a>.</p>`,
        malformed: false,
      };
    case 6:
      return {
        html: `<p><b>Important:</b> <i>${s}</i><br/>Ref: <code>TKT-${rng.int(1_000_000)}</code></p>`,
        malformed: false,
      };
    case 7: {
      if (others.length < 2) break;
      const [a, b] = rng.sample(others, 2) as [PodUser, PodUser];
      const ma = mention(rng, '0', a);
      const mb = mention(rng, '1', b);
      return {
        html: `<p>${ma.span} ${mb.span} ${s}</p><p>Thanks!</p>`,
        data: { '0': ma.entity, '1': mb.entity },
        malformed: false,
      };
    }
    default:
      break;
  }
  return { html: `<p>${s}</p>`, malformed: false };
}
