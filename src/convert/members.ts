/**
 * Participant lists for the CLI's `convert` command: the JSON a user saved from the pod, in either the
 * membership shape (`V2MembershipList` from `GET /pod/v1/admin/stream/{id}/membership/list`, symphony-api.md
 * §2.3) or a plain array of users (`V4User` from messages/streams, `UserV2` from `GET /pod/v3/users`, §2.7).
 */
import { AppError } from '../core/errors.ts';
import { userIdOf } from '../core/ids.ts';
import type { Person } from '../core/types.ts';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v : undefined;
}

/** One user object of any of the three shapes; `where` names it in the error. */
function personOf(user: unknown, where: string): Person {
  if (!isRecord(user)) throw new AppError('ERR_INPUT_INVALID', `${where} is not an object`);
  // V4User and V2MembershipList.user use `userId`/`email`; UserV2 uses `id`/`emailAddress`.
  const userId = userIdOf(user['userId'] ?? user['id']);
  if (userId === undefined) throw new AppError('ERR_INPUT_INVALID', `${where} has no numeric userId or id`);
  const person: Person = { userId };
  const email = str(user['email']) ?? str(user['emailAddress']);
  if (email !== undefined) person.email = email;
  const displayName = str(user['displayName']);
  if (displayName !== undefined) person.displayName = displayName;
  const firstName = str(user['firstName']);
  if (firstName !== undefined) person.firstName = firstName;
  const lastName = str(user['lastName']);
  if (lastName !== undefined) person.lastName = lastName;
  const username = str(user['username']);
  if (username !== undefined) person.username = username;
  const company = str(user['company']);
  if (company !== undefined) person.company = company;
  const external = user['isExternal'] ?? user['external'];
  if (typeof external === 'boolean') person.external = external;
  return person;
}

/**
 * Maps a membership list or a user array to `Person[]` (input order, first occurrence of a user id wins).
 * Throws `ERR_INPUT_INVALID` on anything else, naming the offending element.
 */
export function participantsFromMembers(json: unknown): Person[] {
  let users: { user: unknown; where: string }[];
  if (Array.isArray(json)) {
    users = json.map((user, i) => ({ user, where: `element ${i}` }));
  } else if (isRecord(json) && Array.isArray(json['members'])) {
    users = json['members'].map((m: unknown, i) => {
      if (!isRecord(m) || !isRecord(m['user'])) {
        throw new AppError('ERR_INPUT_INVALID', `members[${i}] has no "user" object`);
      }
      return { user: m['user'], where: `members[${i}].user` };
    });
  } else {
    throw new AppError(
      'ERR_INPUT_INVALID',
      'expected a membership list ({"members":[{"user":{…}}]}) or an array of users ([{"userId":…}] or [{"id":…}])',
    );
  }
  const seen = new Set<string>();
  const people: Person[] = [];
  for (const { user, where } of users) {
    const person = personOf(user, where);
    if (seen.has(person.userId)) continue;
    seen.add(person.userId);
    people.push(person);
  }
  return people;
}
