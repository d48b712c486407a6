/**
 * Blast radius for reviewers: how many rows a held write would touch, by the planner's own
 * estimate. The statement is only planned — `EXPLAIN (FORMAT JSON)` without ANALYZE, in a
 * read-only transaction with a short statement timeout, on a side connection with the held
 * credential — never executed. (The planner may fold immutable functions while planning; the
 * READ ONLY transaction keeps a mislabelled one from writing anything.)
 * https://www.postgresql.org/docs/current/sql-explain.html
 */
import type { ActionPart } from '../../core/action.ts';

/** Statement types whose rows can be estimated by planning them. */
const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

interface PlanNode {
  readonly 'Node Type'?: string;
  readonly 'Plan Rows'?: number;
  readonly Plans?: readonly PlanNode[];
}

/**
 * Rows the writes in a plan would touch: for every ModifyTable node, the rows its input produces
 * (the node's own estimate counts only RETURNING rows). Undefined when the plan has none.
 */
export function rowsFromPlan(explain: unknown): number | undefined {
  const top = Array.isArray(explain) ? (explain[0] as { Plan?: PlanNode } | undefined)?.Plan : undefined;
  if (!top) return undefined;
  let total = 0;
  let found = false;
  const walk = (node: PlanNode) => {
    if (node['Node Type'] === 'ModifyTable') {
      found = true;
      const input = node.Plans?.[0];
      total += input?.['Plan Rows'] ?? 0;
    }
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(top);
  return found ? total : undefined;
}

/**
 * The parts worth planning: plain DML with no bound parameters (a parameterised statement
 * cannot be planned without its values on every supported server version). Anything else —
 * DDL, DO blocks, several kinds mixed — gets no estimate rather than a misleading one.
 */
export function estimable(parts: readonly ActionPart[]): readonly ActionPart[] | undefined {
  if (parts.length === 0 || parts.length > 20) return undefined;
  for (const p of parts) {
    if (p.kind === 'read') continue;
    if (p.kind !== 'write' || !p.statement || !DML.has(p.statement)) return undefined;
    if (/\$\d/.test(p.text)) return undefined;
  }
  const writes = parts.filter((p) => p.kind === 'write');
  return writes.length > 0 ? writes : undefined;
}
