/**
 * Open caller connections, globally and per principal, across every protocol. An adapter takes
 * a slot once the caller is authenticated and gives it back when the connection closes, so a
 * runaway agent that opens connections in a loop is refused with a clear error before it can
 * exhaust the gateway (or the target's connection slots) for everyone else.
 */
import { AirlockError } from '../errors.ts';

export interface ConnectionLimits {
  readonly max: number;
  readonly perPrincipal: number;
}

export class ConnectionLimiter {
  #total = 0;
  readonly #byPrincipal = new Map<string, number>();

  constructor(private readonly limits: ConnectionLimits) {}

  /** A slot for `principal`, or AIRLOCK_E_LIMIT_CONNECTIONS. The returned release is idempotent. */
  acquire(principal: string): () => void {
    if (this.#total >= this.limits.max)
      throw new AirlockError(
        'AIRLOCK_E_LIMIT_CONNECTIONS',
        `the gateway has reached its limit of ${this.limits.max} open connections`,
        { hint: 'close idle connections (or use a connection pool) and retry' },
      );
    const mine = this.#byPrincipal.get(principal) ?? 0;
    if (mine >= this.limits.perPrincipal)
      throw new AirlockError(
        'AIRLOCK_E_LIMIT_CONNECTIONS',
        `${principal} already has ${mine} open connections (the limit per principal is ${this.limits.perPrincipal})`,
        { hint: 'close idle connections (or use a smaller pool) and retry' },
      );
    this.#total++;
    this.#byPrincipal.set(principal, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const n = (this.#byPrincipal.get(principal) ?? 1) - 1;
      if (n <= 0) this.#byPrincipal.delete(principal);
      else this.#byPrincipal.set(principal, n);
    };
  }

  get open(): number {
    return this.#total;
  }

  openFor(principal: string): number {
    return this.#byPrincipal.get(principal) ?? 0;
  }
}
