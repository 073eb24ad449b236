/**
 * Datafeed / Datahose events that become archive items of their own (symphony-api.md §3): MESSAGESUPPRESSED
 * (a removal notice) and SYMPHONYELEMENTSACTION (a form response). Maps a V4Event to the parts of a
 * {@link ConvertInput} that describe it; the caller adds conversation, participants and options.
 */
import { canonicalId, userIdOf } from '../core/ids.ts';
import type { Person } from '../core/types.ts';
import type { V4Message, V4Stream, V4User } from '../source/symphony/api-types.ts';
import type { ConvertInput } from './converter.ts';

export type EventInput = Pick<ConvertInput, 'message' | 'sender' | 'suppression' | 'elementsAction'>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function personOf(user: unknown): Person | undefined {
  if (!isRecord(user)) return undefined;
  const userId = userIdOf(user['userId']);
  if (userId === undefined) return undefined;
  const p: Person = { userId };
  for (const k of ['displayName', 'firstName', 'lastName', 'email', 'username'] as const) {
    const v = user[k] ?? (k === 'username' ? user['userName'] : undefined);
    if (typeof v === 'string' && v.trim() !== '') p[k] = v;
  }
  return p;
}

/**
 * The item's own id. A V4Event carries a `messageId` for the event; when it is missing, the id is derived
 * from what the event is about, so a redelivered event maps to the same item (reliability.md §3 row 10).
 */
function eventMessageId(event: Record<string, unknown>, fallback: string): string {
  return typeof event['messageId'] === 'string' && event['messageId'].trim() !== '' ? event['messageId'] : fallback;
}

/**
 * `{message, sender, suppression}` for MESSAGESUPPRESSED, `{message, sender, elementsAction}` for
 * SYMPHONYELEMENTSACTION, `undefined` for any other event or one without the fields it needs.
 */
export function fromV4Event(event: unknown): EventInput | undefined {
  if (!isRecord(event) || !isRecord(event['payload'])) return undefined;
  const payload = event['payload'];
  const timestamp = event['timestamp'];
  if (typeof timestamp !== 'number') return undefined;
  const initiator = isRecord(event['initiator']) ? event['initiator']['user'] : undefined;
  const sender = personOf(initiator);
  if (!sender) return undefined;
  const user = initiator as V4User;

  if (event['type'] === 'MESSAGESUPPRESSED' && isRecord(payload['messageSuppressed'])) {
    const p = payload['messageSuppressed'];
    if (typeof p['messageId'] !== 'string' || p['messageId'] === '') return undefined;
    const removed = canonicalId(p['messageId']);
    const stream = (isRecord(p['stream']) ? p['stream'] : { streamId: '' }) as unknown as V4Stream;
    const message: V4Message = {
      messageId: eventMessageId(event, `${removed}.suppressed`),
      timestamp,
      user,
      stream,
    };
    return { message, sender, suppression: { messageId: removed, suppressedBy: sender, suppressedAt: timestamp } };
  }

  if (event['type'] === 'SYMPHONYELEMENTSACTION' && isRecord(payload['symphonyElementsAction'])) {
    const p = payload['symphonyElementsAction'];
    if (typeof p['formMessageId'] !== 'string' || p['formMessageId'] === '') return undefined;
    const formMessageId = canonicalId(p['formMessageId']);
    const stream = (isRecord(p['stream']) ? p['stream'] : { streamId: '' }) as unknown as V4Stream;
    const formValues = isRecord(p['formValues']) ? p['formValues'] : {};
    const message: V4Message = {
      messageId: eventMessageId(event, `${formMessageId}.${sender.userId}.${timestamp}`),
      timestamp,
      user,
      stream,
    };
    const formId = typeof p['formId'] === 'string' ? p['formId'] : '';
    return { message, sender, elementsAction: { formMessageId, formId, formValues } };
  }
  return undefined;
}
