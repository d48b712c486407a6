/**
 * Column rules applied to traced result columns (lineage.ts): which mask, if any, each output
 * column of a statement gets, given what the catalog says about the relations it names.
 *
 * How a reference is judged, always taking the strictest mask that may apply:
 *  - a column of a table: the column rules, as for a plain column (an unqualified table name is
 *    judged as the same name in every schema, since the caller may change its search_path);
 *  - a column of a view or materialized view: its own rules, and whatever the columns it is
 *    defined from get (the definition, from pg_get_viewdef, traced the same way);
 *  - a column only known by name, or of a relation the catalog does not show: the rules naming
 *    a column of that name in any table;
 *  - a value Airlock cannot see into (a function that is not a known built-in, a cursor it did
 *    not see declared): the strictest column rule of the session. This is the conservative
 *    choice: such values are masked, never refused, so tools keep working.
 */
import type { SessionMasker } from '../../core/masking/masker.ts';
import { type MaskSpec, STRATEGY_RANK } from '../../core/masking/strategy.ts';
import type { RelationInfo } from './catalog.ts';
import { allRefs, type Item, lineageOf, type Ref } from './lineage.ts';

export interface RelationLookup {
  /** Undefined: not known yet (the caller looks it up and asks again). */
  relations(schema: string | undefined, table: string): readonly RelationInfo[] | undefined;
}

export interface RelationName {
  readonly schema?: string | undefined;
  readonly table: string;
}

const MAX_VIEW_DEPTH = 8;
const definitions = new Map<string, readonly Item[] | null>();

function stricter(a: MaskSpec | undefined, b: MaskSpec | undefined): MaskSpec | undefined {
  if (!b) return a;
  return !a || STRATEGY_RANK[b.strategy] > STRATEGY_RANK[a.strategy] ? b : a;
}

function viewItems(definition: string): readonly Item[] | null {
  let items = definitions.get(definition);
  if (items === undefined) {
    items = lineageOf(definition)?.[0]?.items ?? null;
    if (definitions.size > 1000) definitions.clear();
    definitions.set(definition, items);
  }
  return items;
}

export class ColumnMasks {
  readonly #masker: SessionMasker;
  readonly #lookup: RelationLookup;
  /** Relations asked about that were not known; the caller looks them up. */
  readonly missing = new Map<string, RelationName>();

  constructor(masker: SessionMasker, lookup: RelationLookup) {
    this.#masker = masker;
    this.#lookup = lookup;
  }

  /** The mask for a value drawn on these references. */
  refs(refs: readonly Ref[], depth = 0): MaskSpec | undefined {
    let spec: MaskSpec | undefined;
    for (const r of refs) spec = stricter(spec, this.#ref(r, depth));
    return spec;
  }

  /** A column of a named relation (also the way a view's column from RowDescription is judged). */
  column(schema: string | undefined, table: string, column: string, depth = 0): MaskSpec | undefined {
    const m = this.#masker;
    if (depth > MAX_VIEW_DEPTH) return m.strictestColumn;
    const found = this.#lookup.relations(schema, table);
    if (found === undefined) {
      this.missing.set(`${schema ?? ''}\u0000${table}`, { schema, table });
      // Judged again once known; if it never is, this conservative answer stands.
      return m.strictestColumn;
    }
    if (found.length === 0) return column === '*' ? m.strictestColumn : m.columnByName(column);
    let spec: MaskSpec | undefined;
    for (const rel of found) {
      const names = column === '*' ? rel.columns : [column];
      for (const c of names) {
        spec = stricter(spec, m.column({ schema: rel.schema, table: rel.table, column: c, output: c }));
        if (rel.kind === 'f') spec = stricter(spec, m.columnByName(c));
        if (rel.definition === undefined) continue;
        const items = viewItems(rel.definition);
        const item = items?.find((it) => it.t === 'col' && it.name === c);
        spec = stricter(
          spec,
          item?.t === 'col'
            ? this.refs(item.refs, depth + 1)
            : items
              ? this.refs(allRefs(items), depth + 1)
              : m.strictestColumn,
        );
      }
    }
    return spec;
  }

  #ref(r: Ref, depth: number): MaskSpec | undefined {
    switch (r.t) {
      case 'opaque':
        return this.#masker.strictestColumn;
      case 'name':
        return this.#masker.columnByName(r.column);
      case 'col':
        return this.column(r.schema, r.table, r.column, depth);
    }
  }

  /**
   * Masks for `n` output columns, by position where the items say exactly which column is which,
   * else by the names the target gave them (RowDescription), else (COPY: no names) every column
   * gets what any of them might carry.
   */
  outputs(
    items: readonly Item[] | undefined,
    n: number,
    names?: readonly string[],
  ): (MaskSpec | undefined)[] {
    if (!items) return new Array(n).fill(this.#masker.strictestColumn);
    const flat = this.#expand(items);
    if (flat && flat.length === n) return flat.map((refs) => this.refs(refs));
    if (names && names.length === n) return names.map((name) => this.refs(refsNamed(items, name)));
    return new Array(n).fill(this.refs(allRefs(items)));
  }

  /** One reference list per column, with `*` over relations expanded from the catalog. */
  #expand(items: readonly Item[]): Ref[][] | undefined {
    const out: Ref[][] = [];
    for (const it of items) {
      if (it.t === 'col') out.push([...it.refs]);
      else if (it.of.t === 'items') {
        const inner = this.#expand(it.of.items);
        if (!inner) return undefined;
        out.push(...inner);
      } else if (it.of.t === 'rel') {
        const found = this.#lookup.relations(it.of.schema, it.of.table);
        if (found === undefined) {
          this.missing.set(`${it.of.schema ?? ''}\u0000${it.of.table}`, {
            schema: it.of.schema,
            table: it.of.table,
          });
          return undefined;
        }
        // Same-named relations in several schemas: a column may be any of theirs at its place.
        const width = Math.max(0, ...found.map((r) => r.columns.length));
        if (found.length === 0 || found.some((r) => r.columns.length !== width)) return undefined;
        for (let i = 0; i < width; i++)
          out.push(
            found.map((r): Ref => ({ t: 'col', schema: r.schema, table: r.table, column: r.columns[i]! })),
          );
      } else return undefined;
    }
    return out;
  }
}

/** References an output column of this name may carry. */
function refsNamed(items: readonly Item[], name: string): Ref[] {
  const out: Ref[] = [];
  for (const it of items) {
    if (it.t === 'col') {
      if (it.name === name) out.push(...it.refs);
    } else if (it.of.t === 'rel')
      out.push({ t: 'col', schema: it.of.schema, table: it.of.table, column: name });
    else if (it.of.t === 'items') out.push(...refsNamed(it.of.items, name));
    else out.push({ t: 'name', column: name }, ...it.of.refs);
  }
  return out;
}
