/**
 * Policy evaluation: Action → Decision, from the rules alone (grants are the Gate's business).
 * Each part of an action is judged on its own; any matching deny wins, then review, then allow;
 * a part no rule matches gets the connection's default. The action gets the most restrictive
 * of its parts' outcomes.
 */
import type { Action, ActionPart, Principal } from '../action.ts';
import type { Policy, PolicyRule } from './policy.ts';
import type { Effect, ReviewSpec } from './schema.ts';

export interface RuleRef {
  readonly name: string;
  /** Position in the policy file; -1 for a connection default. */
  readonly index: number;
}

interface DecisionBase {
  readonly rule: RuleRef;
  /** One line explaining the outcome, for `policy test`, reviewers and the audit log. */
  readonly why: string;
}
export type Decision =
  | (DecisionBase & { readonly effect: 'allow' })
  | (DecisionBase & { readonly effect: 'deny'; readonly reason: string })
  | (DecisionBase & { readonly effect: 'review'; readonly review: ReviewSpec });

const SEVERITY: Record<Effect, number> = { allow: 0, review: 1, deny: 2 };

/** Glob with `*` (any run of characters, dots included) and `?`; case-insensitive. */
export function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern.toLowerCase() === value.toLowerCase();
  const re = new RegExp(
    `^${pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('')}$`,
    'i',
  );
  return re.test(value);
}

/**
 * A table pattern without a schema (`orders`) matches the table in any schema; `public.*`
 * matches every table in `public`. An unqualified table in the statement is matched against
 * the pattern's table part, and as `public.<name>` (the default search path).
 */
export function tableMatch(pattern: string, table: string): boolean {
  const candidates = table.includes('.') ? [table] : [table, `public.${table}`];
  const patterns = pattern.includes('.') ? [pattern] : [pattern, `*.${pattern}`];
  return patterns.some((p) => candidates.some((t) => globMatch(p, t)));
}

function principalMatches(rule: PolicyRule, principal: Principal): boolean {
  if (rule.principals && !rule.principals.some((p) => globMatch(p, principal.name))) return false;
  if (rule.groups && !rule.groups.some((g) => principal.groups.includes(g))) return false;
  if (rule.principal_kinds && !rule.principal_kinds.includes(principal.kind)) return false;
  return true;
}

/** Rule keys that match a part's `fields`, and the field each one reads. */
const FIELD_RULES = [
  ['commands', 'command'],
  ['methods', 'method'],
  ['paths', 'path'],
  ['verbs', 'verb'],
  ['resources', 'resource'],
  ['namespaces', 'namespace'],
  ['ports', 'port'],
  ['refs', 'ref'],
  ['files', 'file'],
  ['tools', 'tool'],
] as const;

function fieldMatches(patterns: readonly string[], values: readonly string[] | undefined): boolean {
  return (values ?? []).some((v) => patterns.some((p) => globMatch(p, v)));
}

function partMatches(rule: PolicyRule, part: ActionPart): boolean {
  for (const [key, field] of FIELD_RULES) {
    const patterns = rule[key];
    if (patterns && !fieldMatches(patterns, part.fields?.[field])) return false;
  }
  if (rule.arguments)
    for (const [arg, pattern] of Object.entries(rule.arguments))
      if (!fieldMatches(typeof pattern === 'string' ? [pattern] : pattern, part.fields?.[`argument.${arg}`]))
        return false;
  if (rule.kinds && !rule.kinds.includes(part.kind)) return false;
  if (rule.statements && !(part.statement && rule.statements.includes(part.statement))) return false;
  if (rule.tables) {
    const tables = part.tables ?? [];
    if (!tables.some((t) => rule.tables!.some((p) => tableMatch(p, t)))) return false;
  }
  return true;
}

/** Of two matching review rules, the one needing more approvers governs. */
function moreDemanding(rule: PolicyRule, than: PolicyRule): boolean {
  return (
    rule.effect === 'review' &&
    than.effect === 'review' &&
    (rule.review?.approvals ?? 1) > (than.review?.approvals ?? 1)
  );
}

function ruleRef(rule: PolicyRule): RuleRef {
  return { name: rule.name, index: rule.index };
}

export function evaluatePart(policy: Policy, action: Action, part: ActionPart): Decision {
  const connection = policy.connections.get(action.connection);
  let best: PolicyRule | undefined;
  for (const rule of policy.rules) {
    if (rule.connections && !rule.connections.some((c) => globMatch(c, action.connection))) continue;
    if (!principalMatches(rule, action.principal) || !partMatches(rule, part)) continue;
    if (!best || SEVERITY[rule.effect] > SEVERITY[best.effect] || moreDemanding(rule, best)) best = rule;
    if (best.effect === 'deny') break;
  }
  if (best) {
    const why = `rule "${best.name}" matched ${part.kind}${part.statement ? ` (${part.statement})` : ''}`;
    if (best.effect === 'deny')
      return { effect: 'deny', rule: ruleRef(best), reason: best.reason ?? best.name, why };
    if (best.effect === 'review')
      return {
        effect: 'review',
        rule: ruleRef(best),
        review: best.review ?? connection?.review ?? policy.defaultReview,
        why,
      };
    return { effect: 'allow', rule: ruleRef(best), why };
  }
  const effect = connection?.default ?? 'review';
  const rule = { name: `default for ${action.connection}`, index: -1 };
  const why = `no rule matched ${part.kind}${part.statement ? ` (${part.statement})` : ''}; connection default is ${effect}`;
  if (effect === 'deny')
    return {
      effect,
      rule,
      why,
      reason: `${part.kind} actions are not allowed on ${action.connection} (no rule allows them)`,
    };
  if (effect === 'review') return { effect, rule, why, review: connection?.review ?? policy.defaultReview };
  return { effect, rule, why };
}

/** The most restrictive decision over all parts. An action with no parts is unknown: review or deny. */
export function evaluate(policy: Policy, action: Action): Decision {
  const parts: readonly ActionPart[] =
    action.parts.length > 0
      ? action.parts
      : [{ kind: 'unknown', text: action.summary, why: 'nothing to classify' }];
  let result: Decision | undefined;
  for (const part of parts) {
    const d = evaluatePart(policy, action, part);
    if (!result || SEVERITY[d.effect] > SEVERITY[result.effect]) result = d;
    else if (
      d.effect === 'review' &&
      result.effect === 'review' &&
      d.review.approvals > result.review.approvals
    )
      result = d;
    if (result.effect === 'deny') break;
  }
  return result!;
}
