/**
 * Datafeed / Datahose events that become archive items of their own (symphony-api.md §3): MESSAGESUPPRESSED
 * (a removal notice), SYMPHONYELEMENTSACTION (a form response) and the room events of {@link ROOM_EVENT_TYPES}
 * (system notices). Maps a V4Event to the parts of a {@link ConvertInput} that describe it; the caller adds
 * conversation, participants and options.
 *
 * Events arrive unvalidated (reliability.md §3 row 9), so nothing here throws: an event that makes no item
 * comes back as an {@link EventSkip} that says why, for the caller to count and move past.
 */
import { canonicalId, userIdOf } from '../core/ids.ts';
import type { Person } from '../core/types.ts';
import type { V4Message, V4Stream, V4User } from '../source/symphony/api-types.ts';
import {
  ROOM_EVENT_TYPES,
  type ConvertInput,
  type ConvertOptions,
  type RoomEvent,
  type RoomEventType,
  type RoomProperties,
} from './converter.ts';
import { cleanHeaderText } from './headers.ts';

export type EventInput = Pick<ConvertInput, 'message' | 'sender' | 'suppression' | 'elementsAction' | 'roomEvent'>;

/** Every event type {@link readV4Event} turns into an item. */
export const ITEM_EVENT_TYPES = ['MESSAGESUPPRESSED', 'SYMPHONYELEMENTSACTION', ...ROOM_EVENT_TYPES] as const;
export type ItemEventType = (typeof ITEM_EVENT_TYPES)[number];

/**
 * The V4Event types (symphony-api.md §3) that make no item of their own here, each with the reason; every other
 * type is in {@link ITEM_EVENT_TYPES}. The two message events do become items, through the message they carry.
 */
export const NON_ITEM_EVENT_TYPES = {
  MESSAGESENT: 'carries a V4Message (payload.messageSent.message), which the caller converts as a message',
  SHAREDPOST:
    'carries the wall post and the shared original (payload.sharedPost), which the caller converts as one message',
  USERREQUESTEDTOJOINROOM:
    'a request, not a change to the room: no content, and the join it asks for arrives as USERJOINEDROOM',
  CONNECTIONREQUESTED: 'a contact request between two users: no conversation (no stream) and no content',
  CONNECTIONACCEPTED: 'a contact request accepted: no conversation (no stream) and no content',
  GENERICSYSTEMEVENT:
    'free-form parameters of an external system with no documented meaning; the source does not subscribe to it',
} as const;

/**
 * Why an event made no item:
 * - `invalid`: not a V4Event, or without a field its item needs;
 * - `unsupported`: a type that is no item of its own ({@link NON_ITEM_EVENT_TYPES}), or one not known;
 * - `disabled`: a room event while `ConvertOptions.roomEvents` is false.
 */
export type EventSkipReason = 'invalid' | 'unsupported' | 'disabled';

export interface EventSkip {
  skip: EventSkipReason;
  /** The event's `type`, cleaned and capped for a log line; empty when it has none. */
  type: string;
  /** What was wrong, e.g. `payload.userJoinedRoom.affectedUser has no userId`. */
  detail: string;
}

export type EventReadResult = { input: EventInput } | EventSkip;

/** V4Payload key of each type (symphony-api.md §3 table). */
const PAYLOAD_KEY: Record<ItemEventType, string> = {
  MESSAGESUPPRESSED: 'messageSuppressed',
  SYMPHONYELEMENTSACTION: 'symphonyElementsAction',
  ROOMCREATED: 'roomCreated',
  ROOMUPDATED: 'roomUpdated',
  ROOMDEACTIVATED: 'roomDeactivated',
  ROOMREACTIVATED: 'roomReactivated',
  USERJOINEDROOM: 'userJoinedRoom',
  USERLEFTROOM: 'userLeftRoom',
  ROOMMEMBERPROMOTEDTOOWNER: 'roomMemberPromotedToOwner',
  ROOMMEMBERDEMOTEDFROMOWNER: 'roomMemberDemotedFromOwner',
  INSTANTMESSAGECREATED: 'instantMessageCreated',
};

/** Events whose payload names the member concerned in `affectedUser`. */
const MEMBER_EVENTS: ReadonlySet<string> = new Set<RoomEventType>([
  'USERJOINEDROOM',
  'USERLEFTROOM',
  'ROOMMEMBERPROMOTEDTOOWNER',
  'ROOMMEMBERDEMOTEDFROMOWNER',
]);

const ROOM_FLAGS = [
  'external',
  'crossPod',
  'public',
  'copyProtected',
  'readOnly',
  'discoverable',
  'membersCanInvite',
  'canViewHistory',
] as const;

export function isRoomEvent(type: unknown): type is RoomEventType {
  return typeof type === 'string' && (ROOM_EVENT_TYPES as readonly string[]).includes(type);
}

function isItemEvent(type: string): type is ItemEventType {
  return Object.hasOwn(PAYLOAD_KEY, type);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== '';
}

/** Samples spell it `userName` where the spec says `username` (symphony-api.md §3 quirks). */
/** A `V4User` as a Person; the doc samples spell `username` as `userName` too (symphony-api.md §3 quirks). */
export function personOf(user: unknown): Person | undefined {
  if (!isRecord(user)) return undefined;
  const userId = userIdOf(user['userId']);
  if (userId === undefined) return undefined;
  const p: Person = { userId };
  for (const k of ['displayName', 'firstName', 'lastName', 'email', 'username'] as const) {
    const v = user[k] ?? (k === 'username' ? user['userName'] : undefined);
    if (nonEmpty(v)) p[k] = v;
  }
  return p;
}

/**
 * int64 ms; a JSON encoder that keeps int64 exact sends it as a decimal string. Only times a Date can hold
 * (ECMAScript: ±8.64e15 ms) are usable: the converter dates every item (index.ts), so an event beyond them is
 * invalid here rather than an item that fails later.
 */
function timestampOf(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d{1,16}$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isFinite(n) && Math.abs(n) <= 8.64e15 ? n : undefined;
}

function propertiesOf(raw: unknown): RoomProperties | undefined {
  if (!isRecord(raw)) return undefined;
  const out: RoomProperties = {};
  const { name, description } = raw;
  if (nonEmpty(name)) out.name = name;
  if (nonEmpty(description)) out.description = description;
  const creator = personOf(raw['creatorUser']);
  if (creator) out.creator = creator;
  const createdDate = timestampOf(raw['createdDate']);
  if (createdDate !== undefined) out.createdDate = createdDate;
  for (const flag of ROOM_FLAGS) {
    const v = raw[flag];
    if (typeof v === 'boolean') out[flag] = v;
  }
  const keywords = Array.isArray(raw['keywords']) ? raw['keywords'] : [];
  const pairs = keywords
    .filter(isRecord)
    .flatMap(({ key, value }) =>
      nonEmpty(key) && ['string', 'number', 'boolean'].includes(typeof value) ? [{ key, value: String(value) }] : [],
    );
  if (pairs.length > 0) out.keywords = pairs;
  return out;
}

/**
 * The item's own id. A V4Event carries a `messageId` for the event; when it is missing, the id is derived
 * from what the event is about, so a redelivered event maps to the same item (reliability.md §3 row 10).
 */
function eventMessageId(event: Record<string, unknown>, fallback: string): string {
  return nonEmpty(event['messageId']) ? event['messageId'] : fallback;
}

/** The parts of a room event item, or what the payload lacks for one. */
function roomEventInput(
  type: RoomEventType,
  event: Record<string, unknown>,
  p: Record<string, unknown>,
  base: { timestamp: number; sender: Person; user: V4User },
): EventInput | string {
  const key = PAYLOAD_KEY[type];
  const raw = p['stream'];
  if (!isRecord(raw) || !nonEmpty(raw['streamId'])) return `payload.${key}.stream has no streamId`;
  const affectedUser = personOf(p['affectedUser']);
  if (MEMBER_EVENTS.has(type) && !affectedUser) return `payload.${key}.affectedUser has no userId`;
  // `stream.streamType` may be missing (symphony-api.md §3 quirks); the event type says which kind it is.
  const stream = {
    ...raw,
    streamType: nonEmpty(raw['streamType']) ? raw['streamType'] : type === 'INSTANTMESSAGECREATED' ? 'IM' : 'ROOM',
  } as unknown as V4Stream;
  const properties =
    type === 'ROOMCREATED'
      ? propertiesOf(p['roomProperties'])
      : type === 'ROOMUPDATED'
        ? propertiesOf(p['newRoomProperties'])
        : type === 'INSTANTMESSAGECREATED'
          ? propertiesOf({ external: raw['external'], crossPod: raw['crossPod'] })
          : undefined;
  const members =
    type === 'INSTANTMESSAGECREATED' && Array.isArray(raw['members'])
      ? raw['members'].map(personOf).filter((m): m is Person => m !== undefined)
      : undefined;
  const roomEvent: RoomEvent = {
    type,
    ...(affectedUser && MEMBER_EVENTS.has(type) ? { affectedUser } : {}),
    ...(properties && Object.keys(properties).length > 0 ? { properties } : {}),
    ...(members ? { members } : {}),
    v4Event: event,
  };
  const fallback = [canonicalId(raw['streamId']), type, base.timestamp, roomEvent.affectedUser?.userId]
    .filter((part) => part !== undefined)
    .join('.');
  const message: V4Message = {
    messageId: eventMessageId(event, fallback),
    timestamp: base.timestamp,
    user: base.user,
    stream,
  };
  return { message, sender: base.sender, roomEvent };
}

/**
 * Reads one V4Event: `{ input }` with `{message, sender}` plus `suppression` (MESSAGESUPPRESSED),
 * `elementsAction` (SYMPHONYELEMENTSACTION) or `roomEvent` (any of {@link ROOM_EVENT_TYPES}); otherwise
 * `{ skip, type, detail }`. Ids may be numbers or decimal strings, `userName` stands for `username`, and a
 * missing `streamType` is implied by the event type. `options.roomEvents === false` skips room events.
 */
export function readV4Event(event: unknown, options: Pick<ConvertOptions, 'roomEvents'> = {}): EventReadResult {
  if (!isRecord(event)) return { skip: 'invalid', type: '', detail: 'not a V4Event object' };
  const type = typeof event['type'] === 'string' ? event['type'] : '';
  const shown = cleanHeaderText(type).slice(0, 64);
  const skip = (reason: EventSkipReason, detail: string): EventSkip => ({ skip: reason, type: shown, detail });
  if (!type) return skip('invalid', 'no type');
  if (!isItemEvent(type)) {
    const why = Object.hasOwn(NON_ITEM_EVENT_TYPES, type)
      ? NON_ITEM_EVENT_TYPES[type as keyof typeof NON_ITEM_EVENT_TYPES]
      : 'type not known';
    return skip('unsupported', `not archived as an item of its own: ${why}`);
  }
  if (isRoomEvent(type) && options.roomEvents === false) return skip('disabled', 'room events are turned off');

  const timestamp = timestampOf(event['timestamp']);
  if (timestamp === undefined) return skip('invalid', 'no usable timestamp');
  const initiator = isRecord(event['initiator']) ? event['initiator']['user'] : undefined;
  const sender = personOf(initiator);
  if (!sender) return skip('invalid', 'initiator.user has no userId');
  const user = initiator as V4User;
  const key = PAYLOAD_KEY[type];
  const p = isRecord(event['payload']) ? event['payload'][key] : undefined;
  if (!isRecord(p)) return skip('invalid', `no payload.${key}`);

  if (isRoomEvent(type)) {
    const result = roomEventInput(type, event, p, { timestamp, sender, user });
    return typeof result === 'string' ? skip('invalid', result) : { input: result };
  }

  const stream = (isRecord(p['stream']) ? p['stream'] : { streamId: '' }) as unknown as V4Stream;
  if (type === 'MESSAGESUPPRESSED') {
    if (!nonEmpty(p['messageId'])) return skip('invalid', `payload.${key}.messageId is missing`);
    const removed = canonicalId(p['messageId']);
    const message: V4Message = { messageId: eventMessageId(event, `${removed}.suppressed`), timestamp, user, stream };
    return {
      input: {
        message,
        sender,
        suppression: { messageId: removed, suppressedBy: sender, suppressedAt: timestamp, v4Event: event },
      },
    };
  }

  if (!nonEmpty(p['formMessageId'])) return skip('invalid', `payload.${key}.formMessageId is missing`);
  const formMessageId = canonicalId(p['formMessageId']);
  const formValues = isRecord(p['formValues']) ? p['formValues'] : {};
  const message: V4Message = {
    messageId: eventMessageId(event, `${formMessageId}.${sender.userId}.${timestamp}`),
    timestamp,
    user,
    stream,
  };
  const formId = typeof p['formId'] === 'string' ? p['formId'] : '';
  return { input: { message, sender, elementsAction: { formMessageId, formId, formValues, v4Event: event } } };
}

/** {@link readV4Event} for callers that need no reason: the parts, or undefined. */
export function fromV4Event(event: unknown): EventInput | undefined {
  const result = readV4Event(event);
  return 'input' in result ? result.input : undefined;
}
