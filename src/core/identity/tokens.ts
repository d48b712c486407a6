/**
 * Airlock API tokens: opaque random strings, stored and compared only as SHA-256 hashes
 * (tokens carry 256 bits of entropy, so a slow hash buys nothing). Lookups compare hashes in
 * constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import type { TokenIdentity } from '../policy/policy.ts';
import type { Authenticator } from './authenticator.ts';

export const TOKEN_PREFIX = 'alk_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * One frozen Principal per policy identity: every request of a keep-alive HTTP caller (and every
 * statement's audit record) then refers to the same object, so what is derived from it (its
 * audit JSON, say) is built once, not per request.
 */
function frozenPrincipal(i: TokenIdentity): Principal {
  return Object.freeze({ name: i.name, kind: i.kind, groups: Object.freeze([...i.groups]) });
}

export class TokenRegistry implements Authenticator {
  readonly #byHash: Map<string, TokenIdentity>;
  readonly #principals: Map<string, Principal>;

  constructor(identities: readonly TokenIdentity[]) {
    this.#byHash = new Map(identities.map((i) => [i.hash, i]));
    this.#principals = new Map(identities.map((i) => [i.hash, frozenPrincipal(i)]));
  }

  async authenticate(token: string | undefined | null): Promise<Principal> {
    return this.verify(token);
  }

  /** The principal a token stands for; throws a clear error (without the token) otherwise. */
  verify(token: string | undefined | null): Principal {
    if (token === undefined || token === null || token === '')
      throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'no Airlock token was presented', {
        hint: 'pass your Airlock token as the password (databases) or as "Authorization: Bearer <token>" (API)',
      });
    const hash = hashToken(token);
    const wanted = Buffer.from(hash, 'hex');
    let found: TokenIdentity | undefined;
    // Constant-time over the hash bytes; the map lookup itself only reveals whether a hash exists.
    const candidate = this.#byHash.get(hash);
    if (candidate && timingSafeEqual(Buffer.from(candidate.hash, 'hex'), wanted)) found = candidate;
    if (!found)
      throw new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the Airlock token was not recognised', {
        hint: 'check the token, or ask an Airlock admin for a new one',
      });
    return this.#principals.get(found.hash)!;
  }

  /** The principal of the token with this SHA-256 (hex), if the policy has one. */
  byHash(hash: string): Principal | undefined {
    return this.#principals.get(hash);
  }

  principal(name: string): Principal | undefined {
    for (const [hash, i] of this.#byHash) if (i.name === name) return this.#principals.get(hash);
    return undefined;
  }
}
