/**
 * Transcript mode (`convert.format: daily-transcript`): which transcripts a conversation-day needs. Pure; the
 * cycle (core/pipeline.ts) keeps the items, renders the transcripts (convert/transcript.ts) and files them.
 *
 * Each mailbox gets the day's items it was entitled to, so members who joined or left during the day get
 * transcripts of their own part of it. A transcript is never altered once filed: an item arriving after it makes a
 * revision (the whole day again, labelled, threaded under what it supersedes), filed beside it.
 */
import { createHash } from 'node:crypto';
import type { EventInput } from '../convert/events.ts';
import { transcriptItemId } from '../convert/transcript.ts';
import type { TranscriptDay, TranscriptEntryRow, TranscriptRow } from '../store/state-store.ts';
import type { Conversation, Person } from './types.ts';

/** What is kept of an item for its transcript (`transcript_entries.entry`): the converter's input, files by ref. */
export interface StoredEntry extends Omit<EventInput, 'message' | 'sender'> {
  conversation: Conversation;
  message: EventInput['message'];
  sender: Person;
  /** Those in the conversation when it was sent: the transcript's To is theirs. */
  participants: Person[];
  /** Attachments as staged files (stage/stager.ts), kept for revisions. */
  attachments: { id: string; name: string; ref: string; size: number }[];
}

export interface TranscriptPlan {
  itemId: string;
  revision: number;
  /** Names the set of items; part of the item id. */
  variant: string;
  entries: TranscriptEntryRow[];
  /** Mailboxes it is for (a mailbox that has it already is skipped by the ledger). */
  mailboxes: string[];
  /** Message-IDs of the earlier transcripts of these mailboxes, oldest first. */
  supersedes: string[];
  /** Items new since those. */
  added: string[];
}

/** The transcripts a conversation-day needs, given its items and the transcripts already built. */
export function planTranscripts(
  day: TranscriptDay,
  timeZone: string,
  entries: readonly TranscriptEntryRow[],
  built: readonly TranscriptRow[],
): TranscriptPlan[] {
  const byMailbox = new Map<string, string[]>();
  for (const e of entries) {
    for (const mb of e.mailboxes) {
      const ids = byMailbox.get(mb);
      if (ids) ids.push(e.itemId);
      else byMailbox.set(mb, [e.itemId]);
    }
  }
  // Mailboxes with the same items and the same transcripts so far get one transcript.
  const groups = new Map<string, { ids: string[]; prior: TranscriptRow[]; mailboxes: string[] }>();
  for (const [mailbox, ids] of byMailbox) {
    const sorted = [...ids].sort();
    const held = built.filter((b) => b.mailboxes.includes(mailbox));
    if (held.some((b) => sameItems(b.entries, sorted))) continue;
    const key = `${sorted.join('\n')}\0${held.map((b) => b.itemId).join('\n')}`;
    const group = groups.get(key) ?? { ids: sorted, prior: held, mailboxes: [] };
    group.mailboxes.push(mailbox);
    groups.set(key, group);
  }
  const plans: TranscriptPlan[] = [];
  for (const { ids, prior, mailboxes } of groups.values()) {
    // The zone is part of the variant: the same items under another zone's day are another transcript.
    const variant = createHash('sha256')
      .update(`${timeZone}\n${ids.join('\n')}`)
      .digest('hex')
      .slice(0, 16);
    const ordered = [...prior].sort((a, b) => a.revision - b.revision);
    const revision = (ordered.at(-1)?.revision ?? 0) + 1;
    const seen = new Set(ordered.flatMap((b) => b.entries));
    const itemId = transcriptItemId(day.streamId, day.day, revision, variant);
    // Someone new to a transcript already filed for others gets that same item, and it keeps everyone it is for.
    const same = built.find((b) => b.itemId === itemId);
    const wanted = new Set(ids);
    plans.push({
      itemId,
      revision,
      variant,
      entries: entries.filter((e) => wanted.has(e.itemId)),
      mailboxes: [...new Set([...(same?.mailboxes ?? []), ...mailboxes])].sort(),
      supersedes: ordered.map((b) => b.messageId),
      added: revision > 1 ? ids.filter((id) => !seen.has(id)) : [],
    });
  }
  return plans.sort((a, b) => (a.itemId < b.itemId ? -1 : 1));
}

function sameItems(a: readonly string[], sorted: readonly string[]): boolean {
  if (a.length !== sorted.length) return false;
  const b = [...a].sort();
  return b.every((id, i) => id === sorted[i]);
}
