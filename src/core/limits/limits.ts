/**
 * The gateway's resource limits in one place, shared by every protocol adapter: connection
 * slots, failed sign-in throttling, and the timeouts and byte bounds adapters apply on the
 * wire. Each refusal is audited, so an operator can see who hit which limit.
 */
import type { Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import { AuthFailureLimiter } from './auth-failures.ts';
import { ConnectionLimiter } from './connections.ts';

export interface LimitsConfig {
  readonly maxConnections: number;
  readonly maxConnectionsPerPrincipal: number;
  readonly maxPendingPerPrincipal: number;
  readonly authFailures: { readonly max: number; readonly windowMs: number; readonly blockMs: number };
  /** A caller that has not finished connecting and authenticating by then is cut off (slow loris). */
  readonly startupTimeoutMs: number;
  /** A caller that does not read what it asked for for this long is cut off. */
  readonly writeTimeoutMs: number;
  /** Bytes a caller may send while one of its commands is held for approval. */
  readonly maxHeldBytes: number;
  /**
   * How often a caller waiting on a held command is reminded. The reminder is also traffic, so
   * idle timeouts of proxies and clients between the caller and Airlock do not end the wait.
   */
  readonly holdNoticeIntervalMs: number;
}

export const DEFAULT_LIMITS: LimitsConfig = {
  maxConnections: 10_000,
  maxConnectionsPerPrincipal: 500,
  maxPendingPerPrincipal: 50,
  authFailures: { max: 20, windowMs: 60_000, blockMs: 5 * 60_000 },
  startupTimeoutMs: 15_000,
  writeTimeoutMs: 5 * 60_000,
  maxHeldBytes: 1024 * 1024,
  holdNoticeIntervalMs: 30_000,
};

export type LimitEvent = (type: string, data: Record<string, unknown>) => void;

export interface AuthAttempt {
  readonly protocol: string;
  readonly source?: string | undefined;
  /** What the client claimed to be (database user, SSH user): recorded, never trusted. */
  readonly identity?: string | undefined;
}

export class Limits {
  readonly config: LimitsConfig;
  readonly #auth: AuthFailureLimiter;
  readonly #connections: ConnectionLimiter;
  readonly #event: LimitEvent;

  constructor(
    config: LimitsConfig = DEFAULT_LIMITS,
    event: LimitEvent = () => {},
    now: () => number = Date.now,
  ) {
    this.config = config;
    this.#event = event;
    this.#auth = new AuthFailureLimiter(config.authFailures, now);
    this.#connections = new ConnectionLimiter({
      max: config.maxConnections,
      perPrincipal: config.maxConnectionsPerPrincipal,
    });
  }

  /** Before checking a credential: refuses a blocked source or identity (AIRLOCK_E_RATE_LIMITED). */
  beforeAuth(attempt: AuthAttempt): void {
    try {
      this.#auth.check(attempt.source, attempt.identity, attempt.protocol);
    } catch (err) {
      this.#event('limit.auth_blocked', { ...attemptData(attempt) });
      throw err;
    }
  }

  /** After a failed credential check. */
  authFailed(attempt: AuthAttempt): void {
    if (this.#auth.failed(attempt.source, attempt.identity, attempt.protocol))
      this.#event('limit.auth_block_started', {
        ...attemptData(attempt),
        blockMs: this.config.authFailures.blockMs,
        failures: this.config.authFailures.max + 1,
      });
  }

  /** A connection slot for an authenticated caller; release it when the connection closes. */
  openConnection(principal: Principal, protocol: string, source?: string): () => void {
    try {
      return this.#connections.acquire(principal.name);
    } catch (err) {
      this.#event('limit.connections', {
        protocol,
        principal: principal.name,
        source: source ?? null,
        open: this.#connections.openFor(principal.name),
        total: this.#connections.open,
      });
      throw err;
    }
  }

  /** Refuses a new approval request when the principal already has `pending` waiting. */
  checkPending(principal: Principal, pending: number, connection: string): void {
    if (pending < this.config.maxPendingPerPrincipal) return;
    this.#event('limit.pending', { principal: principal.name, connection, pending });
    throw new AirlockError(
      'AIRLOCK_E_LIMIT_PENDING',
      `${principal.name} already has ${pending} requests waiting for approval (the limit is ${this.config.maxPendingPerPrincipal})`,
      { hint: 'wait for reviewers to decide the waiting requests, or cancel some, then retry' },
    );
  }

  get openConnections(): number {
    return this.#connections.open;
  }
}

function attemptData(a: AuthAttempt): Record<string, unknown> {
  return { protocol: a.protocol, source: a.source ?? null, identity: a.identity ?? null };
}
