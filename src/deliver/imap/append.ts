import type { Writable } from 'node:stream';
import { itemSize, itemStream } from '../content.ts';
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

/**
 * Plain APPEND of one message (RFC 9051 §6.3.12): flags and INTERNALDATE set in the command. An item in memory goes
 * through imapflow's `append`; a staged file is streamed ({@link appendStreamed}).
 */
export async function appendOne(
  conn: ImapConnection,
  path: string,
  item: DeliveryItem,
  flags: string[],
): Promise<AppendOutcome> {
  if (!Buffer.isBuffer(item.content)) return appendStreamed(conn, path, [item], flags);
  const result = await conn.client.append(path, item.content, flags, item.date);
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
 * per message (RFC 4315 §3), assigned in the order the messages were sent.
 */
export function multiAppend(
  conn: ImapConnection,
  path: string,
  items: DeliveryItem[],
  flags: string[],
): Promise<AppendOutcome> {
  return appendStreamed(conn, path, items, flags);
}

/** What a refused APPEND looks like when the refusal is ours, before anything was sent (imapflow `append` does the same). */
function tooBig(size: number, limit: number): Error {
  return Object.assign(new Error(`Message content too big for APPENDLIMIT=${limit} (${size} bytes)`), {
    serverResponseCode: 'APPENDLIMIT',
  });
}

/** Resolves once the socket takes more data; rejects when it closes first. */
function drained(socket: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (err?: Error): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => settle();
    const onClose = (): void => settle(new Error('connection closed while sending a literal'));
    socket.once('drain', onDrain);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}

/**
 * APPEND of one message or MULTIAPPEND of several, each literal written from the item's bytes as they are read, so a
 * staged file of any size never sits in memory. imapflow only sends a literal it holds whole
 * (postalsys/imapflow#32: "IMAP syntax requires the exact byte size beforehand"), but the size is known here. The
 * command line up to the first literal's `{size}` goes through imapflow's queue (so no other command overlaps it);
 * the literal data and the rest of the command go to its socket: at once with LITERAL+ (RFC 7888, any size; LITERAL-
 * up to 4096 bytes), else after the server's `+` continuation (RFC 9051 §7.5). A message holding NUL goes as
 * literal8 when BINARY is offered (RFC 3516); the converter writes 7bit, quoted-printable and base64 only, so staged
 * files are not searched for NUL.
 */
export async function appendStreamed(
  conn: ImapConnection,
  path: string,
  items: DeliveryItem[],
  flags: string[],
): Promise<AppendOutcome> {
  const caps = conn.client.capabilities;
  const limit = appendLimit(conn);
  const literals = items.map((item) => {
    const size = itemSize(item);
    if (limit !== undefined && size > limit) throw tooBig(size, limit);
    const sync = !caps.has('LITERAL+') && !(caps.has('LITERAL-') && size <= 4096);
    const literal8 = caps.has('BINARY') && Buffer.isBuffer(item.content) && item.content.includes(0);
    return { item, sync, header: `${literal8 ? '~' : ''}{${size}${sync ? '' : '+'}}` };
  });
  const prefix = (i: number): string => `(${flags.join(' ')}) "${imapDateTime(items[i]!.date)}"`;
  const socket = (conn.client as unknown as { writeSocket: Writable }).writeSocket;

  let next = 0;
  let answered = false;
  let done = false;
  let pump: Promise<void> = Promise.resolve();
  let failure: unknown;
  const write = async (chunk: Buffer): Promise<void> => {
    if (answered || socket.destroyed) throw new Error('connection closed while sending a literal');
    if (!socket.write(chunk)) await drained(socket);
  };
  /** Sends literals from `next` on, up to the end of the command or the next synchronising literal. */
  const send = async (): Promise<void> => {
    for (;;) {
      for await (const chunk of itemStream(literals[next]!.item)) await write(chunk);
      next += 1;
      if (next === literals.length) {
        await write(Buffer.from('\r\n'));
        done = true;
        return;
      }
      await write(Buffer.from(` ${prefix(next)} ${literals[next]!.header}\r\n`));
      if (literals[next]!.sync) return;
    }
  };
  const kick = (): void => {
    pump = pump.then(send).catch((err: unknown) => {
      // Part of a literal went out: nothing more can be said on this connection.
      failure ??= err;
      conn.broken = true;
      conn.client.close();
    });
  };
  let response: ImapResponse;
  try {
    response = await rawCommand(
      conn,
      'APPEND',
      [
        { type: 'STRING', value: path },
        flags.map((value) => ({ type: 'ATOM', value })),
        { type: 'STRING', value: imapDateTime(items[0]!.date) },
        // Written as is; imapflow ends the line with CRLF.
        { type: 'TEXT', value: literals[0]!.header },
      ],
      undefined,
      {
        onSend: () => {
          if (!literals[0]!.sync) kick();
        },
        onPlusTag: kick,
      },
    );
  } catch (err) {
    answered = true;
    await pump;
    throw err;
  }
  answered = true;
  await pump;
  if (!done) {
    // A tagged answer before the last literal was sent: the session is out of step with the server.
    conn.broken = true;
    conn.client.close();
    throw failure ?? new Error('the server answered APPEND before its literals were sent');
  }
  const outcome = appendUidOf(response);
  if (outcome.uids !== undefined && outcome.uids.length !== items.length) outcome.uids = undefined;
  return outcome;
}

/** RFC 7889 APPENDLIMIT, when the server announces one for all mailboxes. */
export function appendLimit(conn: ImapConnection): number | undefined {
  const value = conn.client.capabilities.get('APPENDLIMIT');
  return typeof value === 'number' && value > 0 ? value : undefined;
}
