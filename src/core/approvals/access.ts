/**
 * Just-in-time access: a principal asks for a time-boxed grant on one connection ("2h on
 * prod-db, reason: incident 4411"). It is an ordinary approval request (same reviewers,
 * quorum, audit, revocation) whose fingerprint names the principal and connection instead of
 * one command. Once approved, the Gate lets the kinds it covers through without per-command
 * review until the window closes or it is revoked; deny rules still win, and every action is
 * still audited. The policy's `access` rules decide which connections and kinds may be asked
 * for, by whom, for how long at most, and who approves.
 */
import type { ActionKind, Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import { globMatch } from '../policy/evaluate.ts';
import type { AccessRule, Policy } from '../policy/policy.ts';
import type { ApprovalRequest, NewRequest } from './request.ts';
import { formatDuration } from './service.ts';

export const ACCESS_PROTOCOL = 'access';

/** The grant key for a principal on a connection (a namespace no command fingerprint uses). */
export function accessFingerprint(connection: string, principal: string): string {
  return `access:${JSON.stringify([connection, principal])}`;
}

/** The kinds an approved access request covers. */
export function accessKinds(
  request: Pick<ApprovalRequest, 'protocol' | 'attributes'>,
): ActionKind[] | undefined {
  if (request.protocol !== ACCESS_PROTOCOL) return undefined;
  const kinds = request.attributes.kinds;
  return Array.isArray(kinds) ? (kinds.filter((k) => typeof k === 'string') as ActionKind[]) : [];
}

function ruleAdmits(rule: AccessRule, principal: Principal, connection: string): boolean {
  if (!rule.connections.some((c) => globMatch(c, connection))) return false;
  if (rule.principals && !rule.principals.some((p) => globMatch(p, principal.name))) return false;
  if (rule.groups && !rule.groups.some((g) => principal.groups.includes(g))) return false;
  if (rule.principalKinds && !rule.principalKinds.includes(principal.kind)) return false;
  return true;
}

export interface AccessAsk {
  readonly connection: string;
  readonly durationMs: number;
  readonly reason: string;
  /** Defaults to every kind the matching rule allows. */
  readonly kinds?: readonly ActionKind[] | undefined;
}

/** The request to create for `ask`, or a clear refusal. */
export function accessRequest(policy: Policy, principal: Principal, ask: AccessAsk, now: number): NewRequest {
  if (!policy.connections.has(ask.connection))
    throw new AirlockError('AIRLOCK_E_CONNECTION_UNKNOWN', `there is no connection "${ask.connection}"`, {
      hint: `connections: ${[...policy.connections.keys()].join(', ') || '(none)'}`,
    });
  const reason = ask.reason.trim();
  if (reason.length === 0)
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'access needs a reason', {
      hint: 'say why, e.g. --reason "incident 4411"; reviewers see it and it is audited',
    });
  const rules = (policy.access ?? []).filter((r) => ruleAdmits(r, principal, ask.connection));
  if (rules.length === 0)
    throw new AirlockError(
      'AIRLOCK_E_FORBIDDEN',
      `${principal.name} may not ask for access to ${ask.connection}`,
      {
        hint: 'the policy has no `access` rule for this connection and principal',
      },
    );
  const wanted = ask.kinds && ask.kinds.length > 0 ? [...new Set(ask.kinds)] : undefined;
  const rule = rules.find((r) => (wanted ?? []).every((k) => r.kinds.includes(k)));
  if (!rule)
    throw new AirlockError(
      'AIRLOCK_E_FORBIDDEN',
      `access to ${ask.connection} may not cover ${wanted!.join(', ')}`,
      {
        hint: `it may cover: ${[...new Set(rules.flatMap((r) => r.kinds))].join(', ')}`,
      },
    );
  if (!Number.isSafeInteger(ask.durationMs) || ask.durationMs <= 0 || ask.durationMs > rule.maxMs)
    throw new AirlockError(
      'AIRLOCK_E_BAD_REQUEST',
      `access to ${ask.connection} lasts at most ${formatDuration(rule.maxMs)}`,
      {
        hint: 'ask for a shorter time; you can ask again when it ends',
      },
    );
  const kinds = wanted ?? [...rule.kinds];
  const summary = `${formatDuration(ask.durationMs)} of ${kinds.join(', ')} on ${ask.connection} — ${reason}`;
  return {
    fingerprint: accessFingerprint(ask.connection, principal.name),
    protocol: ACCESS_PROTOCOL,
    connection: ask.connection,
    principal,
    sessionId: `access-${now.toString(36)}`,
    kind: 'session',
    summary,
    parts: [{ kind: 'session', text: summary, why: 'just-in-time access request' }],
    attributes: { kinds, durationMs: ask.durationMs, reason },
    rule: { name: `access to ${ask.connection}`, index: -1 },
    why: `${principal.name} asked for time-boxed access`,
    // The window is the access itself: it starts when the request is approved.
    review: { ...rule.review, hold: 'retry', window: ask.durationMs },
    createdAt: now,
    expiresAt: now + rule.review.expires,
  };
}
