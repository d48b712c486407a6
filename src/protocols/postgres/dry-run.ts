/**
 * Exact dry run of held DML, for reviewers, on connections that opt in (`dry_run: true`): the
 * statement runs on a side connection with the held credential inside a transaction that is
 * always rolled back, under a statement timeout and a lock timeout, and the rows it reports
 * (CommandComplete) go on the request as "N rows (dry run)".
 * https://www.postgresql.org/docs/current/sql-rollback.html
 *
 * A rollback undoes every change made to tables, but not everything a statement can do. So a
 * dry run is only attempted for plain INSERT/UPDATE/DELETE/MERGE without parameters, calling
 * only built-in functions known to be harmless or functions the target says are immutable or
 * stable (those run with a read-only snapshot), on tables without user triggers or rules (which
 * could call anything: dblink, a file write). Sequences are the one thing a rollback does not
 * give back: a dry run that draws sequence values (serial or identity columns on INSERT) still
 * runs, and the request says so.
 */
import type pg from 'pg';
import type { ActionPart } from '../../core/action.ts';
import { knownHarmless } from './classify.ts';

export const DRY_RUN_STATEMENT_TIMEOUT = '2s';
export const DRY_RUN_LOCK_TIMEOUT = '1s';

const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** What the request carries: exact rows, or why there are none. */
export type DryRun =
  | { readonly rows: number; readonly note?: string | undefined }
  | { readonly skipped: string };

/**
 * The statements to dry run, or why not. Every part must be plain DML (reads in between are
 * not run: they change nothing the count depends on).
 */
export function dryRunnable(
  parts: readonly ActionPart[],
):
  | { readonly parts: readonly ActionPart[]; readonly functions: readonly string[] }
  | { readonly skipped: string } {
  const writes = parts.filter((p) => p.kind !== 'read');
  if (writes.length === 0) return { skipped: 'no data change to count' };
  if (writes.length > 20) return { skipped: 'too many statements' };
  const functions = new Set<string>();
  for (const p of writes) {
    if (p.kind !== 'write' || !p.statement || !DML.has(p.statement))
      return {
        skipped: `only INSERT, UPDATE, DELETE and MERGE are dry run (${p.statement ?? p.kind} is not)`,
      };
    if (/\$\d/.test(p.text)) return { skipped: 'statements with parameters are not dry run' };
    for (const fn of p.functions ?? []) if (!knownHarmless(fn)) functions.add(fn);
  }
  return { parts: writes, functions: [...functions] };
}

/**
 * Facts about the named tables that decide whether, and how honestly, a dry run can be done.
 * Triggers and rules count on the table itself and on every table that references it by a
 * foreign key, at any depth: a cascading delete or update fires those too.
 */
const TABLE_FACTS = `
  SELECT t.name,
         c.oid IS NOT NULL AS found,
         EXISTS (
           WITH RECURSIVE reach(oid) AS (
             SELECT c.oid
             UNION
             SELECT k.conrelid FROM pg_catalog.pg_constraint k JOIN reach r ON k.confrelid = r.oid
              WHERE k.contype = 'f')
           SELECT 1 FROM pg_catalog.pg_trigger g JOIN reach r ON g.tgrelid = r.oid WHERE NOT g.tgisinternal
         ) AS triggers,
         EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN') AS rules,
         EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                   AND NOT a.attisdropped AND a.attidentity <> '')
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d WHERE d.adrelid = c.oid
                   AND pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE '%nextval(%') AS sequences
    FROM unnest($1::text[]) AS t(name)
    LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.name)`;

/**
 * Runs the statements in one transaction on `client` and rolls it back whatever happens.
 * `volatility` answers for the functions that are not known built-ins.
 */
export async function dryRun(
  client: pg.Client,
  parts: readonly ActionPart[],
  functions: readonly string[],
  volatility: (names: readonly string[]) => Promise<ReadonlyMap<string, 'i' | 's' | 'v'>>,
): Promise<DryRun> {
  if (functions.length > 0) {
    const v = await volatility(functions);
    const unsafe = functions.filter((fn) => v.get(fn) !== 'i' && v.get(fn) !== 's');
    if (unsafe.length > 0)
      return {
        skipped: `calls ${unsafe.map((f) => `${f}()`).join(', ')}, whose effects a rollback might not undo`,
      };
  }
  const tables = [...new Set(parts.flatMap((p) => p.tables ?? []))];
  let sequences = false;
  if (tables.length > 0) {
    const facts = await client.query<{
      name: string;
      found: boolean;
      triggers: boolean;
      rules: boolean;
      sequences: boolean;
    }>(TABLE_FACTS, [tables]);
    for (const f of facts.rows) {
      if (!f.found) return { skipped: `table ${f.name} was not found by the dry run's connection` };
      if (f.triggers)
        return {
          skipped: `table ${f.name} (or a table referencing it) has triggers, which a dry run would fire`,
        };
      if (f.rules) return { skipped: `table ${f.name} has rules, which a dry run would apply` };
      if (f.sequences && parts.some((p) => p.statement === 'InsertStmt' || p.statement === 'MergeStmt'))
        sequences = true;
    }
  }
  let rows = 0;
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL statement_timeout = '${DRY_RUN_STATEMENT_TIMEOUT}'`);
    await client.query(`SET LOCAL lock_timeout = '${DRY_RUN_LOCK_TIMEOUT}'`);
    for (const p of parts) {
      // One statement per query call: the simple protocol runs a multi-statement text in one
      // implicit transaction, and each part here is exactly one statement.
      const r = await client.query(p.text);
      rows += r.rowCount ?? 0;
    }
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const why =
      e.code === '57014'
        ? `it ran longer than ${DRY_RUN_STATEMENT_TIMEOUT}`
        : e.code === '55P03'
          ? 'it waited for a lock'
          : `it failed (${e.code ?? 'error'}: ${e.message ?? 'unknown'})`;
    return { skipped: `the dry run was stopped: ${why}` };
  } finally {
    await client.query('ROLLBACK');
  }
  return sequences
    ? { rows, note: 'sequence values drawn by the dry run are not given back by its rollback' }
    : { rows };
}
