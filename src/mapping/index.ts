import type { Person } from '../core/types.ts';

export interface MappingConfig {
  /** Symphony user id or lower-cased Symphony email → mailbox address; checked before the Email property. */
  overrides: Readonly<Record<string, string>>;
  /** When set, only addresses in these domains are mailboxes; others are unmapped ("invalid domain"). */
  domains?: readonly string[];
  /** Mailbox that receives one copy of every message that has an unmapped participant. */
  catchAll?: string;
}

export type MailboxResolution = { mailbox: string } | { unmapped: string };

// A deliberately plain addr-spec (RFC 5321 dot-atom local part, LDH domain): routing never parses free text,
// and an address that needs quoting or comments is treated as unmapped (reliability.md §3 row 2).
const ADDRESS =
  /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/;

export function normalizeAddress(value: string): string | undefined {
  const a = value.trim().toLowerCase();
  return ADDRESS.test(a) && a.length <= 254 ? a : undefined;
}

/**
 * Names the mailbox of a participant: an override by user id or email first, then the participant's
 * Email property, compared case-insensitively (the Purview connector's rule, market.md §1a).
 */
export function resolveMailbox(person: Person, config: MappingConfig): MailboxResolution {
  const email = person.email?.trim().toLowerCase();
  // Own keys only: an email such as "constructor" must not find Object.prototype members.
  const lookup = (key: string) => (Object.hasOwn(config.overrides, key) ? config.overrides[key] : undefined);
  const override = lookup(person.userId) ?? (email ? lookup(email) : undefined);
  if (override) return { mailbox: override.toLowerCase() };
  if (!email) return { unmapped: `user ${person.userId} has no email address in Symphony` };
  const mailbox = normalizeAddress(email);
  if (!mailbox) return { unmapped: `user ${person.userId} has an email address that is not a plain mailbox address` };
  if (config.domains && !config.domains.includes(mailbox.slice(mailbox.indexOf('@') + 1))) {
    return { unmapped: `user ${person.userId} has an address outside the archived domains` };
  }
  return { mailbox };
}
