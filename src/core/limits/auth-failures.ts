/**
 * Failed sign-ins, counted per source address and per claimed identity (the user name a
 * client presented), in a sliding window. Past the limit, that source or identity is refused
 * without the credential even being checked until the block ends, so guessing tokens or
 * hammering the identity provider costs an attacker time, and one noisy source does not lock
 * out everyone else. Memory is bounded: the oldest keys are dropped first.
 */
import { AirlockError } from '../errors.ts';

export interface AuthFailureLimits {
  /** Failures allowed within `windowMs` before a block. */
  readonly max: number;
  readonly windowMs: number;
  readonly blockMs: number;
  /** Keys (sources + identities) remembered at most. */
  readonly maxKeys?: number;
}

interface Entry {
  failures: number[];
  blockedUntil: number;
}

export class AuthFailureLimiter {
  readonly #entries = new Map<string, Entry>();
  readonly #maxKeys: number;

  constructor(
    private readonly limits: AuthFailureLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.#maxKeys = limits.maxKeys ?? 100_000;
  }

  /**
   * Throws AIRLOCK_E_RATE_LIMITED while the source or the claimed identity is blocked. `scope`
   * (a protocol) keeps sources apart per door: a noisy database client does not lock its
   * reviewers out of the console.
   */
  check(source: string | undefined, identity: string | undefined, scope = ''): void {
    const now = this.now();
    for (const key of keys(source, identity, scope)) {
      const e = this.#entries.get(key);
      if (e && e.blockedUntil > now) {
        const seconds = Math.ceil((e.blockedUntil - now) / 1000);
        throw new AirlockError(
          'AIRLOCK_E_RATE_LIMITED',
          `too many failed sign-ins from ${key.startsWith('source:') ? 'this address' : 'this identity'}`,
          { hint: `wait ${seconds}s and check the token before trying again` },
        );
      }
    }
  }

  /** Records a failure; true when this failure started a block (worth an audit event). */
  failed(source: string | undefined, identity: string | undefined, scope = ''): boolean {
    const now = this.now();
    let blocked = false;
    for (const key of keys(source, identity, scope)) {
      let e = this.#entries.get(key);
      if (e) this.#entries.delete(key);
      else e = { failures: [], blockedUntil: 0 };
      // Re-inserted so the map's order is least recently failed first.
      this.#entries.set(key, e);
      e.failures = e.failures.filter((t) => t > now - this.limits.windowMs);
      e.failures.push(now);
      if (e.failures.length > this.limits.max && e.blockedUntil <= now) {
        e.blockedUntil = now + this.limits.blockMs;
        e.failures = [];
        blocked = true;
      }
    }
    while (this.#entries.size > this.#maxKeys) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    return blocked;
  }

  /** Keys currently tracked (for tests and metrics). */
  get size(): number {
    return this.#entries.size;
  }
}

function keys(source: string | undefined, identity: string | undefined, scope: string): string[] {
  const out: string[] = [];
  if (source) out.push(`source:${scope}:${hostOf(source)}`);
  if (identity) out.push(`identity:${identity}`);
  return out;
}

/** "127.0.0.1:5555" → "127.0.0.1", "[::1]:5555" → "::1": a client's port changes per connection. */
export function hostOf(source: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(source);
  if (v6) return v6[1]!;
  const v4 = /^([^:]+):\d+$/.exec(source);
  return v4 ? v4[1]! : source;
}
