/**
 * Symphony stream and message ids are 25 random bytes in base64: URL-safe unpadded in most API responses,
 * standard padded in some admin payloads and events (symphony-api.md §2.1, BDK `IdUtil`). Everything that
 * keys state uses the canonical URL-safe, unpadded form.
 */
export function canonicalId(id: string): string {
  return id.trim().replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Standard padded base64, as the Symphony UI and some admin APIs print ids. */
export function standardId(id: string): string {
  const s = canonicalId(id).replace(/-/g, '+').replace(/_/g, '/');
  return s + '='.repeat((4 - (s.length % 4)) % 4);
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * A lower-case token in `[a-z0-9]` that identifies a message everywhere a restricted charset is needed:
 * Message-ID local part (destinations.md §1.5: safe in Graph `$filter`, IMAP SEARCH and file names) and
 * Maildir unique names. Base64 ids become the hex of their bytes; anything else the hex of its UTF-8.
 */
export function idToken(id: string): string {
  const c = canonicalId(id);
  if (BASE64URL.test(c) && c.length % 4 !== 1) return Buffer.from(c, 'base64url').toString('hex');
  return 'u' + Buffer.from(c, 'utf8').toString('hex');
}

/** Symphony user ids are int64; JSON may carry them as numbers or strings. Kept as decimal strings. */
export function userIdOf(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  if (typeof value === 'bigint' && value >= 0n) return value.toString();
  if (typeof value === 'string' && /^\d{1,20}$/.test(value.trim())) return value.trim();
  return undefined;
}

/** The Message-ID (without angle brackets) of a Symphony message; the same in every mailbox it is filed to. */
export function messageIdFor(messageId: string, domain: string): string {
  return `sym.${idToken(messageId)}@${domain}`;
}
