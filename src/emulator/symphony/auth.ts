import { randomBytes } from 'node:crypto';
import { importSPKI, jwtVerify, type CryptoKey } from 'jose';

/** Login JWTs must expire within 5 minutes (symphony-api.md §1.1); a little slack absorbs clock skew. */
const MAX_LIFETIME_SECONDS = 300;
const SLACK_SECONDS = 5;

export type TokenName = 'sessionToken' | 'keyManagerToken';

/**
 * RSA bot authentication (symphony-api.md §1.1–1.2): the same RS512 JWT is exchanged at `/login` for a
 * session token and at `/relay` for a key manager token. Tokens stay valid until `invalidateAll`.
 */
export class Authenticator {
  private readonly sessions = new Set<string>();
  private readonly keyManagers = new Set<string>();

  private constructor(
    private readonly key: CryptoKey,
    private readonly username: string,
  ) {}

  static async create(publicKeyPem: string, username: string): Promise<Authenticator> {
    return new Authenticator(await importSPKI(publicKeyPem, 'RS512'), username);
  }

  /** Checks the login JWT and issues a token, or returns a reason for the 401. */
  async authenticate(jwt: unknown, name: TokenName): Promise<{ token: string } | { error: string }> {
    if (typeof jwt !== 'string' || jwt.length === 0) return { error: 'Missing authentication token' };
    try {
      const { payload } = await jwtVerify(jwt, this.key, {
        algorithms: ['RS512'],
        subject: this.username,
        requiredClaims: ['sub', 'exp'],
      });
      const now = Math.floor(Date.now() / 1000);
      if ((payload.exp ?? 0) > now + MAX_LIFETIME_SECONDS + SLACK_SECONDS) {
        return { error: 'Authentication token expiration is too far in the future' };
      }
    } catch (err) {
      return { error: `Invalid authentication token (${err instanceof Error ? err.message : 'rejected'})` };
    }
    // Session tokens look like opaque strings and KM tokens like the `0100…` hex of real pods (§1.1).
    const token =
      name === 'sessionToken'
        ? `emu-session-${randomBytes(24).toString('hex')}`
        : `0100${randomBytes(64).toString('hex')}`;
    (name === 'sessionToken' ? this.sessions : this.keyManagers).add(token);
    return { token };
  }

  isValid(name: TokenName, token: string | undefined): boolean {
    if (!token) return false;
    return (name === 'sessionToken' ? this.sessions : this.keyManagers).has(token);
  }

  /** Session expiry: every issued token stops working at once, as when the pod's session lifetime ends. */
  invalidateAll(): void {
    this.sessions.clear();
    this.keyManagers.clear();
  }
}
