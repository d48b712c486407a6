/**
 * Where each result column of a statement gets its value from, read from PostgreSQL's own parse
 * tree (libpg-query), so column masking follows a masked column through expressions.
 *
 * RowDescription names a source column (table OID, attribute number) only for a plain column
 * reference; `lower(email)`, `email || ''`, a CASE over it, an aggregate, a subquery, a view's
 * column, all arrive without one. Here every output column gets the list of columns its value
 * draws on — every column reference anywhere in its expression, followed through CTEs, subqueries
 * in FROM, set operations, VALUES, joins, correlated and scalar subqueries, whole-row references
 * (`to_json(u)`) and `*`. The list over-approximates on purpose (an unqualified name counts as a
 * column of every relation in scope that could have it; a CASE condition counts like its
 * branches): masking too much is safe, too little is not.
 * https://www.postgresql.org/docs/current/queries-table-expressions.html
 *
 * Three kinds of reference:
 *  - `col`: a column of a named relation (a table, a view, a materialized view; resolved later
 *    against the catalog, views through their definition);
 *  - `name`: a column of something only its name is known of;
 *  - `opaque`: a value Airlock cannot see into — a function that is not a known built-in
 *    (its body may read a masked column), a column of such a function in FROM, a cursor or
 *    prepared statement it did not see defined. The caller masks these conservatively.
 */
import { parseSync, scanSync } from 'libpg-query';
import { knownHarmless } from './classify.ts';

type Obj = Record<string, unknown>;

export type Ref =
  | {
      readonly t: 'col';
      readonly schema?: string | undefined;
      readonly table: string;
      readonly column: string;
    }
  | { readonly t: 'name'; readonly column: string }
  | { readonly t: 'opaque' };

/** One output column, or a `*` whose columns are only known by expansion. */
export type Item =
  | { readonly t: 'col'; readonly name: string | undefined; readonly refs: readonly Ref[] }
  | { readonly t: 'star'; readonly of: Star };

/** What a `*` expands to. */
export type Star =
  | { readonly t: 'rel'; readonly schema?: string | undefined; readonly table: string }
  | { readonly t: 'items'; readonly items: readonly Item[] }
  /** Columns of a function result or similar: each is named `name` plus these references. */
  | { readonly t: 'opaque'; readonly refs: readonly Ref[] };

/** What a statement sends back as rows, and for COPY TO how its text is written. */
export interface StatementLineage {
  /** Output columns in order; undefined: the statement's rows cannot be traced (mask by name). */
  readonly items: readonly Item[] | undefined;
  readonly copy?: CopyFormat | undefined;
  /** SQL-level names this statement defines (DECLARE, PREPARE), and what they return. */
  readonly defines?: { readonly kind: 'cursor' | 'prepared'; readonly name: string } | undefined;
  /** A cursor or prepared statement whose rows this statement returns (FETCH, EXECUTE). */
  readonly uses?: { readonly kind: 'cursor' | 'prepared'; readonly name: string } | undefined;
  /** Every relation the statement names anywhere (CTE names aside), for its errors and notices. */
  readonly relations?: readonly { readonly schema?: string | undefined; readonly table: string }[];
  /** It calls a function that is not a known built-in, whose messages may say anything. */
  readonly opaque?: boolean;
}

export interface CopyFormat {
  readonly format: 'text' | 'csv' | 'binary';
  readonly delimiter: string;
  readonly null: string;
  readonly quote: string;
  readonly escape: string;
  readonly header: boolean;
  /** ENCODING option, when given: rows are then not in the session's UTF-8. */
  readonly encoding?: string | undefined;
  /**
   * What is copied, for learning the columns' types (binary COPY does not say them): a table
   * and its column list, or the text of the query (undefined when it could not be cut out).
   */
  readonly source?:
    | {
        readonly t: 'table';
        readonly schema?: string | undefined;
        readonly table: string;
        readonly columns: readonly string[] | undefined;
      }
    | { readonly t: 'query'; readonly text: string | undefined }
    | undefined;
}

interface Source {
  /** The name it is referred to by (alias, or relation/CTE name). */
  readonly alias: string | undefined;
  readonly items: readonly Item[];
}

interface Scope {
  readonly sources: readonly Source[];
  readonly ctes: ReadonlyMap<string, readonly Item[]>;
  readonly outer: Scope | undefined;
}

const EMPTY_SCOPE: Scope = { sources: [], ctes: new Map(), outer: undefined };
const OPAQUE: Ref = { t: 'opaque' };
const MAX_DEPTH = 64;

function str(node: unknown): string | undefined {
  return (node as { String?: { sval?: string } } | undefined)?.String?.sval;
}

function strings(list: unknown): string[] {
  return Array.isArray(list) ? list.map((n) => str(n) ?? '') : [];
}

function only(node: unknown): [string, Obj] | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  return [keys[0]!, (node as Obj)[keys[0]!] as Obj];
}

/** Lineage of every statement in `sql`, in order; undefined when the text does not parse. */
export function lineageOf(sql: string): StatementLineage[] | undefined {
  let tree: { stmts?: { stmt?: unknown; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch {
    return undefined;
  }
  let bytes: Buffer | undefined;
  return (tree.stmts ?? []).map((s) => {
    const l = { ...statementLineage(s.stmt), ...statementFacts(s.stmt) };
    if (l.copy?.source?.t !== 'query') return l;
    // Positions are in bytes; a length of 0 means to the end of the text.
    bytes ??= Buffer.from(sql, 'utf8');
    const from = s.stmt_location ?? 0;
    const text = bytes.toString('utf8', from, s.stmt_len ? from + s.stmt_len : bytes.length);
    return { ...l, copy: { ...l.copy, source: { t: 'query' as const, text: copyQueryText(text) } } };
  });
}

/** The text of the query in `COPY (query) TO ...`: between the first parenthesis and its match. */
function copyQueryText(stmt: string): string | undefined {
  let tokens: { start: number; end: number; text: string }[];
  try {
    tokens = scanSync(stmt).tokens;
  } catch {
    return undefined;
  }
  const open = tokens.findIndex((t) => t.text === '(');
  if (open < 0) return undefined;
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i]!.text;
    if (t === '(') depth++;
    else if (t === ')' && --depth === 0) {
      const b = Buffer.from(stmt, 'utf8');
      return b.toString('utf8', tokens[open]!.end, tokens[i]!.start);
    }
  }
  return undefined;
}

/** What a statement reads anywhere in its text, not only in its output columns. */
function statementFacts(stmt: unknown): Pick<StatementLineage, 'relations' | 'opaque'> {
  const ctes = new Set<string>();
  const found: { schema?: string | undefined; table: string }[] = [];
  let opaque = false;
  const walk = (n: unknown, d: number): void => {
    if (d > MAX_DEPTH * 8 || !n || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      for (const x of n) walk(x, d + 1);
      return;
    }
    const o = n as Obj;
    const rv = o.RangeVar as Obj | undefined;
    if (rv) found.push({ schema: rv.schemaname as string | undefined, table: String(rv.relname ?? '') });
    const cte = o.CommonTableExpr as Obj | undefined;
    if (cte) ctes.add(String(cte.ctename ?? ''));
    const fc = o.FuncCall as Obj | undefined;
    if (fc && !knownHarmless(strings(fc.funcname).join('.'))) opaque = true;
    for (const v of Object.values(o)) walk(v, d + 1);
  };
  walk(stmt, 0);
  return { relations: found.filter((r) => r.schema !== undefined || !ctes.has(r.table)), opaque };
}

function statementLineage(stmt: unknown): StatementLineage {
  const o = only(stmt);
  if (!o) return { items: undefined };
  const [type, node] = o;
  try {
    switch (type) {
      case 'SelectStmt':
        return { items: selectItems(node, EMPTY_SCOPE, 0) };
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return { items: returningItems(node, 0) };
      case 'CopyStmt':
        return copyLineage(node);
      case 'DeclareCursorStmt':
        return {
          items: queryItems(node.query, EMPTY_SCOPE, 0),
          defines: { kind: 'cursor', name: String(node.portalname ?? '') },
        };
      case 'PrepareStmt':
        return {
          items: queryItems(node.query, EMPTY_SCOPE, 0),
          defines: { kind: 'prepared', name: String(node.name ?? '') },
        };
      case 'FetchStmt':
        return { items: undefined, uses: { kind: 'cursor', name: String(node.portalname ?? '') } };
      case 'ExecuteStmt':
        return { items: undefined, uses: { kind: 'prepared', name: String(node.name ?? '') } };
      case 'ExplainStmt':
      case 'VariableShowStmt':
        return { items: [] };
      default:
        // CALL with OUT arguments, and anything else that returns rows we cannot trace.
        return { items: undefined };
    }
  } catch {
    return { items: undefined };
  }
}

function queryItems(query: unknown, scope: Scope, depth: number): readonly Item[] | undefined {
  const o = only(query);
  if (!o) return undefined;
  if (o[0] === 'SelectStmt') return selectItems(o[1], scope, depth);
  if (['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'].includes(o[0]))
    return returningItems(o[1], depth);
  return undefined;
}

function returningItems(node: Obj, depth: number): readonly Item[] {
  const scope = withCtes(node.withClause as Obj | undefined, EMPTY_SCOPE, depth);
  const sources: Source[] = [];
  const rel = node.relation as Obj | undefined;
  if (rel) sources.push(rangeVarSource(rel, scope));
  for (const f of [...((node.fromClause as unknown[]) ?? []), ...((node.usingClause as unknown[]) ?? [])])
    sources.push(...fromSources(f, scope, depth));
  if (node.sourceRelation) sources.push(...fromSources(node.sourceRelation, scope, depth));
  return targetItems((node.returningList as unknown[]) ?? [], { ...scope, sources }, depth);
}

function copyLineage(node: Obj): StatementLineage {
  const opts = new Map<string, unknown>();
  for (const d of (node.options as unknown[]) ?? []) {
    const e = (d as { DefElem?: Obj }).DefElem;
    if (e) opts.set(String(e.defname), e.arg);
  }
  const format = (str(opts.get('format')) ?? 'text').toLowerCase();
  const csv = format === 'csv';
  const quote = str(opts.get('quote')) ?? '"';
  const header = opts.has('header') && isOn(opts.get('header'));
  const copy: CopyFormat = {
    format: format === 'binary' ? 'binary' : csv ? 'csv' : 'text',
    delimiter: str(opts.get('delimiter')) ?? (csv ? ',' : '\t'),
    null: str(opts.get('null')) ?? (csv ? '' : '\\N'),
    quote,
    escape: str(opts.get('escape')) ?? quote,
    header,
    encoding: str(opts.get('encoding')),
  };
  if (node.query)
    return {
      items: queryItems(node.query, EMPTY_SCOPE, 0),
      copy: { ...copy, source: { t: 'query', text: undefined } },
    };
  const rel = node.relation as Obj | undefined;
  if (!rel) return { items: undefined, copy };
  const schema = rel.schemaname as string | undefined;
  const table = String(rel.relname ?? '');
  const attlist = strings(node.attlist);
  const items: Item[] =
    attlist.length > 0
      ? attlist.map((c) => ({ t: 'col', name: c, refs: [{ t: 'col', schema, table, column: c }] }))
      : [{ t: 'star', of: { t: 'rel', schema, table } }];
  return {
    items,
    copy: {
      ...copy,
      source: { t: 'table', schema, table, columns: attlist.length > 0 ? attlist : undefined },
    },
  };
}

/**
 * A boolean option as PostgreSQL reads it (defGetBoolean): no argument, true/on/yes/1 (and
 * prefixes of true and yes) are on. When in doubt, off: a header row taken for data is masked
 * like data, while a data row taken for a header would go out unmasked.
 */
function isOn(arg: unknown): boolean {
  if (arg === undefined) return true;
  const o = arg as { Boolean?: { boolval?: boolean }; Integer?: { ival?: number } };
  if (o.Boolean) return o.Boolean.boolval === true;
  if (o.Integer) return o.Integer.ival === 1;
  return /^(t|tr|tru|true|y|ye|yes|on|1)$/i.test(str(arg) ?? '');
}

function withCtes(w: Obj | undefined, scope: Scope, depth: number): Scope {
  if (!w) return scope;
  const ctes = new Map(scope.ctes);
  for (const c of (w.ctes as unknown[]) ?? []) {
    const cte = (c as { CommonTableExpr?: Obj }).CommonTableExpr;
    if (!cte) continue;
    const name = String(cte.ctename ?? '');
    const rename = strings(cte.aliascolnames);
    let items: readonly Item[] = [];
    // A recursive CTE reads its own output: widen until nothing new appears.
    const rounds = w.recursive ? 4 : 1;
    for (let i = 0; i < rounds; i++) {
      if (w.recursive) ctes.set(name, items);
      const q = queryItems(cte.ctequery, { ...scope, ctes }, depth + 1);
      const next = renamed(q ?? [{ t: 'col', name: undefined, refs: [OPAQUE] }], rename);
      const same = JSON.stringify(next) === JSON.stringify(items);
      items = next;
      if (same) break;
    }
    ctes.set(name, items);
  }
  return { ...scope, ctes };
}

function renamed(items: readonly Item[], names: readonly string[]): readonly Item[] {
  if (names.length === 0) return items;
  const flat = flatten(items);
  if (!flat) {
    // `*` of unknown width renamed by position: the names cannot be placed, so every name gets
    // everything.
    const all = allRefs(items);
    return [...names.map((n): Item => ({ t: 'col', name: n, refs: all })), ...items];
  }
  return flat.map((it, i) => ({ ...it, name: names[i] ?? it.name }));
}

/** Items with every `*` over known items expanded; undefined if a `*` remains unknown. */
function flatten(items: readonly Item[]): Extract<Item, { t: 'col' }>[] | undefined {
  const out: Extract<Item, { t: 'col' }>[] = [];
  for (const it of items) {
    if (it.t === 'col') out.push(it);
    else if (it.of.t === 'items') {
      const inner = flatten(it.of.items);
      if (!inner) return undefined;
      out.push(...inner);
    } else return undefined;
  }
  return out;
}

/** Every reference any column of these items may carry. */
export function allRefs(items: readonly Item[]): Ref[] {
  const out: Ref[] = [];
  for (const it of items) {
    if (it.t === 'col') out.push(...it.refs);
    else if (it.of.t === 'items') out.push(...allRefs(it.of.items));
    else if (it.of.t === 'rel') out.push({ t: 'col', schema: it.of.schema, table: it.of.table, column: '*' });
    else out.push(...it.of.refs, OPAQUE);
  }
  return out;
}

function selectItems(node: Obj, outer: Scope, depth: number): readonly Item[] {
  if (depth > MAX_DEPTH) throw new Error('statement nested too deeply');
  const scope0 = withCtes(node.withClause as Obj | undefined, { ...outer, outer }, depth);
  if (node.op && node.op !== 'SETOP_NONE') {
    const l = selectItems(node.larg as Obj, scope0, depth + 1);
    const r = selectItems(node.rarg as Obj, scope0, depth + 1);
    return mergePositional(l, r);
  }
  if (Array.isArray(node.valuesLists) && node.valuesLists.length > 0) {
    let rows: readonly Item[] | undefined;
    for (const row of node.valuesLists) {
      const exprs = ((row as { List?: { items?: unknown[] } }).List?.items ?? []) as unknown[];
      const items = exprs.map(
        (e, i): Item => ({ t: 'col', name: `column${i + 1}`, refs: exprRefs(e, scope0, depth + 1) }),
      );
      rows = rows ? mergePositional(rows, items) : items;
    }
    return rows ?? [];
  }
  const sources: Source[] = [];
  // Each item sees the ones before it (LATERAL); seeing them when not LATERAL only widens.
  for (const f of (node.fromClause as unknown[]) ?? [])
    sources.push(...fromSources(f, { ...scope0, sources: [...sources] }, depth + 1));
  return targetItems((node.targetList as unknown[]) ?? [], { ...scope0, sources }, depth + 1);
}

function mergePositional(a: readonly Item[], b: readonly Item[]): readonly Item[] {
  const fa = flatten(a);
  const fb = flatten(b);
  if (!fa || !fb || fa.length !== fb.length) {
    // Widths unknown: every column may carry anything from either side.
    const all = [...allRefs(a), ...allRefs(b)];
    return a.map(
      (it): Item => (it.t === 'col' ? { ...it, refs: all } : { t: 'star', of: { t: 'opaque', refs: all } }),
    );
  }
  return fa.map((it, i) => ({ t: 'col', name: it.name, refs: [...it.refs, ...fb[i]!.refs] }));
}

function targetItems(targets: readonly unknown[], scope: Scope, depth: number): readonly Item[] {
  const out: Item[] = [];
  for (const t of targets) {
    const rt = (t as { ResTarget?: Obj }).ResTarget;
    if (!rt) continue;
    const val = rt.val as Obj | undefined;
    const cref = (val as { ColumnRef?: { fields?: unknown[] } } | undefined)?.ColumnRef;
    const fields = cref?.fields ?? [];
    const last = fields[fields.length - 1] as Obj | undefined;
    if (cref && last && 'A_Star' in last) {
      const qualifier = strings(fields.slice(0, -1));
      const chosen = qualifier.length === 0 ? scope.sources : findSources(scope, qualifier);
      if (chosen.length === 0) out.push({ t: 'star', of: { t: 'opaque', refs: [OPAQUE] } });
      for (const s of chosen) out.push({ t: 'star', of: { t: 'items', items: s.items } });
      continue;
    }
    out.push({
      t: 'col',
      name: (rt.name as string | undefined) ?? outputName(val),
      refs: exprRefs(val, scope, depth),
    });
  }
  return out;
}

/** The name PostgreSQL gives an unaliased output column (FigureColname, roughly). */
function outputName(val: Obj | undefined): string | undefined {
  const o = only(val);
  if (!o) return undefined;
  const [type, node] = o;
  if (type === 'ColumnRef') {
    const f = strings(node.fields);
    return f[f.length - 1];
  }
  if (type === 'FuncCall') {
    const f = strings(node.funcname);
    return f[f.length - 1];
  }
  if (type === 'TypeCast') return outputName(node.arg as Obj) ?? undefined;
  return undefined;
}

function rangeVarSource(rv: Obj, scope: Scope): Source {
  const schema = rv.schemaname as string | undefined;
  const table = String(rv.relname ?? '');
  const alias = (rv.alias as { aliasname?: string } | undefined)?.aliasname ?? table;
  const rename = strings((rv.alias as { colnames?: unknown[] } | undefined)?.colnames);
  if (!schema) {
    for (let s: Scope | undefined = scope; s; s = s.outer) {
      const cte = s.ctes.get(table);
      if (cte) return { alias, items: renamed(cte, rename) };
    }
  }
  const star: Item = { t: 'star', of: { t: 'rel', schema, table } };
  if (rename.length === 0) return { alias, items: [star] };
  // Renamed columns of a table: the first ones by position, which only the catalog knows; every
  // new name may be any of the table's columns.
  const any: Ref = { t: 'col', schema, table, column: '*' };
  return { alias, items: [...rename.map((n): Item => ({ t: 'col', name: n, refs: [any] })), star] };
}

function fromSources(node: unknown, scope: Scope, depth: number): Source[] {
  const o = only(node);
  if (!o) return [];
  const [type, n] = o;
  switch (type) {
    case 'RangeVar':
      return [rangeVarSource(n, scope)];
    case 'RangeSubselect': {
      const items = queryItems(n.subquery, scope, depth + 1) ?? [
        { t: 'star', of: { t: 'opaque', refs: [OPAQUE] } },
      ];
      const alias = n.alias as { aliasname?: string; colnames?: unknown[] } | undefined;
      return [{ alias: alias?.aliasname, items: renamed(items, strings(alias?.colnames)) }];
    }
    case 'JoinExpr': {
      const left = fromSources(n.larg, scope, depth + 1);
      const right = fromSources(n.rarg, { ...scope, sources: [...scope.sources, ...left] }, depth + 1);
      const inner = [...left, ...right];
      const alias = n.alias as { aliasname?: string; colnames?: unknown[] } | undefined;
      if (!alias?.aliasname) return inner;
      const items = inner.flatMap((s) => s.items);
      return [...inner, { alias: alias.aliasname, items: renamed(items, strings(alias.colnames)) }];
    }
    case 'RangeTableSample':
      return fromSources(n.relation, scope, depth);
    default: {
      // Functions in FROM (RangeFunction), JSON_TABLE, XMLTABLE: their columns come from their
      // arguments, and from whatever a function that is not a known built-in reads.
      const refs = exprRefs(n, scope, depth + 1);
      const alias = n.alias as { aliasname?: string; colnames?: unknown[] } | undefined;
      const names = [
        ...strings(alias?.colnames),
        ...((n.coldeflist as unknown[]) ?? []).map((c) =>
          String((c as { ColumnDef?: { colname?: string } }).ColumnDef?.colname ?? ''),
        ),
      ];
      const items: Item[] = names.map((name) => ({ t: 'col', name, refs }));
      items.push({ t: 'star', of: { t: 'opaque', refs } });
      return [{ alias: alias?.aliasname, items }];
    }
  }
}

function findSources(scope: Scope, qualifier: readonly string[]): Source[] {
  const name = qualifier[qualifier.length - 1]!;
  for (let s: Scope | undefined = scope; s; s = s.outer) {
    const found = s.sources.filter((src) => src.alias === name);
    if (found.length > 0) return found;
  }
  return [];
}

/** References a column name may stand for in one source. */
function refsInSource(src: Source, column: string): Ref[] {
  const out: Ref[] = [];
  for (const it of src.items) {
    if (it.t === 'col') {
      if (it.name === column) out.push(...it.refs);
    } else if (it.of.t === 'rel') out.push({ t: 'col', schema: it.of.schema, table: it.of.table, column });
    else if (it.of.t === 'items') out.push(...refsInSource({ alias: undefined, items: it.of.items }, column));
    else out.push({ t: 'name', column }, ...it.of.refs);
  }
  return out;
}

function columnRefs(fields: readonly unknown[], scope: Scope): Ref[] {
  const names = strings(fields);
  const last = fields[fields.length - 1] as Obj | undefined;
  if (last && 'A_Star' in last) {
    const sources = names.length > 1 ? findSources(scope, names.slice(0, -1)) : scope.sources;
    return sources.length > 0 ? sources.flatMap((s) => allRefs(s.items)) : [OPAQUE];
  }
  const column = names[names.length - 1]!;
  if (names.length > 1) {
    const sources = findSources(scope, names.slice(0, -1));
    if (sources.length > 0) return sources.flatMap((s) => refsInSource(s, column));
    // `t.c` naming no source: a composite field of a column (`(u).email`) — or something unseen.
    return [
      { t: 'name', column },
      { t: 'name', column: names[0]! },
    ];
  }
  const out: Ref[] = [];
  for (let s: Scope | undefined = scope; s; s = s.outer) {
    for (const src of s.sources) {
      // A bare source name is a whole-row reference (`to_json(u)`).
      if (src.alias === column) out.push(...allRefs(src.items));
      out.push(...refsInSource(src, column));
    }
  }
  if (out.length === 0) out.push({ t: 'name', column });
  return out;
}

/** Every reference an expression's value may draw on. */
function exprRefs(node: unknown, scope: Scope, depth: number): Ref[] {
  const out: Ref[] = [];
  const walk = (n: unknown, d: number): void => {
    if (d > MAX_DEPTH * 4) throw new Error('expression nested too deeply');
    if (Array.isArray(n)) {
      for (const x of n) walk(x, d + 1);
      return;
    }
    if (!n || typeof n !== 'object') return;
    const o = n as Obj;
    if (o.ColumnRef) {
      out.push(...columnRefs(((o.ColumnRef as Obj).fields as unknown[]) ?? [], scope));
      return;
    }
    if (o.SubLink) {
      const sl = o.SubLink as Obj;
      const items = queryItems(sl.subselect, { ...scope, sources: [], outer: scope }, depth + 1);
      out.push(...(items ? allRefs(items) : [OPAQUE]));
      walk(sl.testexpr, d + 1);
      return;
    }
    if (o.FuncCall) {
      const fc = o.FuncCall as Obj;
      const name = strings(fc.funcname).join('.');
      if (!knownHarmless(name)) out.push(OPAQUE);
      walk(fc.args, d + 1);
      walk(fc.agg_order, d + 1);
      walk(fc.agg_filter, d + 1);
      walk(fc.over, d + 1);
      return;
    }
    for (const v of Object.values(o)) walk(v, d + 1);
  };
  walk(node, 0);
  return out;
}
