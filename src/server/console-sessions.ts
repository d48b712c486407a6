/**
 * Reviewer console sessions that every replica can serve: kept in the Store, so a cookie set by
 * one replica works on the others behind a load balancer, and signing out on one ends the
 * session on all of them.
 *
 * The cookie holds a random id; the store keeps its SHA-256, the principal, the CSRF token and
 * what re-checks the credential without keeping it: for a token sign-in the token's SHA-256
 * (the authenticator is asked whether some policy or stored token with that hash still stands
 * for someone), for an OIDC sign-in the ID token's expiry (the session ends with it).
 *
 * Each replica caches a session for a few seconds so API calls are not each a store round trip.
 * Calls that change something and the console's "who am I" read the store (`fresh`), so a
 * sign-out or a removed token holds for them at once everywhere; other reads see it within the
 * cache time.
 *
 * API routes authenticate one way, with `Authorization: Bearer`. For a request that came with a
 * session cookie the console presents a pass: a random credential that stands for the session's
 * principal in this process only, only while that request is being answered (`authenticator()`
 * wraps the gateway's Authenticator to accept it).
 */
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Principal } from '../core/action.ts';
import { AirlockError, isAirlockError } from '../core/errors.ts';
import type { AuthContext, Authenticator } from '../core/identity/authenticator.ts';
import { looksLikeJwt } from '../core/identity/oidc.ts';
import { hashToken } from '../core/identity/tokens.ts';
import type { Store } from '../core/store.ts';

export type ConsoleSessionBackend = Pick<
  Store,
  'createConsoleSession' | 'getConsoleSession' | 'deleteConsoleSession' | 'deleteExpiredConsoleSessions'
>;

/** Who a token hash stands for now (CompositeAuthenticator has this). */
export interface TokenRecheck {
  principalForTokenHash(hash: string): Promise<Principal | undefined>;
}

export interface ConsoleSession {
  readonly principal: Principal;
  readonly csrf: string;
  /** How the reviewer signed in. */
  readonly method: string;
  /** Epoch ms: the sooner of the session's end and its credential's. */
  readonly expiresAt: number;
}

export interface ConsoleSessionsOptions {
  readonly store: ConsoleSessionBackend;
  readonly recheck: TokenRecheck;
  /** Session lifetime. Default 12 h. */
  readonly ttlMs?: number;
  /** How long a replica trusts what it read. Default 5 s. */
  readonly cacheMs?: number;
  /** Sessions cached per replica. Default 10,000 (oldest dropped first). */
  readonly maxCached?: number;
  readonly now?: () => number;
}

/** A pass lives no longer than this even if its request never reports that it ended. */
const PASS_MAX_MS = 10 * 60_000;
const PASS_PREFIX = 'alks_';

/** A store failure, said as one: the caller is refused (503), never let through. */
async function fromStore<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (cause) {
    if (isAirlockError(cause)) throw cause;
    throw new AirlockError(
      'AIRLOCK_E_STORE_UNAVAILABLE',
      `the console session could not be ${what}: the store failed`,
      {
        hint: 'retry in a moment; if it persists, check the store (GET /api/v1/ready)',
        cause,
      },
    );
  }
}

export class ConsoleSessions {
  readonly ttlMs: number;
  readonly cacheMs: number;
  readonly #store: ConsoleSessionBackend;
  readonly #recheck: TokenRecheck;
  readonly #maxCached: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { session: ConsoleSession; until: number }>();
  readonly #passes = new Map<string, { principal: Principal; until: number }>();

  constructor(opts: ConsoleSessionsOptions) {
    this.#store = opts.store;
    this.#recheck = opts.recheck;
    this.ttlMs = opts.ttlMs ?? 12 * 60 * 60 * 1000;
    this.cacheMs = opts.cacheMs ?? 5_000;
    this.#maxCached = opts.maxCached ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** The store key of a session id: the id itself is never stored. */
  static key(id: string): string {
    return createHash('sha256').update(id).digest('hex');
  }

  /**
   * Opens a session for a principal whose `credential` was just verified. Only its hash (an
   * Airlock token) or its expiry (a JWT) is kept.
   */
  async open(
    principal: Principal,
    credential: string,
    method: string,
  ): Promise<{ id: string; session: ConsoleSession }> {
    const now = this.#now();
    let tokenHash: string | undefined;
    let credentialExpiresAt: number | undefined;
    if (looksLikeJwt(credential)) {
      // Already verified by the caller; only the expiry is read here.
      const exp = decodeJwt(credential).exp;
      if (typeof exp === 'number') credentialExpiresAt = exp * 1000;
    } else {
      tokenHash = hashToken(credential);
    }
    const id = randomBytes(32).toString('base64url');
    const session: ConsoleSession = {
      principal: { name: principal.name, kind: principal.kind, groups: [...principal.groups] },
      csrf: randomBytes(24).toString('base64url'),
      method,
      expiresAt: Math.min(now + this.ttlMs, credentialExpiresAt ?? Number.POSITIVE_INFINITY),
    };
    // Sign-ins are rare: a good moment to drop what has expired.
    await fromStore('opened', () => this.#store.deleteExpiredConsoleSessions(now));
    await fromStore('opened', () =>
      this.#store.createConsoleSession({
        idHash: ConsoleSessions.key(id),
        principal: session.principal,
        csrf: session.csrf,
        method,
        tokenHash,
        credentialExpiresAt,
        createdAt: now,
        expiresAt: now + this.ttlMs,
      }),
    );
    // The principal object the authenticator returned is kept as is: token management knows
    // the token behind it (a token minted with it never outlives or widens it).
    this.#remember(ConsoleSessions.key(id), { ...session, principal }, now);
    return { id, session: { ...session, principal } };
  }

  /**
   * The live session for a cookie value, or undefined. `fresh` reads the store even if this
   * replica read it a moment ago. Throws when the store cannot be read (fails closed).
   */
  async get(id: string | undefined, opts: { fresh?: boolean } = {}): Promise<ConsoleSession | undefined> {
    if (!id || id.length > 256) return undefined;
    const key = ConsoleSessions.key(id);
    const now = this.#now();
    const cached = this.#cache.get(key);
    if (cached && !opts.fresh && cached.until > now) {
      if (cached.session.expiresAt > now) return cached.session;
      this.#cache.delete(key);
      return undefined;
    }
    this.#cache.delete(key);
    const record = await fromStore('read', () => this.#store.getConsoleSession(key));
    if (!record) return undefined;
    const expiresAt = Math.min(record.expiresAt, record.credentialExpiresAt ?? Number.POSITIVE_INFINITY);
    if (expiresAt <= now) {
      await fromStore('ended', () => this.#store.deleteConsoleSession(key));
      return undefined;
    }
    let principal = record.principal;
    if (record.tokenHash !== undefined) {
      // A token removed from the policy, revoked or expired ends the session, on every replica.
      const hash = record.tokenHash;
      const current = await fromStore('checked', () => this.#recheck.principalForTokenHash(hash));
      if (!current) {
        await fromStore('ended', () => this.#store.deleteConsoleSession(key));
        return undefined;
      }
      principal = current;
    }
    const session: ConsoleSession = { principal, csrf: record.csrf, method: record.method, expiresAt };
    this.#remember(key, session, now);
    return session;
  }

  /** Ends the session here and in the store, so every replica refuses it. */
  async close(id: string | undefined): Promise<void> {
    if (!id || id.length > 256) return;
    const key = ConsoleSessions.key(id);
    this.#cache.delete(key);
    await fromStore('ended', () => this.#store.deleteConsoleSession(key));
  }

  /** A credential standing for `principal` until `release()` (the end of one API request). */
  pass(principal: Principal): { credential: string; release(): void } {
    const now = this.#now();
    if (this.#passes.size > 1000)
      for (const [k, p] of this.#passes) if (p.until <= now) this.#passes.delete(k);
    const credential = PASS_PREFIX + randomBytes(32).toString('base64url');
    this.#passes.set(credential, { principal, until: now + PASS_MAX_MS });
    return { credential, release: () => this.#passes.delete(credential) };
  }

  /** `inner`, also accepting the passes of this process; everything else goes to `inner`. */
  authenticator<T extends Authenticator>(inner: T): T {
    const passes = this.#passes;
    const now = this.#now;
    const authenticate = async (credential: string | undefined | null, ctx?: AuthContext) => {
      if (credential?.startsWith(PASS_PREFIX)) {
        const p = passes.get(credential);
        if (p && p.until > now()) return p.principal;
      }
      return inner.authenticate(credential, ctx);
    };
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'authenticate') return authenticate;
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }

  #remember(key: string, session: ConsoleSession, now: number): void {
    this.#cache.delete(key);
    this.#cache.set(key, { session, until: now + this.cacheMs });
    while (this.#cache.size > this.#maxCached) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
  }
}
