/**
 * What a session recording keeps of the Gate's answer to a statement, and of the people's
 * decision on a held one: the same events whichever SQL protocol the session speaks.
 */
import type { Action } from './action.ts';
import type { GateOutcome, Settlement } from './gate-types.ts';
import type { SessionMasker } from './masking/masker.ts';

/** The `statement` event. */
export function statementEvent(
  action: Action,
  outcome: GateOutcome,
  masker: SessionMasker | undefined,
): Record<string, unknown> {
  return {
    // The recording is masked as results are; the audit log keeps the exact text.
    text: masker ? masker.scan(action.summary) : action.summary,
    kind: action.kind,
    ...(action.attributes.parameters ? { parameters: action.attributes.parameters } : {}),
    decision: outcome.verdict,
    rule: outcome.decision.rule.name,
    ...(outcome.verdict === 'hold' ? { request: outcome.request.id } : {}),
  };
}

/** The `decision` event: how the held request `id` was settled. */
export function settlementEvent(id: number, s: Settlement): Record<string, unknown> {
  return { request: id, status: s.status, ...(s.status === 'approved' ? {} : { reason: s.reason }) };
}
