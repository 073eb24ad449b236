import { idToken } from './ids.ts';

export interface Reconciliation {
  mailboxes: number;
  expected: number;
  present: number;
  missing: { mailbox: string; messageId: string }[];
  duplicated: { mailbox: string; messageId: string; copies: number }[];
  /** Items in a mailbox that the source does not expect there (keys, as the writer reports them). */
  unexpected: { mailbox: string; key: string }[];
}

/**
 * Compares what each mailbox should hold (source message ids) with what it holds (item keys and their
 * counts): the checker of reliability.md §1.6 — every expected item exactly once, nothing extra.
 */
export async function reconcile(
  expected: Readonly<Record<string, readonly string[]>>,
  inventory: (mailbox: string) => Promise<Map<string, number>>,
): Promise<Reconciliation> {
  const out: Reconciliation = { mailboxes: 0, expected: 0, present: 0, missing: [], duplicated: [], unexpected: [] };
  for (const [mailbox, ids] of Object.entries(expected)) {
    out.mailboxes += 1;
    const held = await inventory(mailbox);
    const wanted = new Set<string>();
    for (const messageId of ids) {
      const key = idToken(messageId);
      // The same message listed twice (or in both id forms) is still one expected item.
      if (wanted.has(key)) continue;
      wanted.add(key);
      out.expected += 1;
      const copies = held.get(key) ?? 0;
      if (copies === 0) out.missing.push({ mailbox, messageId });
      else out.present += 1;
      if (copies > 1) out.duplicated.push({ mailbox, messageId, copies });
    }
    for (const key of held.keys()) if (!wanted.has(key)) out.unexpected.push({ mailbox, key });
  }
  return out;
}

export function isComplete(r: Reconciliation): boolean {
  return !r.missing.length && !r.duplicated.length && !r.unexpected.length;
}
