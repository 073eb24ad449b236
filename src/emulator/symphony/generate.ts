import type { V4AttachmentInfo, V4Message, V4User } from '../../source/symphony/api-types.ts';
import {
  ATTACHMENT_NAMES,
  CHIME,
  DISCLAIMER,
  FIRST_NAMES,
  FORM_QUESTIONS,
  LAST_NAMES,
  ROOM_NAMES,
  ROOM_RENAME_SUFFIXES,
  SENTENCES,
  USER_AGENTS,
  XML_SENTENCES,
  buildContent,
  elementsForm,
  presentationMl,
} from './content.ts';
import { Prng, hashSeed } from './prng.ts';
import { computeGroundTruth } from './truth.ts';
import type {
  LiveCapture,
  MembershipSpan,
  Pod,
  PodAttachment,
  PodEvent,
  PodStream,
  PodUser,
  Timeline,
} from './types.ts';
import { isMemberAt, lowerBound, membersAt } from './views.ts';

export interface GenerateOptions {
  seed: number;
  users: number;
  streams: number;
  messages: number;
  botUsername: string;
  brokenAttachments: boolean;
  unknownStreamType: boolean;
  live?: { startFraction: number; capture: LiveCapture };
}

/** 2026-11-01T08:00Z: messages spread over DAYS days from here. */
const MESSAGE_START = Date.UTC(2026, 10, 1, 8, 0, 0);
const DAYS = 5;
/** Streams that exist at the start are created from here, before any message. */
const STREAM_START = Date.UTC(2026, 8, 1, 9, 0, 0);
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Room members added at creation join one second apart after the creator, each with its USERJOINEDROOM. */
const INITIAL_JOIN_GAP = 1000;
/** More than the 500-message maximum page of `GET /agent/v4/stream/{sid}/message` (symphony-api.md §2.4). */
const BIG_BURST = 520;
const BIG_BURST_MIN_MESSAGES = 5000;
/** Live events need some room after the live start. */
const MIN_LIVE_WINDOW = 2 * HOUR;

const INTERNAL_COMPANY = { name: 'Bank Example', id: 1, domain: 'bank.example' };
const PARTNER_COMPANY = { name: 'Partner Capital', id: 2, domain: 'partner.example' };
const FEDERATED_COMPANY = { name: 'Federated Markets', id: 3 };
/** Where users whose address changed had their mail before. */
const OLD_DOMAIN = 'old.bank.example';

/** 25 random bytes, URL-safe unpadded base64 (34 chars), as Symphony stream and message ids (symphony-api.md §2.1). */
function symphonyId(rng: Prng): string {
  return rng.bytes(25).toString('base64url');
}

const EVENT_ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function asciiLocal(name: string): string {
  return name
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
}

interface Gen {
  rng: Prng;
  opts: GenerateOptions;
  timeline: Timeline;
  /** Live events happen in [from, to]; absent for a pod that is not live or has no time left after its start. */
  liveWindow?: { from: number; to: number };
  bot: PodUser;
  humans: PodUser[];
  usersById: Map<number, PodUser>;
  /** Join and leave times per stream: nothing else may happen in that stream at those milliseconds. */
  changeTimes: Map<PodStream, Set<number>>;
  /** When the last member added at creation joined. */
  openedAt: Map<PodStream, number>;
  /** Streams other than walls that each user is ever a member of. */
  streamsByUser: Map<number, PodStream[]>;
  events: Omit<PodEvent, 'id' | 'messageId' | 'standardIds'>[];
}

function between(rng: Prng, from: number, to: number): number {
  return from + rng.int(Math.max(1, to - from));
}

/** The first millisecond at or after `t` with no join or leave in the stream. */
function freeTime(g: Gen, stream: PodStream, t: number): number {
  const taken = g.changeTimes.get(stream);
  while (taken?.has(t)) t++;
  return t;
}

function claimChangeTime(g: Gen, stream: PodStream, t: number): number {
  const free = freeTime(g, stream, t);
  let taken = g.changeTimes.get(stream);
  if (!taken) g.changeTimes.set(stream, (taken = new Set()));
  taken.add(free);
  return free;
}

/** The address a user had at `t`: messages keep the one they were sent with. */
function emailAt(u: PodUser, t: number): string | undefined {
  return u.previousEmail !== undefined && t < (u.emailChangedAt ?? 0) ? u.previousEmail : u.email;
}

export function v4UserAt(u: PodUser, t: number): V4User {
  const out: V4User = { userId: u.id, firstName: u.firstName, lastName: u.lastName, displayName: u.displayName };
  const email = emailAt(u, t);
  if (email) out.email = email;
  if (u.username) out.username = u.username;
  return out;
}

function generateUsers(
  rng: Prng,
  count: number,
  botUsername: string,
  emailChangeBefore: number,
): { bot: PodUser; humans: PodUser[] } {
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
    if (!noEmail) {
      const domain = external ? PARTNER_COMPANY.domain : INTERNAL_COMPANY.domain;
      let local = `${asciiLocal(first)}.${asciiLocal(last)}`;
      for (let n = 2; usedEmails.has(`${local}@${domain}`); n++) local = `${asciiLocal(first)}.${asciiLocal(last)}${n}`;
      usedEmails.add(`${local}@${domain}`);
      user.email = `${local}@${domain}`;
      // Some directories keep mixed-case addresses; mailbox keys are lower-cased in the ground truth.
      if (i % 13 === 5)
        user.email = `${first.normalize('NFD').replace(/[^A-Za-z]/g, '')}.${local.split('.')[1]}@${domain}`;
      if (!external && i % 9 === 4) {
        // An address change: older messages carry the old address, the directory the new one.
        user.previousEmail = `${local}@${OLD_DOMAIN}`;
        user.emailChangedAt = between(rng, MESSAGE_START, emailChangeBefore);
      }
    }
    if (!external && !noEmail) user.username = `${asciiLocal(first)}${asciiLocal(last)}`.slice(0, 16) + String(i);
    humans.push(user);
  }
  return { bot, humans };
}

type StreamPlan = 'IM' | 'MIM' | 'GROUP' | 'ROOM' | 'POST';

function planStreams(rng: Prng, count: number, maxPosts: number): StreamPlan[] {
  // From 5 streams on, every type is there at least once.
  const atLeast = count >= 5 ? 1 : 0;
  const nIm = Math.max(atLeast, Math.round(count * 0.35));
  const nMim = Math.max(atLeast, Math.round(count * 0.1));
  const nGroup = Math.max(atLeast, Math.round(count * 0.15));
  const nPost = Math.min(maxPosts, Math.max(atLeast, Math.round(count * 0.1)));
  const nRoom = Math.max(0, count - nIm - nMim - nGroup - nPost);
  const plan: StreamPlan[] = [
    ...Array<StreamPlan>(nIm).fill('IM'),
    ...Array<StreamPlan>(nMim).fill('MIM'),
    ...Array<StreamPlan>(nGroup).fill('GROUP'),
    ...Array<StreamPlan>(nPost).fill('POST'),
    ...Array<StreamPlan>(nRoom).fill('ROOM'),
  ].slice(0, count);
  // Fisher-Yates so creation order mixes types.
  for (let i = plan.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [plan[i], plan[j]] = [plan[j] as StreamPlan, plan[i] as StreamPlan];
  }
  return plan;
}

function generateStreams(g: Gen): PodStream[] {
  const { rng, humans, bot } = g;
  const internal = humans.filter((u) => !u.isExternal);
  const partners = humans.filter((u) => u.isExternal && u.email);
  const noEmail = humans.filter((u) => !u.email);
  if (internal.length < 2) throw new Error('the emulator needs at least 2 internal users');
  const plan = planStreams(rng, g.opts.streams, internal.length);
  // In a live pod, the last room and the last IM are created after the live start (ROOMCREATED, INSTANTMESSAGECREATED).
  const liveRoom = g.liveWindow ? plan.lastIndexOf('ROOM') : -1;
  const liveIm = g.liveWindow ? plan.lastIndexOf('IM') : -1;
  const spacing = Math.min(HOUR, Math.floor((MESSAGE_START - STREAM_START) / (plan.length + 1)));
  const streams: PodStream[] = [];
  let roomNo = 0;
  let imNo = 0;
  for (let i = 0; i < plan.length; i++) {
    const p = plan[i] as StreamPlan;
    const live = (i === liveRoom || i === liveIm) && g.liveWindow;
    const createdDate = live
      ? between(rng, live.from, live.from + (live.to - live.from) / 3)
      : STREAM_START + i * spacing + rng.int(Math.max(1, spacing / 2));
    let members: PodUser[];
    let botMember = false;
    if (p === 'IM') {
      members = rng.sample(internal, 2);
      if (imNo % 4 === 1) {
        // The bot's own IMs: what a datafeed sees (symphony-api.md §2.9).
        members = [members[0] as PodUser, bot];
        botMember = true;
      } else if (imNo % 3 === 2 && partners.length > 0) {
        // External IMs exist too (symphony-api.md §2.3 sample).
        members = [members[0] as PodUser, rng.pick(partners)];
      }
      imNo++;
    } else if (p === 'MIM') {
      members = rng.sample(internal, Math.min(internal.length, rng.range(3, 5)));
    } else if (p === 'GROUP') {
      members = rng.sample(internal, Math.min(internal.length, rng.range(3, 6)));
    } else if (p === 'POST') {
      // The owner is chosen once rooms exist (see assignWallOwners).
      members = [];
    } else {
      // Room sizes leave a few internal users out, who can join later.
      members = rng.sample(internal, Math.max(2, Math.min(internal.length - 2, rng.range(3, 12))));
      if (roomNo % 3 === 1) {
        // External rooms carry a partner and a member without an email (the unmappable case).
        if (partners.length > 0) members.push(partners[roomNo % partners.length] as PodUser);
        if (noEmail.length > 0) members.push(noEmail[roomNo % noEmail.length] as PodUser);
      }
      if (i === liveRoom) {
        // A room the bot creates: its ROOMCREATED reaches the bot's datafeed too.
        members.unshift(bot);
        botMember = true;
      } else if (roomNo % 3 === 0) {
        members.splice(1, 0, bot);
        botMember = true;
      }
    }
    const creator = members[0] ?? bot;
    const kind = p === 'IM' ? 'IM' : p === 'MIM' ? 'MIM' : p === 'POST' ? 'POST' : 'ROOM';
    const groupChat = p === 'GROUP';
    const external = members.some((m) => m.isExternal);
    // IM and MIM members are fixed at creation; room members are added one by one after the creator.
    const spans: MembershipSpan[] = members.map((m, idx) => ({
      userId: m.id,
      join: kind === 'ROOM' ? createdDate + idx * INITIAL_JOIN_GAP : createdDate,
      // Group chats make every member an owner (symphony-api.md §2.2, SBE 20.16).
      isOwner: kind === 'ROOM' ? groupChat || idx === 0 : false,
      isCreator: idx === 0,
    }));
    const stream: PodStream = {
      id: symphonyId(rng),
      kind,
      reportedType: kind,
      groupChat,
      names: [],
      isPublic: p === 'ROOM' && !external && rng.chance(0.3),
      isExternal: external,
      origin: 'INTERNAL',
      originCompany: creator.company,
      originCompanyId: creator.companyId,
      active: true,
      createdDate,
      creatorId: creator.id,
      spans,
      modifications: [],
      botMember,
      messages: [],
      timestamps: [],
    };
    for (const s of spans) claimChangeTime(g, stream, s.join);
    g.openedAt.set(stream, spans.at(-1)?.join ?? createdDate);
    if (p === 'ROOM') {
      const base = ROOM_NAMES[roomNo % ROOM_NAMES.length] as string;
      const name = roomNo < ROOM_NAMES.length ? base : `${base} ${Math.floor(roomNo / ROOM_NAMES.length) + 1}`;
      stream.names.push({ at: createdDate, name });
      stream.roomDescription = `${name} discussion`;
      roomNo++;
    } else if (groupChat) {
      // Group chats have no user-given name; the pod shows the member names.
      const name = members
        .slice(0, 3)
        .map((m) => m.firstName)
        .join(', ');
      stream.names.push({ at: createdDate, name });
    }
    streams.push(stream);
  }
  const rooms = streams.filter((s) => s.kind === 'ROOM' && !s.groupChat && s.createdDate < MESSAGE_START);
  // One deactivated conversation, preferably a room, never one of the bot's (they carry its forms).
  const inactive =
    rooms.findLast((s) => !s.botMember) ??
    streams.findLast((s) => !s.botMember && s.kind !== 'POST' && s.kind !== 'IM' && s.createdDate < MESSAGE_START);
  if (inactive) inactive.active = false;
  if (g.opts.unknownStreamType) {
    const target = rooms.find((s) => !s.isExternal && s.active) ?? streams[0];
    if (target) target.reportedType = 'CHATROOM';
  }
  return streams;
}

/** A wall (POST stream) belongs to one user who is in a room, so that they have something to share. */
function assignWallOwners(g: Gen, streams: PodStream[]): void {
  const inRooms = new Set<number>();
  for (const s of streams) {
    if (s.kind !== 'ROOM') continue;
    for (const m of s.spans) if (m.userId !== g.bot.id) inRooms.add(m.userId);
  }
  const candidates = g.humans.filter((u) => inRooms.has(u.id) && !u.isExternal);
  const owners = g.rng.sample(candidates.length > 0 ? candidates : g.humans, streams.length);
  let next = 0;
  for (const s of streams) {
    if (s.kind !== 'POST') continue;
    const owner = owners[next++ % owners.length] as PodUser;
    s.spans.push({ userId: owner.id, join: s.createdDate, isOwner: true, isCreator: true });
    s.creatorId = owner.id;
    s.originCompany = owner.company;
    s.originCompanyId = owner.companyId;
    claimChangeTime(g, s, s.createdDate);
    g.openedAt.set(s, s.createdDate);
  }
}

/**
 * Joins after creation (history and live) and, in the live part only, leaves and re-joins: the REST API has no
 * leave date (symphony-api.md §2.3), so only a feed can tell when a past member left.
 */
function generateMembershipChanges(g: Gen, streams: PodStream[]): void {
  const { rng } = g;
  const internal = g.humans.filter((u) => !u.isExternal);
  // A deactivated room keeps the members it had.
  const rooms = streams.filter((s) => s.kind === 'ROOM' && !s.groupChat && s.active);
  for (const room of rooms) {
    const from = Math.max(g.timeline.start, (g.openedAt.get(room) ?? room.createdDate) + 1);
    const outside = internal.filter((u) => !room.spans.some((s) => s.userId === u.id));
    for (const u of rng.sample(outside, rng.range(1, 2))) {
      const join = claimChangeTime(g, room, between(rng, from, g.timeline.end - HOUR));
      room.spans.push({ userId: u.id, join, isOwner: false, isCreator: false });
    }
  }
  const live = g.liveWindow;
  if (live) {
    // A datafeed only sees the bot's rooms, so with that capture the unknowable leaves stay out of other rooms.
    const eligible = rooms.filter((r) => g.opts.live?.capture !== 'datafeed' || r.botMember);
    // The first leaver of the pod comes back, the second does not; after that it is a coin toss.
    let leavers = 0;
    eligible.forEach((room, n) => {
      if (n > 0 && !rng.chance(0.7)) return;
      const anchor = room.spans.find((s) => s.userId !== g.bot.id)?.userId;
      for (let k = n === 0 ? 2 : rng.range(1, 2); k > 0; k--) {
        const at = between(rng, Math.max(live.from, (g.openedAt.get(room) ?? 0) + 1), live.to - HOUR);
        const candidates = room.spans.filter(
          (s) => s.leave === undefined && s.join < at && !s.isCreator && s.userId !== g.bot.id && s.userId !== anchor,
        );
        if (candidates.length === 0) continue;
        const span = rng.pick(candidates);
        span.leave = claimChangeTime(g, room, at);
        leavers++;
        if (leavers === 1 || (leavers > 2 && rng.chance(0.5))) {
          const join = claimChangeTime(g, room, between(rng, span.leave + 1, live.to));
          room.spans.push({ userId: span.userId, join, isOwner: false, isCreator: false });
        }
      }
    });
  }
  for (const s of streams) {
    s.spans.sort((a, b) => a.join - b.join);
    for (const span of s.spans) {
      if (s.kind === 'ROOM') {
        if (span.join !== s.createdDate) {
          // Members added at creation are added by the creator; later joiners join by themselves.
          const initiatorId = span.join <= (g.openedAt.get(s) ?? 0) ? s.creatorId : span.userId;
          g.events.push({
            type: 'USERJOINEDROOM',
            timestamp: span.join,
            stream: s,
            initiatorId,
            affectedUserId: span.userId,
          });
          if (span.join > s.createdDate) s.modifications.push(span.join);
        }
        if (span.leave !== undefined) {
          g.events.push({
            type: 'USERLEFTROOM',
            timestamp: span.leave,
            stream: s,
            initiatorId: span.userId,
            affectedUserId: span.userId,
          });
          s.modifications.push(span.leave);
        }
      }
    }
    if (s.kind === 'ROOM')
      g.events.push({ type: 'ROOMCREATED', timestamp: s.createdDate, stream: s, initiatorId: s.creatorId });
    else if (s.kind !== 'POST') {
      g.events.push({ type: 'INSTANTMESSAGECREATED', timestamp: s.createdDate, stream: s, initiatorId: s.creatorId });
    }
  }
}

function allocateMessages(rng: Prng, streams: PodStream[], total: number): number[] {
  const weights = streams.map((s) =>
    s.kind === 'POST'
      ? rng.range(1, 3)
      : s.kind === 'IM'
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

/** The stream that gets the burst of more than one page at one millisecond, and enough messages for it. */
function reserveBigBurst(streams: PodStream[], counts: number[], total: number): number | undefined {
  if (total < BIG_BURST_MIN_MESSAGES) return undefined;
  let target: number | undefined;
  streams.forEach((s, i) => {
    if (s.kind !== 'ROOM' || s.groupChat || !s.active || s.createdDate >= MESSAGE_START) return;
    if (target === undefined || (counts[i] ?? 0) > (counts[target] ?? 0)) target = i;
  });
  if (target === undefined) return undefined;
  let deficit = BIG_BURST + 80 - (counts[target] ?? 0);
  while (deficit > 0) {
    let moved = false;
    for (let i = 0; i < counts.length && deficit > 0; i++) {
      if (i === target || (counts[i] ?? 0) <= 1) continue;
      counts[i] = (counts[i] ?? 0) - 1;
      counts[target] = (counts[target] ?? 0) + 1;
      deficit--;
      moved = true;
    }
    if (!moved) break;
  }
  return (counts[target] ?? 0) > BIG_BURST ? target : undefined;
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

interface MessageState {
  messagesById: Pod['messagesById'];
  attachments: Map<string, PodAttachment>;
  replacedBy: Pod['replacedBy'];
  malformedMessages: string[];
  brokenAttachments: Pod['groundTruth']['brokenAttachments'];
  forms: V4Message[];
  /** Messages that are forwards: their parent is picked in another stream once every stream has messages. */
  forwards: { stream: PodStream; message: V4Message }[];
  /** Messages a wall post shares: never suppressed, so the share always has something to show. */
  shared: Set<string>;
  globalIndex: number;
}

function messageTimes(g: Gen, stream: PodStream, n: number, bursts: number[]): number[] {
  const { rng } = g;
  const opened = (g.openedAt.get(stream) ?? stream.createdDate) + 1;
  // Walls share room messages, so their posts start once rooms have some.
  const from = Math.max(stream.kind === 'POST' ? g.timeline.start + 6 * HOUR : g.timeline.start, opened);
  const to = stream.active ? g.timeline.end - 1 : Math.min(g.timeline.end - 1, g.timeline.start + 2 * DAY);
  const ts = Array.from({ length: n }, () => between(rng, from, Math.max(from + 1, to))).sort((a, b) => a - b);
  for (const k of bursts) {
    if (n < 3) break;
    const size = Math.min(k, n);
    const at = rng.int(n - size + 1);
    for (let j = at + 1; j < at + size; j++) ts[j] = ts[at] as number;
  }
  // Nothing is sent at the millisecond of a join or leave, so "member at t" never depends on the order of the two.
  return ts.map((t) => freeTime(g, stream, t)).sort((a, b) => a - b);
}

function generateMessages(g: Gen, stream: PodStream, n: number, bursts: number[], st: MessageState): void {
  const { rng, usersById, bot } = g;
  const ts = messageTimes(g, stream, n, bursts);
  const streamType = stream.reportedType;
  const disclaimers = stream.kind === 'ROOM' && !stream.groupChat && (stream.isExternal || stream.botMember);
  let lastDisclaimerDay = -1;
  const formSlots = new Set<number>();
  if (stream.botMember && n >= 2) {
    formSlots.add(Math.floor(n * 0.3));
    if (n >= 10) formSlots.add(Math.floor(n * 0.6));
  }
  let imTurn = 0;
  for (let i = 0; i < n; i++) {
    const timestamp = ts[i] as number;
    const messageId = symphonyId(rng);
    const humans = membersAt(stream, timestamp)
      .filter((s) => s.userId !== bot.id)
      .map((s) => usersById.get(s.userId) as PodUser);
    const form = formSlots.has(i);
    let author = form ? bot : stream.kind === 'IM' ? (humans[imTurn++ % humans.length] as PodUser) : rng.pick(humans);
    const msg: V4Message = {
      messageId,
      timestamp,
      message: '',
      user: v4UserAt(author, timestamp),
      stream: { streamId: stream.id, streamType },
      userAgent: rng.pick(USER_AGENTS),
      originalFormat: 'com.symphony.messageml.v2',
      sid: rng.uuid(),
    };
    if (form) {
      const formId = `form-${st.forms.length + 1}`;
      msg.message = elementsForm(formId, rng.pick(FORM_QUESTIONS));
      msg.userAgent = 'Agent-24.9.0-Linux-5.15.0-1064-aws';
      st.forms.push(msg);
    } else if (stream.kind === 'POST') {
      shareIntoWall(g, stream, msg, st);
    } else if (i > 0 && rng.chance(0.02)) {
      msg.message = CHIME;
    } else {
      // Edits: a new message that replaces an earlier one by the same author, still a member (symphony-api.md §4.1).
      if (i > 0 && rng.chance(0.03)) {
        const candidates = stream.messages
          .slice(Math.max(0, i - 8))
          .filter(
            (m) =>
              !st.replacedBy.has(m.messageId) &&
              m.timestamp < timestamp &&
              m.message !== CHIME &&
              Number(m.user.userId) !== bot.id &&
              isMemberAt(stream, Number(m.user.userId), timestamp),
          );
        const original = candidates.length > 0 ? rng.pick(candidates) : undefined;
        if (original) {
          author = usersById.get(Number(original.user.userId)) as PodUser;
          msg.user = v4UserAt(author, timestamp);
          msg.replacing = original.messageId;
          msg.initialMessageId = original.initialMessageId ?? original.messageId;
          msg.initialTimestamp = original.initialTimestamp ?? original.timestamp;
          st.replacedBy.set(original.messageId, { id: messageId, at: timestamp });
        }
      }
      if (!msg.replacing && i > 0 && rng.chance(0.05)) {
        msg.parentMessageId = (stream.messages[rng.int(i)] as V4Message).messageId;
      } else if (!msg.replacing && rng.chance(0.02)) {
        st.forwards.push({ stream, message: msg });
      }
      const malformed = st.globalIndex % 97 === 13;
      const others = humans.filter((m) => m.id !== author.id);
      const content = buildContent(rng, rng.int(9), others, malformed);
      msg.message = presentationMl(msg.replacing ? `${content.html}<p><i>(edited)</i></p>` : content.html);
      if (content.data) msg.data = JSON.stringify(content.data);
      else if (rng.chance(0.5)) msg.data = '{}';
      if (malformed) st.malformedMessages.push(messageId);
      if (st.globalIndex % 53 === 7) msg.attachments = makeAttachments(g, stream, msg, author, st);
    }
    const day = Math.floor(timestamp / DAY);
    if (disclaimers && day !== lastDisclaimerDay) {
      // "usually the first message sent in a room that day" (agent spec, V4Message.disclaimer).
      msg.disclaimer = DISCLAIMER;
      lastDisclaimerDay = day;
    }
    stream.messages.push(msg);
    stream.timestamps.push(timestamp);
    st.messagesById.set(messageId, { stream, message: msg });
    g.events.push({
      type: stream.kind === 'POST' ? 'SHAREDPOST' : 'MESSAGESENT',
      timestamp,
      stream,
      initiatorId: author.id,
      message: msg,
    });
    st.globalIndex++;
  }
}

function makeAttachments(
  g: Gen,
  stream: PodStream,
  msg: V4Message,
  author: PodUser,
  st: MessageState,
): V4AttachmentInfo[] {
  const { rng } = g;
  const infos: V4AttachmentInfo[] = [];
  const howMany = rng.range(1, 2);
  for (let a = 0; a < howMany; a++) {
    const att: PodAttachment = {
      streamId: stream.id,
      messageId: msg.messageId,
      id: makeFileId(rng, author.id),
      name: rng.pick(ATTACHMENT_NAMES),
      size: rng.range(64, 48_000),
      contentSeed: rng.int(2 ** 32),
      broken: g.opts.brokenAttachments && st.brokenAttachments.length < 3 && a === 0,
    };
    if (att.broken) st.brokenAttachments.push({ streamId: stream.id, messageId: msg.messageId, attachmentId: att.id });
    st.attachments.set(`${msg.messageId}\n${att.id}`, att);
    const info: V4AttachmentInfo = { id: att.id, name: att.name, size: att.size, images: [] };
    if (/\.png$/.test(att.name)) {
      // Images come with preview thumbnails (`images`): downloadable, but not part of the message (§2.6).
      const preview: PodAttachment = {
        ...att,
        id: makeFileId(rng, author.id),
        size: Math.max(32, Math.floor(att.size / 8)),
        contentSeed: rng.int(2 ** 32),
        broken: false,
      };
      st.attachments.set(`${msg.messageId}\n${preview.id}`, preview);
      info.images = [{ id: preview.id, dimension: '600' }];
    }
    infos.push(info);
  }
  return infos;
}

/** A wall post shares an earlier message of a room its owner was in at the time (V4Message.sharedMessage). */
function shareIntoWall(g: Gen, wall: PodStream, msg: V4Message, st: MessageState): void {
  const ownerId = wall.creatorId;
  const rooms = (g.streamsByUser.get(ownerId) ?? []).filter((s) => s.kind === 'ROOM');
  msg.message = presentationMl(`<p>${g.rng.pick(XML_SENTENCES)}</p>`);
  for (let tries = 0; tries < 6 && rooms.length > 0; tries++) {
    const room = g.rng.pick(rooms);
    const before = lowerBound(room.timestamps, msg.timestamp);
    if (before === 0) continue;
    const original = room.messages[g.rng.int(before)] as V4Message;
    if (!isMemberAt(room, ownerId, original.timestamp) || original.message === CHIME) continue;
    msg.sharedMessage = original;
    st.shared.add(original.messageId);
    return;
  }
}

/** Forwards point at a message of another stream that the author could see (V4Message.parentMessageId, §4.1). */
function linkForwards(g: Gen, st: MessageState): void {
  for (const { stream, message } of st.forwards) {
    const authorId = Number(message.user.userId);
    const others = (g.streamsByUser.get(authorId) ?? []).filter((s) => s !== stream);
    for (let tries = 0; tries < 3 && others.length > 0; tries++) {
      const source = g.rng.pick(others);
      const before = lowerBound(source.timestamps, message.timestamp);
      if (before === 0) continue;
      const parent = source.messages[g.rng.int(before)] as V4Message;
      if (!isMemberAt(source, authorId, parent.timestamp)) continue;
      message.parentMessageId = parent.messageId;
      message.message = (message.message ?? '').replace('>', '><p><i>Forwarded message</i></p>');
      break;
    }
  }
}

/** Runs of at least 3 messages sharing one millisecond: index of the first and size. */
function burstsOf(stream: PodStream): { from: number; size: number }[] {
  const out: { from: number; size: number }[] = [];
  for (let i = 0; i < stream.timestamps.length;) {
    let j = i + 1;
    while (j < stream.timestamps.length && stream.timestamps[j] === stream.timestamps[i]) j++;
    if (j - i >= 3) out.push({ from: i, size: j - i });
    i = j;
  }
  return out;
}

/**
 * Suppressions: a few messages anywhere, one inside some bursts of equal timestamps (where a client counting
 * `skip` would step over a message), and in a live pod one inside a burst released at the start, suppressed
 * after it, so that a client paging through it before and after sees the list shrink under its `skip`.
 */
function generateSuppressions(g: Gen, streams: PodStream[], st: MessageState): Map<string, number> {
  const { rng } = g;
  const suppressedAt = new Map<string, number>();
  // Shared originals, forms and messages with a broken attachment stay, so that what they stand for stays visible.
  const protectedIds = new Set<string>([
    ...st.shared,
    ...st.forms.map((f) => f.messageId),
    ...st.brokenAttachments.map((b) => b.messageId),
  ]);
  const suppress = (stream: PodStream, m: V4Message, at: number): void => {
    if (protectedIds.has(m.messageId) || suppressedAt.has(m.messageId)) return;
    const t = freeTime(g, stream, at);
    if (t <= m.timestamp || t >= g.timeline.end) return;
    suppressedAt.set(m.messageId, t);
    const initiatorId = rng.chance(0.7) ? Number(m.user.userId) : g.bot.id;
    g.events.push({ type: 'MESSAGESUPPRESSED', timestamp: t, stream, initiatorId, message: m });
  };
  let anyBurst = false;
  let trap: { stream: PodStream; from: number; size: number } | undefined;
  for (const stream of streams) {
    const ts = stream.timestamps;
    stream.messages.forEach((m, i) => {
      // Bursts get their one suppression below, so that the designed burst sizes hold but for one.
      const inBurst = ts[i - 1] === m.timestamp || ts[i + 1] === m.timestamp;
      if (rng.chance(0.02) && !inBurst) suppress(stream, m, m.timestamp + rng.range(MINUTE, 6 * HOUR));
    });
    for (const b of burstsOf(stream)) {
      const burstAt = stream.timestamps[b.from] as number;
      const liveStart = g.timeline.liveStart;
      if (liveStart !== undefined && burstAt <= liveStart && b.size > (trap?.size ?? 0)) trap = { stream, ...b };
      if (anyBurst && !rng.chance(0.5)) continue;
      anyBurst = true;
      suppress(stream, stream.messages[b.from + 1] as V4Message, burstAt + rng.range(MINUTE, 6 * HOUR));
    }
  }
  const live = g.liveWindow;
  const suppressible = (m: V4Message): boolean => !protectedIds.has(m.messageId) && !suppressedAt.has(m.messageId);
  const inBotStreams = streams.flatMap((x) =>
    x.botMember ? x.messages.filter((m) => suppressible(m)).map((m) => ({ stream: x, m })) : [],
  );
  if (live && inBotStreams.length > 0) {
    // One suppression after the live start where the bot is, so that a datafeed sees one too.
    const { stream, m } = rng.pick(inBotStreams);
    suppress(stream, m, between(rng, Math.max(live.from, m.timestamp + 1), live.to));
  }
  if (live && trap) {
    const { stream, from, size } = trap;
    const target = stream.messages.slice(from + 1, from + size).find((m) => suppressible(m));
    if (target) suppress(stream, target, between(rng, live.from, live.to));
  }
  return suppressedAt;
}

/** Answers to forms, from members other than the bot, after the live start (SYMPHONYELEMENTSACTION, §3). */
function generateFormAnswers(g: Gen, st: MessageState): void {
  const live = g.liveWindow;
  if (!live) return;
  for (const form of st.forms) {
    const stream = st.messagesById.get(form.messageId)?.stream as PodStream;
    const from = Math.max(live.from, form.timestamp + 1);
    if (from >= live.to) continue;
    const formId = /<form id="([^"]+)"/.exec(form.message ?? '')?.[1] ?? 'form';
    for (let k = g.rng.range(1, 2); k > 0; k--) {
      const t = freeTime(g, stream, between(g.rng, from, live.to));
      const who = membersAt(stream, t).filter((s) => s.userId !== g.bot.id);
      if (who.length === 0) continue;
      g.events.push({
        type: 'SYMPHONYELEMENTSACTION',
        timestamp: t,
        stream,
        initiatorId: g.rng.pick(who).userId,
        message: form,
        form: {
          formId,
          values: { action: g.rng.chance(0.7) ? 'approve' : 'reject', comment: g.rng.pick(SENTENCES) },
        },
      });
    }
  }
}

/** Renames after the live start (ROOMUPDATED, §3); group chats keep their generated names. */
function generateRenames(g: Gen, streams: PodStream[]): void {
  const live = g.liveWindow;
  if (!live) return;
  let first = true;
  for (const room of streams) {
    if (room.kind !== 'ROOM' || room.groupChat || !room.active || (!first && !g.rng.chance(0.4))) continue;
    const from = Math.max(live.from, (g.openedAt.get(room) ?? room.createdDate) + 1);
    if (from >= live.to) continue;
    first = false;
    const at = freeTime(g, room, between(g.rng, from, live.to));
    const previous = room.names.at(-1)?.name ?? 'Room';
    room.names.push({ at, name: `${previous.replace(/ \(.*\)$/, '')} (${g.rng.pick(ROOM_RENAME_SUFFIXES)})` });
    room.modifications.push(at);
    g.events.push({ type: 'ROOMUPDATED', timestamp: at, stream: room, initiatorId: room.creatorId });
  }
}

function finishEvents(g: Gen): PodEvent[] {
  const { rng } = g;
  const ids = new Set<string>();
  const eventId = (): string => {
    for (;;) {
      let id = '';
      for (let i = 0; i < 6; i++) id += EVENT_ID_CHARS[rng.int(EVENT_ID_CHARS.length)];
      if (!ids.has(id)) {
        ids.add(id);
        return id;
      }
    }
  };
  return g.events
    .sort((a, b) => a.timestamp - b.timestamp)
    .map((e) => {
      const own = e.type === 'MESSAGESENT' || e.type === 'SHAREDPOST';
      // Assigned in place: copying tens of thousands of events into new literals is the slowest part otherwise.
      return Object.assign(e, {
        id: eventId(),
        messageId: own ? (e.message as V4Message).messageId : symphonyId(rng),
        // Some events carry standard base64 ids in their payload (symphony-api.md §2.1).
        standardIds: !own && rng.chance(0.25),
      });
    });
}

export function generatePod(opts: GenerateOptions): Pod {
  const rng = new Prng(hashSeed(opts.seed, 'pod'));
  const start = MESSAGE_START;
  const end = MESSAGE_START + DAYS * DAY;
  const timeline: Timeline = { start, end };
  let liveWindow: Gen['liveWindow'];
  if (opts.live) {
    const fraction = Math.min(1, Math.max(0, opts.live.startFraction));
    timeline.liveStart = start + Math.round(fraction * (end - start));
    if (end - timeline.liveStart >= MIN_LIVE_WINDOW) liveWindow = { from: timeline.liveStart + 1, to: end - 1 };
  }
  const { bot, humans } = generateUsers(
    rng,
    opts.users,
    opts.botUsername,
    Math.max(start + 1, timeline.liveStart ?? end),
  );
  const users = [bot, ...humans];
  const g: Gen = {
    rng,
    opts,
    timeline,
    bot,
    humans,
    usersById: new Map(users.map((u) => [u.id, u])),
    changeTimes: new Map(),
    openedAt: new Map(),
    streamsByUser: new Map(),
    events: [],
  };
  if (liveWindow) g.liveWindow = liveWindow;

  const streams = generateStreams(g);
  assignWallOwners(g, streams);
  generateMembershipChanges(g, streams);
  for (const s of streams) {
    if (s.kind === 'POST') continue;
    for (const id of new Set(s.spans.map((x) => x.userId)))
      g.streamsByUser.set(id, [...(g.streamsByUser.get(id) ?? []), s]);
  }

  const total = streams.length > 0 ? opts.messages : 0;
  const counts = allocateMessages(rng, streams, total);
  const bigBurst = reserveBigBurst(streams, counts, total);
  // Same-millisecond groups: the biggest streams get a run of 8 and 13 messages sharing one timestamp so
  // that paging with small limits must cross a group using `skip` (symphony-api.md §2.4); with one of them
  // suppressed, at least 7 and 12 stay visible.
  const bySize = streams
    .map((_, i) => i)
    .filter((i) => streams[i]?.kind !== 'POST')
    .sort((a, b) => (counts[b] ?? 0) - (counts[a] ?? 0) || a - b);
  const bursts = new Map<number, number[]>();
  if (bySize[0] !== undefined) bursts.set(bySize[0], [8]);
  if (bySize[1] !== undefined) bursts.set(bySize[1], [13]);
  if (bigBurst !== undefined) bursts.set(bigBurst, [...(bursts.get(bigBurst) ?? []), BIG_BURST]);

  const st: MessageState = {
    messagesById: new Map(),
    attachments: new Map(),
    replacedBy: new Map(),
    malformedMessages: [],
    brokenAttachments: [],
    forms: [],
    forwards: [],
    shared: new Set(),
    globalIndex: 0,
  };
  // Walls go last: they share messages of rooms.
  const order = streams
    .map((_, i) => i)
    .sort((a, b) => Number(streams[a]?.kind === 'POST') - Number(streams[b]?.kind === 'POST'));
  for (const si of order) {
    const stream = streams[si] as PodStream;
    const n = counts[si] ?? 0;
    const extra = n >= 10 && rng.chance(0.4) ? [rng.range(3, 4)] : [];
    // The largest burst is placed last so that no other one cuts into it.
    generateMessages(g, stream, n, [...extra, ...(bursts.get(si) ?? [])], st);
  }
  linkForwards(g, st);
  const suppressedAt = generateSuppressions(g, streams, st);
  generateFormAnswers(g, st);
  generateRenames(g, streams);
  for (const s of streams) {
    if (!s.active) s.modifications.push((s.timestamps.at(-1) ?? s.createdDate) + HOUR);
    s.modifications.sort((a, b) => a - b);
  }
  streams.sort((a, b) => a.createdDate - b.createdDate);

  const pod: Pod = {
    bot,
    users,
    usersById: g.usersById,
    usersByEmail: new Map(users.filter((u) => u.email).map((u) => [(u.email as string).toLowerCase(), u])),
    usersByUsername: new Map(users.filter((u) => u.username).map((u) => [u.username as string, u])),
    streams,
    streamsById: new Map(streams.map((s) => [s.id, s])),
    messagesById: st.messagesById,
    suppressedAt,
    replacedBy: st.replacedBy,
    attachments: st.attachments,
    events: finishEvents(g),
    timeline,
    groundTruth: {
      mailboxes: {},
      unmapped: [],
      messages: 0,
      streams: streams.length,
      brokenAttachments: st.brokenAttachments,
      malformedMessages: st.malformedMessages,
      unknownStreamTypes: streams.filter((s) => s.reportedType !== s.kind).map((s) => s.id),
      suppressed: [],
      events: {},
      capture: opts.live ? opts.live.capture : 'history',
    },
  };
  pod.groundTruth = computeGroundTruth(pod);
  return pod;
}
