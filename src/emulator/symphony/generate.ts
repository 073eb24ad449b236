import type { V4AttachmentInfo, V4Message, V4User } from '../../source/symphony/api-types.ts';
import { Prng, hashSeed } from './prng.ts';
import type { GroundTruth, Pod, PodAttachment, PodMember, PodStream, PodUser } from './types.ts';

export interface GenerateOptions {
  seed: number;
  users: number;
  streams: number;
  messages: number;
  botUsername: string;
  brokenAttachments: boolean;
  unknownStreamType: boolean;
}

const FIRST_NAMES = [
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
const LAST_NAMES = [
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
const ROOM_NAMES = [
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
const SENTENCES = [
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
const USER_AGENTS = [
  'DESKTOP-43.0.0-10902-MacOSX-10.14.6-Chrome-83.0.4103.61',
  'DESKTOP-24.9.1-14120-Windows-10-Chrome-128.0.6613.84',
  'MOBILE-24.8.0-iOS-17.5',
  'Agent-24.9.0-Linux-5.15.0-1064-aws',
];
const ATTACHMENT_NAMES = ['term-sheet.pdf', 'pricing.csv', 'notes.txt', 'chart.png', 'model.xlsx', 'Résumé été.docx'];

/** 2026-11-01T08:00Z: messages spread over DAYS days from here. */
const MESSAGE_START = Date.UTC(2026, 10, 1, 8, 0, 0);
const DAYS = 5;
/** Streams are created an hour apart from here, before any message. */
const STREAM_START = Date.UTC(2026, 8, 1, 9, 0, 0);
const HOUR = 3_600_000;
const DAY = 86_400_000;

const INTERNAL_COMPANY = { name: 'Bank Example', id: 1, domain: 'bank.example' };
const PARTNER_COMPANY = { name: 'Partner Capital', id: 2, domain: 'partner.example' };
const FEDERATED_COMPANY = { name: 'Federated Markets', id: 3 };

/** 25 random bytes, URL-safe unpadded base64 (34 chars), as Symphony stream and message ids (symphony-api.md §2.1). */
function symphonyId(rng: Prng): string {
  return rng.bytes(25).toString('base64url');
}

function asciiLocal(name: string): string {
  return name
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function generateUsers(rng: Prng, count: number, botUsername: string): { bot: PodUser; humans: PodUser[] } {
  const taken = new Set<number>();
  const newId = (): number => {
    // 15-digit ids like real pods (e.g. 344147139494862), kept below 2^53 (symphony-api.md §2.1).
    for (;;) {
      const id = 344_147_000_000_000 + rng.int(999_999_999);
      if (!taken.has(id)) {
        taken.add(id);
        return id;
      }
    }
  };
  const bot: PodUser = {
    id: newId(),
    firstName: 'Archiver',
    lastName: 'Bot',
    displayName: 'Archiver Bot',
    email: `${botUsername}@${INTERNAL_COMPANY.domain}`,
    username: botUsername,
    company: INTERNAL_COMPANY.name,
    companyId: INTERNAL_COMPANY.id,
    isExternal: false,
    accountType: 'SYSTEM',
  };
  const special = Math.min(3, Math.floor(count / 8));
  const usedNames = new Set<string>();
  const usedEmails = new Set<string>([bot.email ?? '']);
  const humans: PodUser[] = [];
  for (let i = 0; i < count; i++) {
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    for (let tries = 0; usedNames.has(`${first} ${last}`) && tries < 20; tries++) {
      first = rng.pick(FIRST_NAMES);
      last = rng.pick(LAST_NAMES);
    }
    usedNames.add(`${first} ${last}`);
    // The last `special` users have no email (cannot be mapped to a mailbox); the `special` before them are external.
    const noEmail = i >= count - special;
    const external = !noEmail && i >= count - 2 * special;
    const company = noEmail ? FEDERATED_COMPANY : external ? PARTNER_COMPANY : INTERNAL_COMPANY;
    let email: string | undefined;
    if (!noEmail) {
      const domain = external ? PARTNER_COMPANY.domain : INTERNAL_COMPANY.domain;
      let local = `${asciiLocal(first)}.${asciiLocal(last)}`;
      for (let n = 2; usedEmails.has(`${local}@${domain}`); n++) local = `${asciiLocal(first)}.${asciiLocal(last)}${n}`;
      usedEmails.add(`${local}@${domain}`);
      email = `${local}@${domain}`;
      // Some directories keep mixed-case addresses; mailbox keys are lower-cased in the ground truth.
      if (i % 13 === 5) email = `${first.normalize('NFD').replace(/[^A-Za-z]/g, '')}.${local.split('.')[1]}@${domain}`;
    }
    const user: PodUser = {
      id: newId(),
      firstName: first,
      lastName: last,
      displayName: `${first} ${last}`,
      company: company.name,
      companyId: company.id,
      isExternal: external || noEmail,
      accountType: 'NORMAL',
    };
    if (email) user.email = email;
    if (!external && !noEmail) user.username = `${asciiLocal(first)}${asciiLocal(last)}`.slice(0, 16) + String(i);
    humans.push(user);
  }
  return { bot, humans };
}

function v4User(u: PodUser): V4User {
  const out: V4User = { userId: u.id, firstName: u.firstName, lastName: u.lastName, displayName: u.displayName };
  if (u.email) out.email = u.email;
  if (u.username) out.username = u.username;
  return out;
}

type StreamPlan = 'IM' | 'MIM' | 'GROUP' | 'ROOM';

function planStreams(rng: Prng, count: number): StreamPlan[] {
  const nIm = Math.round(count * 0.4);
  const nMim = Math.round(count * 0.1);
  const nGroup = Math.round(count * 0.15);
  const nRoom = Math.max(0, count - nIm - nMim - nGroup);
  const plan: StreamPlan[] = [
    ...Array<StreamPlan>(nIm).fill('IM'),
    ...Array<StreamPlan>(nMim).fill('MIM'),
    ...Array<StreamPlan>(nGroup).fill('GROUP'),
    ...Array<StreamPlan>(nRoom).fill('ROOM'),
  ].slice(0, count);
  // Fisher-Yates so creation order mixes types.
  for (let i = plan.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [plan[i], plan[j]] = [plan[j] as StreamPlan, plan[i] as StreamPlan];
  }
  return plan;
}

function generateStreams(rng: Prng, count: number, humans: PodUser[], unknownStreamType: boolean): PodStream[] {
  const internal = humans.filter((u) => !u.isExternal);
  const partners = humans.filter((u) => u.isExternal && u.email);
  const noEmail = humans.filter((u) => !u.email);
  if (internal.length < 2) throw new Error('the emulator needs at least 2 internal users');
  const plan = planStreams(rng, count);
  const streams: PodStream[] = [];
  let roomNo = 0;
  let imNo = 0;
  for (let i = 0; i < plan.length; i++) {
    const p = plan[i] as StreamPlan;
    const createdDate = STREAM_START + i * HOUR + rng.int(HOUR / 2);
    let members: PodUser[];
    let external = false;
    if (p === 'IM') {
      members = rng.sample(internal, 2);
      // Every third IM is with a partner: external IMs exist too (symphony-api.md §2.3 sample).
      if (imNo % 3 === 1 && partners.length > 0) members = [members[0] as PodUser, rng.pick(partners)];
      imNo++;
    } else if (p === 'MIM') {
      members = rng.sample(internal, Math.min(internal.length, rng.range(3, 5)));
    } else if (p === 'GROUP') {
      members = rng.sample(internal, Math.min(internal.length, rng.range(3, 6)));
    } else {
      members = rng.sample(internal, Math.min(internal.length, rng.range(3, 12)));
      if (roomNo % 3 === 1) {
        // External rooms carry a partner and a member without an email (the unmappable case).
        if (partners.length > 0) members.push(partners[roomNo % partners.length] as PodUser);
        if (noEmail.length > 0) members.push(noEmail[roomNo % noEmail.length] as PodUser);
      }
    }
    external = members.some((m) => m.isExternal);
    const creator = members[0] as PodUser;
    const kind = p === 'IM' ? 'IM' : p === 'MIM' ? 'MIM' : 'ROOM';
    const groupChat = p === 'GROUP';
    const podMembers: PodMember[] = members.map((m, idx) => ({
      userId: m.id,
      // Group chats make every member an owner (symphony-api.md §2.2, SBE 20.16).
      isOwner: kind === 'ROOM' ? groupChat || idx === 0 : false,
      isCreator: idx === 0,
      joinDate: createdDate + idx * 1000,
    }));
    const stream: PodStream = {
      id: symphonyId(rng),
      kind,
      reportedType: kind,
      groupChat,
      isPublic: p === 'ROOM' && !external && rng.chance(0.3),
      isExternal: external,
      origin: 'INTERNAL',
      originCompany: creator.company,
      originCompanyId: creator.companyId,
      active: true,
      createdDate,
      lastModifiedDate: createdDate,
      creatorId: creator.id,
      members: podMembers,
      messages: [],
      timestamps: [],
    };
    if (p === 'ROOM') {
      const base = ROOM_NAMES[roomNo % ROOM_NAMES.length] as string;
      stream.roomName = roomNo < ROOM_NAMES.length ? base : `${base} ${Math.floor(roomNo / ROOM_NAMES.length) + 1}`;
      stream.roomDescription = `${stream.roomName} discussion`;
      roomNo++;
    } else if (groupChat) {
      // Group chats have no user-given name; the pod shows the member names.
      stream.roomName = members
        .slice(0, 3)
        .map((m) => m.firstName)
        .join(', ');
    }
    streams.push(stream);
  }
  const rooms = streams.filter((s) => s.kind === 'ROOM' && !s.groupChat);
  const inactive = rooms.at(-1) ?? streams.at(-1);
  if (inactive) inactive.active = false;
  if (unknownStreamType) {
    const target = rooms.find((s) => !s.isExternal && s.active) ?? streams[0];
    if (target) target.reportedType = 'CHATROOM';
  }
  return streams;
}

function allocateMessages(rng: Prng, streams: PodStream[], total: number): number[] {
  const weights = streams.map((s) =>
    s.kind === 'IM'
      ? rng.range(1, 6)
      : s.kind === 'MIM'
        ? rng.range(2, 6)
        : s.groupChat
          ? rng.range(2, 8)
          : rng.range(3, 12),
  );
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.floor((total * w) / sum));
  let rest = total - counts.reduce((a, b) => a + b, 0);
  for (let i = 0; rest > 0 && counts.length > 0; i = (i + 1) % counts.length, rest--) counts[i] = (counts[i] ?? 0) + 1;
  return counts;
}

interface Content {
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

function buildContent(rng: Prng, kind: number, others: PodUser[], malformed: boolean): Content {
  const s = escapeXml(rng.pick(SENTENCES));
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
        .sample(SENTENCES, 3)
        .map((x) => `<li>${escapeXml(x)}</li>`)
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

function makeFileId(rng: Prng, uploaderId: number): string {
  // File ids contain `/ + =` (symphony-api.md §2.1): force both so clients must percent-encode.
  const chars = rng.bytes(16).toString('base64').split('');
  if (!chars.includes('+')) chars[3] = '+';
  if (!chars.includes('/')) chars[9] = '/';
  return `internal_${uploaderId}/${chars.join('')}`;
}

/** Deterministic attachment bytes; text-like names get printable content. */
export function attachmentBytes(att: PodAttachment): Buffer {
  const rng = new Prng(att.contentSeed);
  if (/\.(txt|csv)$/.test(att.name)) {
    const line = 'tenor,bid,ask,notional\n';
    const out = Buffer.alloc(att.size);
    for (let i = 0; i < att.size; i++) {
      out[i] = i < line.length ? line.charCodeAt(i) : i % 32 === 31 ? 10 : 48 + rng.int(10);
    }
    return out;
  }
  return rng.bytes(att.size);
}

export function generatePod(opts: GenerateOptions): Pod {
  const rng = new Prng(hashSeed(opts.seed, 'pod'));
  const { bot, humans } = generateUsers(rng, opts.users, opts.botUsername);
  const streams = generateStreams(rng, opts.streams, humans, opts.unknownStreamType);
  const usersById = new Map<number, PodUser>([bot, ...humans].map((u) => [u.id, u]));
  const counts = allocateMessages(rng, streams, streams.length > 0 ? opts.messages : 0);

  // Same-millisecond groups: the biggest streams get a run of 7 and 12 messages sharing one timestamp so
  // that paging with small limits must cross a group using `skip` (symphony-api.md §2.4).
  const bySize = streams.map((_, i) => i).sort((a, b) => (counts[b] ?? 0) - (counts[a] ?? 0) || a - b);
  const bigGroups = new Map<number, number>();
  if (bySize[0] !== undefined) bigGroups.set(bySize[0], 7);
  if (bySize[1] !== undefined) bigGroups.set(bySize[1], 12);

  const messagesById = new Map<string, { stream: PodStream; message: V4Message }>();
  const attachments = new Map<string, PodAttachment>();
  const malformedMessages: string[] = [];
  const brokenAttachments: GroundTruth['brokenAttachments'] = [];
  let globalIndex = 0;

  streams.forEach((stream, si) => {
    const n = counts[si] ?? 0;
    const span = stream.active ? DAYS * DAY : 2 * DAY;
    const ts = Array.from({ length: n }, () => MESSAGE_START + rng.int(span)).sort((a, b) => a - b);
    const group = bigGroups.get(si);
    if (group !== undefined && n >= 3) {
      const k = Math.min(group, n);
      const at = Math.floor((n - k) / 3);
      for (let j = at + 1; j < at + k; j++) ts[j] = ts[at] as number;
    }
    if (n >= 10 && rng.chance(0.4)) {
      const k = rng.range(2, 4);
      const at = rng.int(n - k);
      for (let j = at + 1; j < at + k; j++) ts[j] = ts[at] as number;
    }

    const members = stream.members.map((m) => usersById.get(m.userId) as PodUser);
    const streamType = stream.reportedType;
    for (let i = 0; i < n; i++) {
      const timestamp = ts[i] as number;
      const messageId = symphonyId(rng);
      let author = stream.kind === 'IM' ? (members[i % 2] as PodUser) : rng.pick(members);
      const msg: V4Message = {
        messageId,
        timestamp,
        message: '',
        user: v4User(author),
        stream: { streamId: stream.id, streamType },
        userAgent: rng.pick(USER_AGENTS),
        originalFormat: 'com.symphony.messageml.v2',
        sid: rng.uuid(),
      };
      // Edits: a new message that replaces an earlier one by the same author (symphony-api.md §4.1).
      if (i > 0 && rng.chance(0.03)) {
        const candidates = stream.messages
          .slice(Math.max(0, i - 8))
          .filter((m) => !m.replacedBy && m.timestamp < timestamp);
        const original = candidates.length > 0 ? rng.pick(candidates) : undefined;
        if (original) {
          author = usersById.get(Number(original.user.userId)) as PodUser;
          msg.user = v4User(author);
          msg.replacing = original.messageId;
          msg.initialMessageId = original.initialMessageId ?? original.messageId;
          msg.initialTimestamp = original.initialTimestamp ?? original.timestamp;
          original.replacedBy = messageId;
        }
      }
      if (!msg.replacing && i > 0 && rng.chance(0.05)) {
        msg.parentMessageId = (stream.messages[rng.int(i)] as V4Message).messageId;
      }
      const malformed = globalIndex % 97 === 13;
      const others = members.filter((m) => m.id !== author.id);
      const content = buildContent(rng, rng.int(9), others, malformed);
      const body = msg.replacing ? `${content.html}<p><i>(edited)</i></p>` : content.html;
      msg.message = `<div data-format="PresentationML" data-version="2.0" class="wysiwyg">${body}</div>`;
      if (content.data) msg.data = JSON.stringify(content.data);
      else if (rng.chance(0.5)) msg.data = '{}';
      if (malformed) malformedMessages.push(messageId);
      if (globalIndex % 53 === 7) {
        const infos: V4AttachmentInfo[] = [];
        const howMany = rng.range(1, 2);
        for (let a = 0; a < howMany; a++) {
          const att: PodAttachment = {
            streamId: stream.id,
            messageId,
            id: makeFileId(rng, author.id),
            name: rng.pick(ATTACHMENT_NAMES),
            size: rng.range(64, 48_000),
            contentSeed: rng.int(2 ** 32),
            broken: opts.brokenAttachments && brokenAttachments.length < 3 && a === 0,
          };
          if (att.broken) brokenAttachments.push({ streamId: stream.id, messageId, attachmentId: att.id });
          attachments.set(`${messageId}\n${att.id}`, att);
          infos.push({ id: att.id, name: att.name, size: att.size, images: [] });
        }
        msg.attachments = infos;
      }
      stream.messages.push(msg);
      stream.timestamps.push(timestamp);
      messagesById.set(messageId, { stream, message: msg });
      globalIndex++;
    }
    if (n > 0) {
      stream.lastMessageDate = ts[n - 1] as number;
      stream.lastModifiedDate = stream.active ? stream.createdDate : (stream.lastMessageDate ?? 0) + HOUR;
    }
  });

  const mailboxes: Record<string, string[]> = {};
  const unmapped: GroundTruth['unmapped'] = [];
  for (const stream of streams) {
    for (const m of stream.members) {
      const u = usersById.get(m.userId) as PodUser;
      if (u.email) mailboxes[u.email.toLowerCase()] ??= [];
    }
    for (const msg of stream.messages) {
      for (const m of stream.members) {
        const u = usersById.get(m.userId) as PodUser;
        if (u.email) mailboxes[u.email.toLowerCase()]?.push(msg.messageId);
        else unmapped.push({ userId: String(u.id), messageId: msg.messageId });
      }
    }
  }

  const users = [bot, ...humans];
  return {
    bot,
    users,
    usersById,
    usersByEmail: new Map(users.filter((u) => u.email).map((u) => [(u.email as string).toLowerCase(), u])),
    usersByUsername: new Map(users.filter((u) => u.username).map((u) => [u.username as string, u])),
    streams,
    streamsById: new Map(streams.map((s) => [s.id, s])),
    messagesById,
    attachments,
    groundTruth: {
      mailboxes,
      unmapped,
      messages: messagesById.size,
      streams: streams.length,
      brokenAttachments,
      malformedMessages,
      unknownStreamTypes: streams.filter((s) => s.reportedType !== s.kind).map((s) => s.id),
    },
  };
}
