import type { DeliveryItem } from '../mailbox-writer.ts';
import { rawCommand, tokenString, type ImapConnection, type ImapResponse } from './connection.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 9051 §9 `date-time`: `"dd-Mon-yyyy hh:mm:ss +zzzz"` with a space-padded day; always UTC here. */
export function imapDateTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const day = String(date.getUTCDate()).padStart(2, ' ');
  const time = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  return `${day}-${MONTHS[date.getUTCMonth()]}-${date.getUTCFullYear()} ${time} +0000`;
}

/** What one APPEND told us: the UIDs of the new messages when the server offers UIDPLUS (RFC 4315). */
export interface AppendOutcome {
  uidValidity: bigint | undefined;
  /** In the order of the appended items; undefined when the server gave no usable APPENDUID. */
  uids: number[] | undefined;
}

/** Plain APPEND of one message through imapflow (RFC 9051 §6.3.12): flags and INTERNALDATE set in the command. */
export async function appendOne(
  conn: ImapConnection,
  path: string,
  item: DeliveryItem,
  flags: string[],
): Promise<AppendOutcome> {
  const result = await conn.client.append(path, item.raw, flags, item.date);
  if (!result || result.uid === undefined)
    return { uidValidity: result ? result.uidValidity : undefined, uids: undefined };
  return { uidValidity: result.uidValidity, uids: [result.uid] };
}

/** Expands an RFC 4315 `uid-set` (`5`, `5:9`, `5,7:8`) in the order written. */
export function expandUidSet(set: string): number[] | undefined {
  const out: number[] = [];
  for (const part of set.split(',')) {
    const m = /^(\d+)(?::(\d+))?$/.exec(part);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    if (hi - lo > 100_000) return undefined;
    for (let uid = lo; uid <= hi; uid += 1) out.push(uid);
  }
  return out;
}

function appendUidOf(response: ImapResponse): { uidValidity: bigint | undefined; uids: number[] | undefined } {
  const section = (response.attributes?.[0] as { section?: unknown[] } | undefined)?.section;
  if (!Array.isArray(section) || tokenString(section[0] as never)?.toUpperCase() !== 'APPENDUID') {
    return { uidValidity: undefined, uids: undefined };
  }
  const validity = tokenString(section[1] as never);
  const set = tokenString(section[2] as never);
  return {
    uidValidity: validity !== undefined && /^\d{1,10}$/.test(validity) ? BigInt(validity) : undefined,
    uids: set === undefined ? undefined : expandUidSet(set),
  };
}

/**
 * MULTIAPPEND (RFC 3502): several messages in one APPEND command, each with its own flags and INTERNALDATE. The
 * server stores all or none (§3), so a refusal leaves nothing behind. APPENDUID then carries a uid-set with one UID
 * per message (RFC 4315 §3), assigned in the order the messages were sent. Goes through imapflow's command queue, so
 * it never overlaps another command on the connection; literals over 4 KiB wait for the server's `+` (imapflow only
 * uses non-synchronising literals within LITERAL- limits, destinations.md §2.6).
 */
export async function multiAppend(
  conn: ImapConnection,
  path: string,
  items: DeliveryItem[],
  flags: string[],
): Promise<AppendOutcome> {
  const binary = conn.client.capabilities.has('BINARY');
  const attributes: unknown[] = [{ type: 'STRING', value: path }];
  for (const item of items) {
    attributes.push(flags.map((value) => ({ type: 'ATOM', value })));
    attributes.push({ type: 'STRING', value: imapDateTime(item.date) });
    // RFC 3516: a message containing NUL can only travel as literal8.
    attributes.push({ type: 'LITERAL', value: item.raw, isLiteral8: binary && item.raw.includes(0) });
  }
  const response = await rawCommand(conn, 'APPEND', attributes);
  const outcome = appendUidOf(response);
  if (outcome.uids !== undefined && outcome.uids.length !== items.length) outcome.uids = undefined;
  return outcome;
}

/** RFC 7889 APPENDLIMIT, when the server announces one for all mailboxes. */
export function appendLimit(conn: ImapConnection): number | undefined {
  const value = conn.client.capabilities.get('APPENDLIMIT');
  return typeof value === 'number' && value > 0 ? value : undefined;
}
