/**
 * What a view's columns carry, for masking.
 * https://mariadb.com/kb/en/information-schema-views-table/
 * https://mariadb.com/kb/en/information-schema-tables-table/
 *
 * The server names a view, not the tables under it, as the source of a view's column, so rules on
 * the underlying columns would not see `SELECT cn FROM v`. Before a statement runs, the relations
 * its text could name are looked up on a side connection to the target (with the connection's
 * held credential) and kept for the session, so the column definitions can be judged as they
 * stream past without waiting. A view column is masked:
 *  - precisely, when the view is one SELECT list of plain column references (the form the server
 *    stores a simple view in): as the referenced column of any relation the view names would be;
 *  - otherwise as strictly as any masked column any relation under it could hold (recursively
 *    through views of views).
 * A relation that was not looked up (the lookup failed, or was cut short), or a view whose
 * definition the credential cannot read, counts as unknown: its columns get the strictest rule.
 */
import type { SessionMasker } from '../../core/masking/masker.ts';
import { type MaskSpec, STRATEGY_RANK } from '../../core/masking/strategy.ts';
import { Command, Header, UTF8MB4_GENERAL_CI } from './constants.ts';
import { lexStatements, type Token } from './lexer.ts';
import { Cursor, MysqlProtocolError, PacketReader, packet } from './packets.ts';
import { connectUpstream, type UpstreamSession, type UpstreamTarget } from './upstream.ts';

/** Where a result column comes from, as far as masking is concerned. */
export type Source =
  | { readonly kind: 'table' }
  | { readonly kind: 'view'; readonly spec: MaskSpec | undefined }
  | { readonly kind: 'unknown' };

export interface SourceLookup {
  source(schema: string, table: string, column: string): Source;
}

type Entry =
  | { readonly type: 'table'; readonly schema: string; readonly name: string }
  | { readonly type: 'view'; readonly schema: string; readonly name: string; readonly definition: string }
  | { readonly type: 'opaque'; readonly schema: string; readonly name: string };

interface Parsed {
  /** Every identifier and word of the definition, lower case. */
  readonly names: ReadonlySet<string>;
  /** View column (lower case) → the column it references, when the view maps it plainly. */
  readonly plain: ReadonlyMap<string, string>;
  /** Every column the view has (lower case), when its SELECT list could be read. */
  readonly columns: ReadonlySet<string> | undefined;
}

/** How long one lookup may take before its names are left unknown. */
const QUERY_TIMEOUT_MS = 5_000;
/** Names sent in one lookup; the rest stay unknown (and masked as such if they turn up). */
const MAX_NAMES = 256;
/** Rounds of following views into the views they name. */
const MAX_DEPTH = 8;
/** Names kept before the cache starts over. */
const MAX_CACHED = 20_000;
/** Other sessions' DDL is not seen here: what was looked up is trusted this long. */
const TRUST_MS = 30_000;
/** Relation types that hold their own values. */
const STORED = new Set(['BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE', 'SYSTEM VIEW', 'TEMPORARY']);

const IDENTIFIER = /`((?:[^`]|``)+)`|[A-Za-z_$][A-Za-z0-9_$]*/g;

/**
 * Every word and backquoted name in `text`, lower case: any of them could name a relation. String
 * literals and comments are left out (they name nothing); text the lexer cannot read is taken whole.
 */
export function namesIn(text: string): string[] {
  const out = new Set<string>();
  const statements = lexStatements(text);
  if (statements.some((s) => s.problem)) {
    for (const m of text.matchAll(IDENTIFIER))
      out.add((m[1] !== undefined ? m[1].replaceAll('``', '`') : m[0]).toLowerCase());
    return [...out];
  }
  for (const st of statements)
    for (const t of st.tokens) {
      // `2024_sales` is a name too, though it lexes as a number.
      const n = t.type === 'number' && /[A-Za-z_$]/.test(t.text) ? t.text.toLowerCase() : unquote(t);
      if (n !== undefined) out.add(n);
    }
  return [...out];
}

function stricter(a: MaskSpec | undefined, b: MaskSpec | undefined): MaskSpec | undefined {
  if (!b) return a;
  return !a || STRATEGY_RANK[b.strategy] > STRATEGY_RANK[a.strategy] ? b : a;
}

function unquote(t: Token): string | undefined {
  if (t.type === 'ident') return t.text.slice(1, -1).replaceAll('``', '`').toLowerCase();
  if (t.type === 'word') return t.text.toLowerCase();
  return undefined;
}

/**
 * The view columns a definition maps plainly: `select a.b.c AS x, ... from ...` with one SELECT
 * (no subquery, union or table function that could feed a column under another name).
 */
export function parseDefinition(definition: string): Parsed {
  const names = new Set(namesIn(definition));
  const plain = new Map<string, string>();
  const statements = lexStatements(definition);
  const tokens = statements.length === 1 && !statements[0]!.problem ? statements[0]!.tokens : [];
  const words = tokens.filter((t) => t.type === 'word').map((t) => t.text.toLowerCase());
  if (
    words[0] !== 'select' ||
    words.filter((w) => w === 'select').length !== 1 ||
    words.includes('json_table') ||
    words.includes('union')
  )
    return { names, plain, columns: undefined };
  let depth = 0;
  let item: Token[] = [];
  const items: Token[][] = [];
  for (const t of tokens.slice(1)) {
    if (t.type === 'punct' && t.text === '(') depth++;
    if (t.type === 'punct' && t.text === ')') depth--;
    if (depth === 0 && t.type === 'word' && t.text.toLowerCase() === 'from') break;
    if (depth === 0 && t.type === 'punct' && t.text === ',') {
      items.push(item);
      item = [];
    } else item.push(t);
  }
  items.push(item);
  const columns = new Set<string>();
  for (const it of items) {
    const last = it[it.length - 1];
    if (it.length < 3 || it[it.length - 2]!.text.toLowerCase() !== 'as' || last?.type !== 'ident')
      return { names, plain: new Map(), columns: undefined };
    columns.add(unquote(last)!);
  }
  for (const it of items) {
    // ref [. ref [. ref]] AS alias
    const n = it.length;
    if (n < 3 || n > 7 || n % 2 === 0) continue;
    if (it[n - 2]!.type !== 'word' || it[n - 2]!.text.toLowerCase() !== 'as') continue;
    const alias = unquote(it[n - 1]!);
    const parts: string[] = [];
    let ok = alias !== undefined;
    for (let i = 0; i < n - 2 && ok; i++) {
      if (i % 2 === 1) ok = it[i]!.type === 'punct' && it[i]!.text === '.';
      else {
        const p = unquote(it[i]!);
        ok = p !== undefined && (it[i]!.type === 'ident' || /^[a-z_$][a-z0-9_$]*$/.test(p));
        if (p !== undefined) parts.push(p);
      }
    }
    if (ok && alias !== undefined && !plain.has(alias)) plain.set(alias, parts[parts.length - 1]!);
  }
  return { names, plain, columns };
}

/** A side connection that answers text queries, one at a time. */
class SideConnection {
  readonly #up: UpstreamSession;
  readonly #reader = new PacketReader(64 * 1024 * 1024);
  #waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;
  #queue: Buffer[] = [];

  constructor(up: UpstreamSession) {
    this.#up = up;
    const s = up.socket;
    s.on('data', (chunk: Buffer) => {
      this.#reader.push(chunk);
      try {
        for (let p = this.#reader.next(); p; p = this.#reader.next()) this.#queue.push(p.payload);
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      this.#wake();
    });
    s.on('error', (err) => this.#fail(err));
    s.on('close', () => this.#fail(new Error('the target closed the catalog connection')));
    s.resume();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.reject(this.#failure);
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.resolve();
  }

  async #next(): Promise<Buffer> {
    while (this.#queue.length === 0) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve, reject) => {
        this.#waiting = { resolve, reject };
      });
    }
    return this.#queue.shift()!;
  }

  get alive(): boolean {
    return !this.#failure;
  }

  /** The rows of a text query, every value a string or null. */
  async query(sql: string): Promise<(string | null)[][]> {
    if (this.#failure) throw this.#failure;
    // A catalog that does not answer must not hold the caller's statement back for long.
    const timer = setTimeout(() => {
      this.#fail(new Error('the catalog query took too long'));
      this.close();
    }, QUERY_TIMEOUT_MS);
    try {
      return await this.#query(sql);
    } finally {
      clearTimeout(timer);
    }
  }

  async #query(sql: string): Promise<(string | null)[][]> {
    this.#up.socket.write(packet(Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql, 'utf8')]), 0));
    const first = await this.#next();
    if (first[0] === Header.ERR) throw new Error('the catalog query failed');
    if (first[0] === Header.OK) return [];
    const count = new Cursor(first, 'a column count').lenenc() ?? 0;
    for (let i = 0; i < count; i++) await this.#next();
    const isEof = (p: Buffer) => p[0] === Header.EOF && p.length < 9;
    if (!isEof(await this.#next())) throw new MysqlProtocolError('the catalog answer has no column end');
    const rows: (string | null)[][] = [];
    for (;;) {
      const p = await this.#next();
      if (isEof(p)) return rows;
      if (p[0] === Header.ERR) throw new Error('the catalog query failed');
      const c = new Cursor(p, 'a catalog row');
      const row: (string | null)[] = [];
      for (let i = 0; i < count; i++) {
        const v = c.lenencBytes();
        row.push(v === null ? null : v.toString('utf8'));
      }
      rows.push(row);
    }
  }

  close(): void {
    this.#up.socket.destroy();
  }
}

function literal(name: string): string {
  // Hex keeps any name (quotes, backslashes, any sql_mode) out of the SQL text's syntax.
  return `CONVERT(X'${Buffer.from(name, 'utf8').toString('hex')}' USING utf8mb4)`;
}

/** Per session: the relations looked up so far, and how to judge a view's columns. */
export class ViewCatalog implements SourceLookup {
  readonly #masker: SessionMasker;
  readonly #target: UpstreamTarget;
  #side: SideConnection | undefined;
  /** Names (lower case) looked up: absent from `#entries` means no view of that name. */
  #looked = new Set<string>();
  /** By name (lower case): every relation of that name, in any schema. */
  #entries = new Map<string, Entry[]>();
  #parsed = new Map<Entry, Parsed>();
  #wide = new Map<Entry, MaskSpec | null>();
  #since = 0;
  #closed = false;

  constructor(masker: SessionMasker, target: UpstreamTarget) {
    this.#masker = masker;
    this.#target = target;
  }

  /** Forgets everything (after DDL, which may have made or changed views). */
  clear(): void {
    this.#looked = new Set();
    this.#entries = new Map();
    this.#parsed = new Map();
    this.#wide = new Map();
  }

  /**
   * Looks up the names in `texts` not seen yet. Never throws: what could not be looked up stays
   * unknown, and is masked as such.
   */
  async prepare(texts: readonly string[], tables: readonly string[], now = Date.now()): Promise<void> {
    if (now - this.#since > TRUST_MS || this.#looked.size > MAX_CACHED) {
      this.clear();
      this.#since = now;
    }
    // A relation the statement reads that did not exist when looked up may exist now (made by
    // another session, as a view): it is looked up again rather than trusted as no view.
    for (const t of tables) {
      const n = (t.split('.').pop() ?? '').replaceAll('`', '').toLowerCase();
      if (this.#looked.has(n) && !this.#entries.has(n)) this.#looked.delete(n);
    }
    let wanted = texts.flatMap(namesIn).filter((n) => !this.#looked.has(n));
    try {
      for (let round = 0; wanted.length > 0 && round < MAX_DEPTH; round++) {
        const unique = [...new Set(wanted)];
        const batch = unique.slice(0, MAX_NAMES);
        const found = await this.#lookup(batch);
        for (const n of batch) this.#looked.add(n);
        const next: string[] = [];
        for (const e of found) {
          const key = e.name.toLowerCase();
          const list = this.#entries.get(key) ?? [];
          list.push(e);
          this.#entries.set(key, list);
          if (e.type === 'view') next.push(...namesIn(e.definition));
        }
        wanted = [...unique.slice(MAX_NAMES), ...next].filter((n) => !this.#looked.has(n));
      }
    } catch {
      // Fail closed: the names stay unknown. The next statement tries a new connection.
      this.#side?.close();
      this.#side = undefined;
    }
  }

  async #lookup(names: readonly string[]): Promise<Entry[]> {
    if (!this.#side?.alive) {
      this.#side?.close();
      this.#side = undefined;
      if (this.#closed) throw new Error('the session is closed');
      const up = await connectUpstream(
        { ...this.#target, timeoutMs: 5_000 },
        { capabilities: 0, collation: UTF8MB4_GENERAL_CI },
      );
      if (this.#closed) {
        up.socket.destroy();
        throw new Error('the session is closed');
      }
      this.#side = new SideConnection(up);
    }
    const rows = await this.#side.query(
      'SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_TYPE, v.VIEW_DEFINITION' +
        ' FROM information_schema.TABLES t LEFT JOIN information_schema.VIEWS v' +
        ' ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME' +
        ` WHERE t.TABLE_NAME IN (${names.map(literal).join(',')})`,
    );
    return rows.map(([schema, name, type, definition]): Entry => {
      const s = schema ?? '';
      const n = name ?? '';
      if (type != null && STORED.has(type)) return { type: 'table', schema: s, name: n };
      if (definition) return { type: 'view', schema: s, name: n, definition };
      return { type: 'opaque', schema: s, name: n };
    });
  }

  source(schema: string, table: string, column: string): Source {
    const key = table.toLowerCase();
    if (!this.#looked.has(key)) return { kind: 'unknown' };
    const s = schema.toLowerCase();
    // A computed column of a view comes without a schema: any relation of the name may be meant.
    const here = (this.#entries.get(key) ?? []).filter((e) => !s || e.schema.toLowerCase() === s);
    if (here.every((e) => e.type === 'table')) return { kind: 'table' };
    let spec: MaskSpec | undefined;
    for (const e of here) spec = stricter(spec, this.#columnSpec(e, column.toLowerCase(), 0));
    return { kind: 'view', spec };
  }

  #parse(e: Entry & { type: 'view' }): Parsed {
    let p = this.#parsed.get(e);
    if (!p) {
      p = parseDefinition(e.definition);
      this.#parsed.set(e, p);
    }
    return p;
  }

  /** The relations a view names, or undefined when one of its names was never looked up. */
  #under(p: Parsed): Entry[] | undefined {
    const out: Entry[] = [];
    for (const n of p.names) {
      if (!this.#looked.has(n)) return undefined;
      out.push(...(this.#entries.get(n) ?? []));
    }
    return out;
  }

  #columnSpec(e: Entry, column: string, depth: number): MaskSpec | undefined {
    const strictest = this.#masker.strictestColumn;
    if (e.type === 'table')
      return this.#masker.column({ schema: e.schema, table: e.name, column, output: column });
    if (e.type === 'opaque' || depth > MAX_DEPTH) return strictest;
    const p = this.#parse(e);
    const ref = p.plain.get(column);
    if (ref === undefined) return this.#wideSpec(e, depth);
    const under = this.#under(p);
    if (!under) return strictest;
    let spec: MaskSpec | undefined;
    for (const u of under) {
      // A view with no column of that name cannot be where it comes from.
      if (u.type === 'view' && this.#parse(u).columns?.has(ref) === false) continue;
      spec = stricter(spec, this.#columnSpec(u, ref, depth + 1));
    }
    return spec;
  }

  /** As strictly as any masked column any relation under the view could hold. */
  #wideSpec(e: Entry, depth: number): MaskSpec | undefined {
    const strictest = this.#masker.strictestColumn;
    if (e.type === 'opaque' || depth > MAX_DEPTH) return strictest;
    if (e.type === 'table') return this.#masker.anyColumnOf(e.schema, e.name);
    const hit = this.#wide.get(e);
    if (hit !== undefined) return hit ?? undefined;
    const p = this.#parse(e);
    const under = this.#under(p);
    let spec: MaskSpec | undefined;
    if (!under) spec = strictest;
    else {
      for (const n of p.names) spec = stricter(spec, this.#masker.columnByName(n));
      for (const u of under) spec = stricter(spec, this.#wideSpec(u, depth + 1));
    }
    this.#wide.set(e, spec ?? null);
    return spec;
  }

  close(): void {
    this.#closed = true;
    this.#side?.close();
    this.#side = undefined;
  }
}
