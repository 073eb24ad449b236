/**
 * Turns one batch of Datafeed v5 / Datahose events (symphony-api.md §2.9, §2.10, §3) into what the pipeline
 * archives: messages and event items grouped by stream, joins and leaves for the membership timeline, and the
 * records it cannot use, each with its reason.
 */
import { personOf, readV4Event, type EventInput } from '../convert/events.ts';
import type { V4Message, V4Stream } from '../source/symphony/api-types.ts';
import { defectOf, timestampOf, toSourceMessage } from '../source/symphony/mapping.ts';
import { canonicalId, userIdOf } from './ids.ts';
import type { Conversation, MembershipChange, Person, SourceMessage } from './types.ts';

/** A message or an event item, as the pipeline archives it. */
export interface ArchiveItem extends SourceMessage {
  /** What the converter needs beyond the message for an event item (removal notice, form response, room event). */
  event?: Omit<EventInput, 'message' | 'sender'>;
  /** Someone the item also goes to whatever the timeline says: the member who joined or left. */
  affected?: Person;
  /** The V4Event an event item came from: what is quarantined, so a retry derives the same item again. */
  record?: unknown;
}

export interface StreamEvents {
  conversation: Conversation;
  items: ArchiveItem[];
  changes: { change: MembershipChange; person: Person | undefined }[];
}

export interface RejectedEvent {
  /** Stable per record: the event id, or the position in the batch when it has none. */
  key: string;
  streamId: string | undefined;
  reason: string;
  record: unknown;
  /** A message the history sweep will read again, so only logged; anything else is quarantined. */
  recoverable: boolean;
}

export interface ClassifiedBatch {
  streams: Map<string, StreamEvents>;
  rejected: RejectedEvent[];
  /** Events repeated within the batch (same id), dropped: the feeds redeliver (§2.9). */
  repeats: number;
  /** Events of a type that makes no item (presence, connection requests): counted, not archived. */
  ignored: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const MEMBERSHIP: Record<string, { key: string; kind: MembershipChange['kind'] }> = {
  USERJOINEDROOM: { key: 'userJoinedRoom', kind: 'join' },
  USERLEFTROOM: { key: 'userLeftRoom', kind: 'leave' },
};

/** `V4Stream` of an event payload, with the fields a conversation needs. */
function conversationOf(stream: Partial<V4Stream> | undefined, streamId: string): Conversation {
  const c: Conversation = { id: streamId, type: typeof stream?.streamType === 'string' ? stream.streamType : 'ROOM' };
  if (typeof stream?.roomName === 'string' && stream.roomName !== '') c.name = stream.roomName;
  if (typeof stream?.external === 'boolean') c.external = stream.external;
  return c;
}

function eventTime(event: Record<string, unknown>): number | undefined {
  return timestampOf(event['timestamp']);
}

/**
 * Membership changes order before other events of the same millisecond, so that a message sent as someone joins
 * is theirs too (join ≤ t); otherwise events keep their order, since the feeds guarantee none (§2.9).
 */
function byTime(a: { ts: number; change: boolean }, b: { ts: number; change: boolean }): number {
  return a.ts - b.ts || Number(b.change) - Number(a.change);
}

/** A quarantined record that is a V4Event rather than a V4Message (it has a `type` and a `payload`). */
export function isV4Event(record: unknown): boolean {
  return isRecord(record) && typeof record['type'] === 'string' && isRecord(record['payload']);
}

export function classifyEvents(events: readonly unknown[], options: { roomEvents: boolean }): ClassifiedBatch {
  const out: ClassifiedBatch = { streams: new Map(), rejected: [], repeats: 0, ignored: 0 };
  const seen = new Set<string>();
  const ordered: { ts: number; change: boolean; event: Record<string, unknown>; key: string }[] = [];
  for (const [position, event] of events.entries()) {
    const id = isRecord(event) && typeof event['id'] === 'string' && event['id'] !== '' ? event['id'] : undefined;
    const key = id ?? `position-${position}`;
    if (id !== undefined) {
      if (seen.has(id)) {
        out.repeats += 1;
        continue;
      }
      seen.add(id);
    }
    const ts = isRecord(event) ? eventTime(event) : undefined;
    if (!isRecord(event) || ts === undefined || typeof event['type'] !== 'string') {
      const reason = !isRecord(event) ? 'not an object' : ts === undefined ? 'no numeric timestamp' : 'no type';
      out.rejected.push({ key, streamId: undefined, reason, record: event, recoverable: false });
      continue;
    }
    ordered.push({ ts, change: event['type'] in MEMBERSHIP, event, key });
  }
  ordered.sort(byTime);

  const group = (stream: Partial<V4Stream> | undefined, streamId: string): StreamEvents => {
    let g = out.streams.get(streamId);
    if (!g) {
      g = { conversation: conversationOf(stream, streamId), items: [], changes: [] };
      out.streams.set(streamId, g);
    }
    return g;
  };
  const reject = (key: string, streamId: string | undefined, reason: string, record: unknown, recoverable = false) =>
    out.rejected.push({ key, streamId, reason, record, recoverable });

  for (const { ts, event, key } of ordered) {
    const type = event['type'] as string;
    const payload = isRecord(event['payload']) ? event['payload'] : {};

    if (type === 'MESSAGESENT' || type === 'SHAREDPOST') {
      const body = payload[type === 'MESSAGESENT' ? 'messageSent' : 'sharedPost'];
      const message = isRecord(body) ? body['message'] : undefined;
      const stream = isRecord(message) && isRecord(message['stream']) ? message['stream'] : undefined;
      const streamId = typeof stream?.['streamId'] === 'string' ? canonicalId(stream['streamId']) : '';
      const defect = defectOf(message) ?? (streamId === '' ? 'no stream id' : undefined);
      if (defect !== undefined) {
        reject(key, streamId || undefined, `${type} event: ${defect}`, event, true);
        continue;
      }
      const raw = message as unknown as V4Message;
      // A share's original travels beside it in the event; the history API nests it in the message (§3, §4.1).
      if (type === 'SHAREDPOST' && !raw.sharedMessage && isRecord(body) && isRecord(body['sharedMessage'])) {
        raw.sharedMessage = body['sharedMessage'] as unknown as V4Message;
      }
      group(stream as Partial<V4Stream>, streamId).items.push(toSourceMessage(raw, streamId));
      continue;
    }

    const membership = MEMBERSHIP[type];
    if (membership) {
      const p = isRecord(payload[membership.key]) ? (payload[membership.key] as Record<string, unknown>) : {};
      const stream = isRecord(p['stream']) ? p['stream'] : undefined;
      const streamId = typeof stream?.['streamId'] === 'string' ? canonicalId(stream['streamId']) : '';
      const affected = isRecord(p['affectedUser']) ? p['affectedUser'] : undefined;
      const userId = userIdOf(affected?.['userId']);
      if (streamId === '' || userId === undefined) {
        const what = streamId === '' ? 'no stream id' : 'no affected user id';
        reject(key, streamId || undefined, `${type} event: ${what}`, event);
        continue;
      }
      group(stream as Partial<V4Stream>, streamId).changes.push({
        change: { streamId, userId, ts, kind: membership.kind },
        person: personOf(affected) ?? { userId },
      });
    }

    const read = readV4Event(event, options);
    if ('skip' in read) {
      if (read.skip === 'invalid') reject(key, undefined, `${read.type || 'event'}: ${read.detail}`, event);
      else if (!membership) out.ignored += 1;
      continue;
    }
    const { message, suppression, elementsAction, roomEvent } = read.input;
    const extra = { suppression, elementsAction, roomEvent };
    const streamId = canonicalId(message.stream?.streamId ?? '');
    if (streamId === '') {
      reject(key, undefined, `${type} event: no stream id`, event);
      continue;
    }
    const item: ArchiveItem = {
      id: canonicalId(message.messageId),
      streamId,
      timestamp: ts,
      raw: message,
      event: extra,
      record: event,
    };
    const affected = extra.roomEvent?.affectedUser;
    if (affected) item.affected = affected;
    group(message.stream, streamId).items.push(item);
  }
  return out;
}
