/** `policy test`: what the policy decides for some SQL, without running it (CLI and API). */
import type { Action, Principal } from '../core/action.ts';
import { kindOfParts } from '../core/action.ts';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import { evaluate } from '../core/policy/evaluate.ts';
import type { Policy } from '../core/policy/policy.ts';
import { classifySql } from '../protocols/postgres/classify.ts';

export interface PolicyTestResult {
  readonly connection: string;
  readonly principal: Principal;
  readonly effect: 'allow' | 'review' | 'deny';
  readonly rule: { name: string; index: number };
  readonly why: string;
  readonly reason?: string;
  readonly review?: { groups: string[]; approvals: number; hold: string };
  readonly kind: string;
  readonly error?: string;
  readonly parts: {
    text: string;
    kind: string;
    statement: string | null;
    effect: string;
    rule: string;
    why: string;
  }[];
}

/** `policy test`: classify the SQL and evaluate it as `as` on `connection`, statement by statement. */
export function policyTest(
  policy: Policy,
  tokens: Authenticator,
  input: { as: string; connection: string; sql: string },
): PolicyTestResult {
  if (!policy.connections.has(input.connection))
    throw new AirlockError(
      'AIRLOCK_E_CONNECTION_UNKNOWN',
      `no connection named "${input.connection}" in the policy`,
      {
        hint: `known connections: ${[...policy.connections.keys()].join(', ') || '(none)'}`,
      },
    );
  const principal = tokens.principal(input.as);
  if (!principal)
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `no identity named "${input.as}" in the policy`, {
      hint: `known identities: ${policy.tokens.map((t) => t.name).join(', ') || '(none)'}`,
      status: 404,
    });
  const classified = classifySql(input.sql);
  const action: Action = {
    protocol: 'postgres',
    connection: input.connection,
    principal,
    sessionId: 'policy-test',
    kind: kindOfParts(classified.parts),
    summary: input.sql,
    normalized: classified.normalized,
    parts: classified.parts,
    attributes: {},
  };
  const decision = evaluate(policy, action);
  const parts = classified.parts.map((part) => {
    const d = evaluate(policy, { ...action, kind: part.kind, parts: [part] });
    return {
      text: part.text,
      kind: part.kind,
      statement: part.statement ?? null,
      effect: d.effect,
      rule: d.rule.name,
      why: d.why,
    };
  });
  return {
    connection: input.connection,
    principal,
    effect: decision.effect,
    rule: decision.rule,
    why: decision.why,
    kind: action.kind,
    ...(decision.effect === 'deny' ? { reason: decision.reason } : {}),
    ...(decision.effect === 'review'
      ? {
          review: {
            groups: [...decision.review.groups],
            approvals: decision.review.approvals,
            hold: decision.review.hold,
          },
        }
      : {}),
    ...(classified.error ? { error: classified.error } : {}),
    parts,
  };
}
