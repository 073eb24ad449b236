/**
 * The ground truth: exactly which items each mailbox must hold once an archiver has captured the pod the way
 * `capture` describes. Computed from the generated timeline through the same views the REST API serves.
 */
import { canonicalId } from '../../core/ids.ts';
import type { EventType, GroundTruth, Pod, PodUser } from './types.ts';
import { datafeedSees, isMemberAt, membersAt } from './views.ts';

/** Events that become items of their own in a live capture; messages are items through their own id. */
export const EVENT_ITEM_TYPES: ReadonlySet<EventType> = new Set<EventType>([
  'MESSAGESUPPRESSED',
  'SYMPHONYELEMENTSACTION',
  'USERJOINEDROOM',
  'USERLEFTROOM',
  'ROOMCREATED',
  'ROOMUPDATED',
  'INSTANTMESSAGECREATED',
]);

/**
 * - 'history' (a pod that is not live): every message not suppressed.
 * - 'datahose' / 'datafeed': a history sweep at the live start, the feed from then on, a final sweep at the
 *   end. Every message except those suppressed by the live start, and, for a datafeed, those sent after it
 *   in a conversation without the bot and suppressed before the final sweep (neither sweep nor feed shows
 *   them). Plus one item per room event after the live start that the feed delivers.
 * Recipients of a message: the members at its timestamp plus the sender; of an event: the members once it
 * applies plus the user who joined or left. Each by current email, or listed as unmapped.
 */
export function computeGroundTruth(pod: Pod): GroundTruth {
  const capture = pod.groundTruth.capture;
  const liveStart = pod.timeline.liveStart ?? Number.POSITIVE_INFINITY;
  const mailboxes: Record<string, string[]> = {};
  const unmapped: GroundTruth['unmapped'] = [];
  const suppressed: string[] = [];
  const events: GroundTruth['events'] = {};
  let messages = 0;
  const deliver = (userIds: Iterable<number>, itemId: string): void => {
    for (const id of userIds) {
      const u = pod.usersById.get(id) as PodUser;
      if (u.email) (mailboxes[u.email.toLowerCase()] ??= []).push(itemId);
      else unmapped.push({ userId: String(u.id), messageId: itemId });
    }
  };
  for (const stream of pod.streams) {
    for (const m of stream.messages) {
      const at = pod.suppressedAt.get(m.messageId);
      const captured =
        at === undefined ||
        (capture !== 'history' &&
          at > liveStart &&
          (capture === 'datahose' || m.timestamp <= liveStart || isMemberAt(stream, pod.bot.id, m.timestamp)));
      if (!captured) {
        suppressed.push(m.messageId);
        continue;
      }
      messages++;
      const recipients = new Set(membersAt(stream, m.timestamp).map((s) => s.userId));
      recipients.add(Number(m.user.userId));
      deliver(recipients, m.messageId);
    }
  }
  if (capture !== 'history') {
    for (const e of pod.events) {
      if (e.timestamp <= liveStart || (capture === 'datafeed' && !datafeedSees(pod, e))) continue;
      events[e.type] = (events[e.type] ?? 0) + 1;
      if (!EVENT_ITEM_TYPES.has(e.type)) continue;
      const recipients = new Set(membersAt(e.stream, e.timestamp).map((s) => s.userId));
      if (e.affectedUserId !== undefined) recipients.add(e.affectedUserId);
      deliver(recipients, canonicalId(e.messageId));
    }
  }
  return { ...pod.groundTruth, mailboxes, unmapped, messages, suppressed, events };
}
