/**
 * The one question every adapter and the API ask about a caller: who does this credential
 * stand for? A credential is an Airlock API token or an OIDC JWT; it arrives wherever a
 * password would (PostgreSQL/MySQL password, SSH password) or as `Authorization: Bearer`.
 * Asynchronous because verifying a JWT may need the issuer's keys.
 */
import type { Principal } from '../action.ts';

export interface AuthContext {
  /** Caller's network address, for rate limits and the audit log. */
  readonly source?: string | undefined;
  readonly protocol?: string | undefined;
  /** The connection the caller asked for, for tokens scoped to connections. */
  readonly connection?: string | undefined;
  /** The user name the client claimed (database user, SSH user): for throttling, never trusted. */
  readonly user?: string | undefined;
}

export interface Authenticator {
  /** The principal; throws AIRLOCK_E_TOKEN_MISSING / AIRLOCK_E_TOKEN_INVALID (never echoing the credential). */
  authenticate(credential: string | undefined | null, ctx?: AuthContext): Promise<Principal>;
  /** A principal known by name (console sessions, Slack user mapping), if any. */
  principal(name: string): Principal | undefined;
}
