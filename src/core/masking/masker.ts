/**
 * Masking for one session: the policy's masking rules narrowed to one connection and one
 * principal, answering two questions the protocol adapters ask about every result value —
 * does this column's value get replaced as a whole, and what does the text look like once the
 * content detectors have run over it.
 */
import type { Principal } from '../action.ts';
import { globMatch } from '../policy/evaluate.ts';
import { type DetectorName, detect } from './detectors.ts';
import { type JsonPath, jsonPathMatches, parseJsonPath, type ValuePath } from './json-path.ts';
import type { MaskingRule } from './schema.ts';
import { type MaskSpec, maskText, STRATEGY_RANK } from './strategy.ts';

/** Where a result column comes from (any part may be unknown) and what it is called. */
export interface ColumnRef {
  readonly schema?: string | undefined;
  readonly table?: string | undefined;
  readonly column?: string | undefined;
  /** The result column's own name (alias or expression name). */
  readonly output: string;
}

interface ColumnPattern {
  readonly parts: readonly string[];
  readonly spec: MaskSpec;
}

function stricter(a: MaskSpec | undefined, b: MaskSpec): MaskSpec {
  return !a || STRATEGY_RANK[b.strategy] > STRATEGY_RANK[a.strategy] ? b : a;
}

function matches(p: readonly string[], ref: ColumnRef): boolean {
  const col = p[p.length - 1]!;
  const wildcardPrefix = p.slice(0, -1).every((s) => s === '*');
  if (wildcardPrefix && globMatch(col, ref.output)) return true;
  if (ref.column === undefined || !globMatch(col, ref.column)) return false;
  if (p.length >= 2 && !globMatch(p[p.length - 2]!, ref.table ?? '')) return false;
  if (p.length === 3 && !globMatch(p[0]!, ref.schema ?? '')) return false;
  return true;
}

export class SessionMasker {
  readonly #columns: ColumnPattern[] = [];
  readonly #jsonPaths: { readonly path: JsonPath; readonly spec: MaskSpec }[] = [];
  readonly #detectors = new Map<DetectorName, MaskSpec>();
  readonly #detectorSet: ReadonlySet<DetectorName>;
  readonly #cache = new Map<string, MaskSpec | null>();

  constructor(rules: readonly MaskingRule[]) {
    for (const r of rules) {
      const salt = r.strategy === 'hash' ? r.salt?.reveal() : undefined;
      for (const c of r.columns)
        this.#columns.push({ parts: c.split('.'), spec: { strategy: r.strategy, salt, label: 'value' } });
      for (const p of r.jsonPaths ?? [])
        this.#jsonPaths.push({
          path: parseJsonPath(p),
          spec: { strategy: r.strategy, salt, label: 'value' },
        });
      for (const d of r.detectors)
        this.#detectors.set(d, stricter(this.#detectors.get(d), { strategy: r.strategy, salt, label: d }));
    }
    this.#detectorSet = new Set(this.#detectors.keys());
  }

  get hasColumns(): boolean {
    return this.#columns.length > 0;
  }

  get hasDetectors(): boolean {
    return this.#detectorSet.size > 0;
  }

  /** The mask for a whole column, or undefined when its values are only scanned. */
  column(ref: ColumnRef): MaskSpec | undefined {
    if (this.#columns.length === 0) return undefined;
    const key = `${ref.schema ?? ''}\u0000${ref.table ?? ''}\u0000${ref.column ?? ''}\u0000${ref.output}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    let spec: MaskSpec | undefined;
    for (const c of this.#columns) if (matches(c.parts, ref)) spec = stricter(spec, c.spec);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, spec ?? null);
    return spec;
  }

  get hasJsonPaths(): boolean {
    return this.#jsonPaths.length > 0;
  }

  /** The mask for the value at `path` in a JSON document, when a rule's json_paths names it. */
  jsonPath(path: ValuePath): MaskSpec | undefined {
    let spec: MaskSpec | undefined;
    for (const p of this.#jsonPaths) if (jsonPathMatches(p.path, path)) spec = stricter(spec, p.spec);
    return spec;
  }

  /**
   * The mask for a column known only by name (its table cannot be told): every column rule
   * whose column part matches, whatever table it names.
   */
  columnByName(column: string): MaskSpec | undefined {
    let spec: MaskSpec | undefined;
    for (const c of this.#columns)
      if (globMatch(c.parts[c.parts.length - 1]!, column)) spec = stricter(spec, c.spec);
    return spec;
  }

  /**
   * The strictest rule that names this table (or any table, by a glob), for a value that may be
   * drawn from any of its columns. Rules on a bare column name are left to columnByName.
   */
  anyColumnOf(schema: string, table: string): MaskSpec | undefined {
    let spec: MaskSpec | undefined;
    for (const c of this.#columns) {
      const p = c.parts;
      if (p.length < 2 || !globMatch(p[p.length - 2]!, table)) continue;
      if (p.length === 3 && !globMatch(p[0]!, schema)) continue;
      spec = stricter(spec, c.spec);
    }
    return spec;
  }

  /** The strictest column mask, for values whose source cannot be told at all. */
  get strictestColumn(): MaskSpec | undefined {
    let spec: MaskSpec | undefined;
    for (const c of this.#columns) spec = stricter(spec, c.spec);
    return spec;
  }

  mask(value: string, spec: MaskSpec): string {
    return maskText(value, spec);
  }

  /** The text with every detected value masked; the same string when nothing was found. */
  scan(text: string): string {
    if (this.#detectorSet.size === 0) return text;
    const found = detect(text, this.#detectorSet);
    if (found.length === 0) return text;
    let out = '';
    let at = 0;
    for (const f of found) {
      out += text.slice(at, f.start) + maskText(text.slice(f.start, f.end), this.#detectors.get(f.detector)!);
      at = f.end;
    }
    return out + text.slice(at);
  }
}

/** The rules that apply to this connection and principal, as a SessionMasker; undefined if none. */
export function maskerFor(
  rules: readonly MaskingRule[] | undefined,
  connection: string,
  principal: Pick<Principal, 'name' | 'groups'>,
): SessionMasker | undefined {
  if (!rules || rules.length === 0) return undefined;
  const applicable = rules.filter(
    (r) =>
      (!r.connections || r.connections.some((c) => globMatch(c, connection))) &&
      !r.exempt.principals.some((p) => globMatch(p, principal.name)) &&
      !r.exempt.groups.some((g) => principal.groups.includes(g)),
  );
  return applicable.length > 0 ? new SessionMasker(applicable) : undefined;
}
