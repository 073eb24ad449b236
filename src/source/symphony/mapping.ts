import { AppError } from '../../core/errors.ts';
import { canonicalId, userIdOf } from '../../core/ids.ts';
import type { Conversation, Person, SourceMessage } from '../../core/types.ts';
import type { UserV2, V2AdminStreamInfo, V2MembershipList, V4Message } from './api-types.ts';

type MembershipUser = NonNullable<NonNullable<V2MembershipList['members']>[number]['user']>;

function text(value: string | null | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Drops undefined fields so mapped objects compare and serialise cleanly. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** `V2AdminStreamInfo` (symphony-api.md §2.2). `isExternal` is deprecated in favour of `origin`; either marks it external. */
export function toConversation(info: V2AdminStreamInfo): Conversation | undefined {
  if (typeof info.id !== 'string' || info.id.trim() === '') return undefined;
  const attrs = info.attributes ?? {};
  return compact<Conversation>({
    id: canonicalId(info.id),
    type: typeof info.type === 'string' ? info.type : 'UNKNOWN',
    name: text(attrs.roomName),
    groupChat: typeof attrs.groupChat === 'boolean' ? attrs.groupChat : undefined,
    external: info.origin === 'EXTERNAL' || info.isExternal === true,
    crossPod: typeof info.crossPod === 'boolean' ? info.crossPod : undefined,
    active: typeof info.isActive === 'boolean' ? info.isActive : undefined,
    lastMessageDate: typeof attrs.lastMessageDate === 'number' ? attrs.lastMessageDate : undefined,
  });
}

/** A `V2MembershipList` member (§2.3); external users may have no email. */
export function memberToPerson(user: MembershipUser): Person | undefined {
  const userId = userIdOf(user.userId);
  if (userId === undefined) return undefined;
  return compact<Person>({
    userId,
    email: text(user.email),
    displayName: text(user.displayName),
    firstName: text(user.firstName),
    lastName: text(user.lastName),
    company: text(user.company),
    external: typeof user.isExternal === 'boolean' ? user.isExternal : undefined,
  });
}

/** `UserV2` from `/pod/v3/users` (§2.7): note `emailAddress` here versus `email` elsewhere. */
export function userToPerson(user: UserV2): Person | undefined {
  const userId = userIdOf(user.id);
  if (userId === undefined) return undefined;
  return compact<Person>({
    userId,
    email: text(user.emailAddress),
    displayName: text(user.displayName),
    firstName: text(user.firstName),
    lastName: text(user.lastName),
    username: text(user.username),
    company: text(user.company),
  });
}

/** Epoch-ms timestamps are int64; some serialisers send them as strings. */
export function timestampOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d{1,16}$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

/** Why a `V4Message` record cannot be keyed or ordered, or undefined when it can. */
export function defectOf(record: unknown): string | undefined {
  if (!record || typeof record !== 'object' || Array.isArray(record)) return 'not an object';
  const r = record as Partial<V4Message>;
  if (typeof r.messageId !== 'string' || canonicalId(r.messageId) === '') return 'no messageId';
  if (timestampOf(r.timestamp) === undefined) return 'no numeric timestamp';
  return undefined;
}

export function toSourceMessage(record: V4Message, streamId: string): SourceMessage {
  const timestamp = timestampOf(record.timestamp);
  if (timestamp === undefined)
    throw new AppError('ERR_SOURCE_PROTOCOL', `stream ${streamId}: message has no timestamp`);
  return { id: canonicalId(record.messageId), streamId, timestamp, raw: record };
}
