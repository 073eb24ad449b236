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

/** Only a canonical encoding (unused trailing bits zero) decodes back to itself; `AB` and `AC` both decode to 0x00. */
function isCanonicalBase64Url(c: string): boolean {
  return BASE64URL.test(c) && Buffer.from(c, 'base64url').toString('base64url') === c;
}

/**
 * A lower-case token in `[a-z0-9]` that identifies a message everywhere a restricted charset is needed:
 * Message-ID local part (destinations.md §1.5: safe in Graph `$filter`, IMAP SEARCH and file names) and
 * Maildir unique names. Base64 ids become the hex of their bytes; anything else the hex of its UTF-8.
 */
export function idToken(id: string): string {
  const c = canonicalId(id);
  if (isCanonicalBase64Url(c)) return Buffer.from(c, 'base64url').toString('hex');
  return 'u' + Buffer.from(c, 'utf8').toString('hex');
}

const INT64_MAX = 2n ** 63n - 1n;

/**
 * Symphony user ids are int64; JSON may carry them as numbers or strings. Kept as canonical decimal strings
 * (no leading zeros), so `"007"` and `7` key the same user.
 */
export function userIdOf(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? String(value) : undefined;
  let n: bigint;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'string' && /^\d{1,19}$/.test(value.trim())) n = BigInt(value.trim());
  else return undefined;
  return n >= 0n && n <= INT64_MAX ? n.toString() : undefined;
}

/** The Message-ID (without angle brackets) of a Symphony message; the same in every mailbox it is filed to. */
export function messageIdFor(messageId: string, domain: string): string {
  return `sym.${idToken(messageId)}@${domain.trim().toLowerCase()}`;
}
