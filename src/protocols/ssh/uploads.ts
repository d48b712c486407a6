/**
 * Changing files over SFTP or legacy scp is denied unless a rule allows or reviews it: the
 * connection default does not apply to uploads. Shared by the adapter and `policy test`, so
 * what the policy test shows is what the listener does.
 */
import type { Action, ActionPart } from '../../core/action.ts';
import { evaluate } from '../../core/policy/evaluate.ts';
import type { Policy } from '../../core/policy/policy.ts';

/** An exec line that is a legacy scp upload (`scp -t PATH` on the host). */
export function isScpUpload(parts: readonly ActionPart[]): boolean {
  return parts.some((p) => p.kind === 'write' && p.fields?.command?.[0]?.startsWith('scp '));
}

/** Why `action` is refused as an upload no rule covers, or undefined when the Gate decides. */
export function uploadRefusal(policy: Policy, action: Action): string | undefined {
  if (action.kind !== 'write' || evaluate(policy, action).rule.index >= 0) return undefined;
  return `${action.summary} is not allowed: no rule allows file uploads or changes on ${action.connection}`;
}

/** The rule name audited for such a refusal. */
export const UPLOADS_NEED_A_RULE = 'uploads need a rule';
