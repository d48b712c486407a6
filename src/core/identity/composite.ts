/**
 * The gateway's Authenticator: one credential, three places it can come from. A JWT goes to the
 * OIDC verifier (a token that looks like a JWT is never tried as anything else); any other
 * string is a policy-file token or a token created through the API.
 *
 * `principal(name)` answers for policy identities and for principals that authenticated
 * recently in this process (an OIDC user named in a Slack callback, say).
 */
import type { Principal } from '../action.ts';
import { AirlockError, isAirlockError } from '../errors.ts';
import type { ApiTokens } from './api-tokens.ts';
import type { AuthContext, Authenticator } from './authenticator.ts';
import { looksLikeJwt, type OidcVerifier } from './oidc.ts';
import type { TokenRegistry } from './tokens.ts';

const RECENT_MAX = 2_000;
const RECENT_TTL_MS = 10 * 60_000;

export interface AuthFailure {
  readonly protocol?: string | undefined;
  readonly source?: string | undefined;
  readonly connection?: string | undefined;
  /** The error code; the credential itself is never passed on. */
  readonly reason: string;
  readonly message: string;
}

export interface CompositeOptions {
  readonly policyTokens: TokenRegistry;
  readonly apiTokens?: ApiTokens | undefined;
  readonly oidc?: OidcVerifier | undefined;
  /**
   * Told about refused API credentials, to audit them. Protocol adapters audit their own login
   * failures (they know the wire details), so only failures with protocol `api` come here.
   */
  readonly onApiFailure?: ((failure: AuthFailure) => void) | undefined;
  readonly now?: () => number;
}

export class CompositeAuthenticator implements Authenticator {
  readonly #o: CompositeOptions;
  readonly #recent = new Map<string, { principal: Principal; at: number }>();
  readonly #now: () => number;

  constructor(opts: CompositeOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  async authenticate(credential: string | undefined | null, ctx: AuthContext = {}): Promise<Principal> {
    try {
      const principal = await this.#authenticate(credential, ctx);
      this.#remember(principal);
      return principal;
    } catch (err) {
      if (ctx.protocol === 'api' && credential) {
        const e = isAirlockError(err) ? err : undefined;
        try {
          this.#o.onApiFailure?.({
            protocol: ctx.protocol,
            source: ctx.source,
            connection: ctx.connection,
            reason: e?.code ?? 'AIRLOCK_E_INTERNAL',
            message: e?.message ?? 'authentication failed',
          });
        } catch {
          // auditing a refusal must not turn it into a different error
        }
      }
      throw err;
    }
  }

  async #authenticate(credential: string | undefined | null, ctx: AuthContext): Promise<Principal> {
    if (credential === undefined || credential === null || credential === '')
      return this.#o.policyTokens.verify(credential);
    if (looksLikeJwt(credential)) {
      if (!this.#o.oidc || this.#o.oidc.size === 0)
        throw new AirlockError(
          'AIRLOCK_E_TOKEN_INVALID',
          'a JWT was presented but no OIDC issuer is configured',
          {
            hint: 'use an Airlock token, or add the issuer under identities.oidc in the policy',
          },
        );
      return (await this.#o.oidc.verify(credential)).principal;
    }
    try {
      return this.#o.policyTokens.verify(credential);
    } catch (err) {
      if (!isAirlockError(err) || err.code !== 'AIRLOCK_E_TOKEN_INVALID' || !this.#o.apiTokens) throw err;
    }
    let stored: Principal | undefined;
    try {
      stored = await this.#o.apiTokens.authenticate(credential, ctx);
    } catch (err) {
      if (isAirlockError(err)) throw err;
      throw new AirlockError(
        'AIRLOCK_E_STORE_UNAVAILABLE',
        'the token could not be checked: the store failed',
        {
          hint: 'check the store and retry',
          cause: err,
        },
      );
    }
    if (stored) return stored;
    throw new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the Airlock token was not recognised', {
      hint: 'check the token, or ask an Airlock admin for a new one',
    });
  }

  /**
   * Who the Airlock token with this SHA-256 (hex) stands for now, or undefined when no policy or
   * stored token has it any more (removed, revoked, expired). Console sessions keep the hash,
   * never the token, and re-check it with this.
   */
  async principalForTokenHash(hash: string): Promise<Principal | undefined> {
    const fromPolicy = this.#o.policyTokens.byHash(hash);
    if (fromPolicy) return fromPolicy;
    return this.#o.apiTokens?.principalForHash(hash);
  }

  principal(name: string): Principal | undefined {
    const fromPolicy = this.#o.policyTokens.principal(name);
    if (fromPolicy) return fromPolicy;
    const seen = this.#recent.get(name);
    if (!seen) return undefined;
    if (seen.at + RECENT_TTL_MS <= this.#now()) {
      this.#recent.delete(name);
      return undefined;
    }
    return seen.principal;
  }

  #remember(principal: Principal): void {
    this.#recent.delete(principal.name);
    this.#recent.set(principal.name, { principal, at: this.#now() });
    while (this.#recent.size > RECENT_MAX) {
      const oldest = this.#recent.keys().next().value;
      if (oldest === undefined) break;
      this.#recent.delete(oldest);
    }
  }
}
