/**
 * What the pod looks like at a given pod time: the REST endpoints and the ground truth both read the
 * generated timeline through these functions, so they can't disagree.
 */
import type { V4Message } from '../../source/symphony/api-types.ts';
import type { MembershipSpan, Pod, PodEvent, PodStream } from './types.ts';

/** Membership periods are half-open: a member at `t` when `join <= t < leave`. */
export function isMemberSpanAt(span: MembershipSpan, t: number): boolean {
  return span.join <= t && (span.leave === undefined || t < span.leave);
}

export function membersAt(stream: PodStream, t: number): MembershipSpan[] {
  return stream.spans.filter((s) => isMemberSpanAt(s, t));
}

export function isMemberAt(stream: PodStream, userId: number, t: number): boolean {
  return stream.spans.some((s) => s.userId === userId && isMemberSpanAt(s, t));
}

/**
 * Users who were members before `now` but are not now, each with their last join: the REST API has no
 * leave date (`MemberInfo` is only id, owner and joinDate; symphony-api.md §2.3).
 */
export function pastMembersAt(stream: PodStream, now: number): MembershipSpan[] {
  const current = new Set(membersAt(stream, now).map((s) => s.userId));
  const last = new Map<number, MembershipSpan>();
  for (const s of stream.spans) {
    if (current.has(s.userId) || s.join > now) continue;
    const seen = last.get(s.userId);
    if (!seen || s.join > seen.join) last.set(s.userId, s);
  }
  return [...last.values()].sort((a, b) => a.join - b.join);
}

export function roomNameAt(stream: PodStream, t: number): string | undefined {
  let name: string | undefined;
  for (const n of stream.names) if (n.at <= t) name = n.name;
  return name;
}

export function lastModifiedAt(stream: PodStream, now: number): number {
  let last = stream.createdDate;
  for (const t of stream.modifications) if (t <= now && t > last) last = t;
  return last;
}

/** First index whose value is >= `t` (ascending values). */
export function lowerBound(values: readonly number[], t: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((values[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Sent by `now` and not suppressed by then: suppressed messages are omitted from the REST API (see server.ts). */
export function isVisible(pod: Pod, message: V4Message, now: number): boolean {
  if (message.timestamp > now) return false;
  const suppressed = pod.suppressedAt.get(message.messageId);
  return suppressed === undefined || suppressed > now;
}

/** The message as REST shows it at `now`: `replacedBy` appears once the edit exists (symphony-api.md §4.1). */
export function messageAt(pod: Pod, message: V4Message, now: number): V4Message {
  const edit = pod.replacedBy.get(message.messageId);
  return edit && edit.at <= now ? { ...message, replacedBy: edit.id } : message;
}

export function lastMessageDateAt(pod: Pod, stream: PodStream, now: number): number | undefined {
  for (let i = lowerBound(stream.timestamps, now + 1) - 1; i >= 0; i--) {
    const m = stream.messages[i] as V4Message;
    if (isVisible(pod, m, now)) return m.timestamp;
  }
  return undefined;
}

/** A datafeed carries the events of the conversations the bot is in, judged once the event applies (§2.9). */
export function datafeedSees(pod: Pod, event: PodEvent): boolean {
  return isMemberAt(event.stream, pod.bot.id, event.timestamp);
}
