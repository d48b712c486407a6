/**
 * Which tools a caller is shown. A tool is left out of `tools/list` only when no call of it by
 * this caller could ever pass: every kind the tool can have is denied by a rule that does not
 * depend on the arguments, or falls to a `deny` default with no rule that could allow or review
 * it. Listing is a courtesy to the model; every call is still judged on its own.
 */
import type { ActionKind, Principal } from '../../core/action.ts';
import { globMatch } from '../../core/policy/evaluate.ts';
import type { Policy, PolicyRule } from '../../core/policy/policy.ts';

/** Rule keys that read protocol fields an MCP call never has: such a rule never matches one. */
const FOREIGN_FIELDS = [
  'commands',
  'methods',
  'paths',
  'verbs',
  'resources',
  'namespaces',
  'refs',
  'files',
] as const;
/** Rule keys whose outcome depends on the arguments (or the SQL inside them). */
const ARGUMENT_DEPENDENT = ['arguments', 'statements', 'tables'] as const;
/** Keys every rule may have that the listing check understands. */
const UNDERSTOOD = new Set<string>([
  'name',
  'connections',
  'principals',
  'groups',
  'principal_kinds',
  'kinds',
  'tools',
  'effect',
  'review',
  'reason',
  'index',
  ...FOREIGN_FIELDS,
  ...ARGUMENT_DEPENDENT,
]);

function present(rule: PolicyRule, key: string): boolean {
  return (rule as unknown as Record<string, unknown>)[key] !== undefined;
}

/** Does the rule apply to this caller, connection, tool and kind, ignoring argument conditions? */
function mayApply(
  rule: PolicyRule,
  connection: string,
  principal: Principal,
  tool: string,
  kind: ActionKind,
): boolean {
  if (rule.connections && !rule.connections.some((c) => globMatch(c, connection))) return false;
  if (rule.principals && !rule.principals.some((p) => globMatch(p, principal.name))) return false;
  if (rule.groups && !rule.groups.some((g) => principal.groups.includes(g))) return false;
  if (rule.principal_kinds && !rule.principal_kinds.includes(principal.kind)) return false;
  if (rule.kinds && !rule.kinds.includes(kind)) return false;
  if (rule.tools && !rule.tools.some((t) => globMatch(t, tool))) return false;
  return !FOREIGN_FIELDS.some((k) => present(rule, k));
}

/** Applies whatever the arguments are: no argument condition, and no key we do not know. */
function alwaysApplies(rule: PolicyRule): boolean {
  if (ARGUMENT_DEPENDENT.some((k) => present(rule, k))) return false;
  return Object.keys(rule).every((k) => UNDERSTOOD.has(k) || !present(rule, k));
}

export function mayEverCall(
  policy: Policy,
  connection: string,
  principal: Principal,
  tool: string,
  kinds: readonly ActionKind[],
): boolean {
  const fallback = policy.connections.get(connection)?.default ?? 'review';
  return kinds.some((kind) => {
    let open = fallback !== 'deny';
    for (const rule of policy.rules) {
      if (!mayApply(rule, connection, principal, tool, kind)) continue;
      if (rule.effect === 'deny') {
        if (alwaysApplies(rule)) return false;
      } else open = true;
    }
    return open;
  });
}
