/**
 * The parts of a database caller's sign-in that do not depend on the wire: a token that does not
 * pass, and a database name that is not a connection of the adapter's type, are both audited as
 * failed sign-ins and logged the same way whatever the protocol.
 */
import type { ActionOrigin, Principal } from './action.ts';
import type { Logger } from './adapter-ports.ts';
import { AirlockError, isAirlockError } from './errors.ts';
import type { GatePort } from './gate-types.ts';
import type { PolicyConnection } from './policy/connections/index.ts';
import type { Policy } from './policy/policy.ts';

export interface SignInAttempt {
  readonly protocol: PolicyConnection['type'];
  /** The gateway session, for the log. */
  readonly session: string;
  readonly source: string;
  /** The connection the caller named (its database name). */
  readonly connection: string;
  /** The user name the client sent; only recorded. */
  readonly user: string;
}

/** Audits and logs a token that did not pass; returns the error to tell the caller. */
export function tokenRefused(
  err: unknown,
  attempt: SignInAttempt,
  gate: GatePort,
  log: Logger | undefined,
): AirlockError {
  const e = isAirlockError(err)
    ? err
    : new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the Airlock token was not recognised');
  const { protocol, source, connection, user } = attempt;
  gate.authFailed({ protocol, source, connection, user, reason: e.code });
  log?.warn({ session: attempt.session, source, connection, reason: e.code }, `${protocol} login refused`);
  return e;
}

/**
 * The connection the caller named, if it is one of the attempt's protocol. Otherwise the sign-in
 * is audited as failed, and the names that would do are returned for the refusal.
 */
export function namedConnection<T extends PolicyConnection['type']>(
  policy: Policy,
  gate: GatePort,
  attempt: SignInAttempt & { readonly protocol: T },
): Extract<PolicyConnection, { type: T }> | { readonly known: readonly string[] } {
  const connection = policy.connections.get(attempt.connection);
  if (connection?.type === attempt.protocol) return connection as Extract<PolicyConnection, { type: T }>;
  const { protocol, source, user } = attempt;
  gate.authFailed({
    protocol,
    source,
    connection: attempt.connection,
    user,
    reason: 'AIRLOCK_E_CONNECTION_UNKNOWN',
  });
  return {
    known: [...policy.connections.values()].filter((c) => c.type === protocol).map((c) => c.name),
  };
}

/** Once signed in: what every action of the session repeats. */
export function originOf(attempt: SignInAttempt, principal: Principal): ActionOrigin {
  return {
    protocol: attempt.protocol,
    connection: attempt.connection,
    principal,
    sessionId: attempt.session,
    source: attempt.source,
  };
}
