/**
 * What the target's catalog says, read on a side connection with the credential Airlock holds:
 * which table and column a result column comes from (RowDescription names them only by table
 * OID and attribute number), and how volatile a function is.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 * https://www.postgresql.org/docs/current/catalog-pg-proc.html
 *
 * One side connection per Airlock connection, shared by its sessions, opened on first use and
 * reopened after a failure. Answers are cached for a short time and dropped whenever a session
 * forwards a schema change, so a renamed column is seen by the next statement.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import pg from 'pg';
import type { ActionPart } from '../../core/action.ts';
import type { PolicyConnection } from '../../core/policy/policy.ts';
import { rowsFromPlan } from './blast-radius.ts';
import { type DryRun, dryRun } from './dry-run.ts';

export interface TableColumns {
  readonly schema: string;
  readonly table: string;
  /** pg_class.relkind: `r` table, `p` partitioned, `v` view, `m` materialized view, ... */
  readonly kind?: string | undefined;
  /** attnum → column name. */
  readonly columns: ReadonlyMap<number, string>;
}

/** A relation as found by name, for following masked columns through statements and views. */
export interface RelationInfo {
  readonly schema: string;
  readonly table: string;
  readonly kind: string;
  /** Column names in attribute order. */
  readonly columns: readonly string[];
  /** Type OIDs of the columns, in the same order (a domain's base type in its place). */
  readonly types?: readonly number[] | undefined;
  /** A view's or materialized view's defining query. */
  readonly definition?: string | undefined;
}

/** pg_proc.provolatile: immutable, stable or volatile. */
export type Volatility = 'i' | 's' | 'v';

const TTL_MS = 60_000;
/** Shorter for functions: a function replaced outside Airlock is judged anew within this time. */
const FUNCTION_TTL_MS = 10_000;
const MAX_ENTRIES = 20_000;

type PostgresConnection = Extract<PolicyConnection, { type: 'postgres' }>;

interface Cached<T> {
  readonly value: T;
  readonly at: number;
}

export class Catalog {
  readonly #connection: PostgresConnection;
  readonly #baseDir: string;
  #client: Promise<pg.Client> | undefined;
  #tables = new Map<number, Cached<TableColumns | null>>();
  #functions = new Map<string, Cached<Volatility | null>>();
  #relations = new Map<string, Cached<readonly RelationInfo[]>>();
  #queryTypes = new Map<string, Cached<readonly number[] | null>>();
  #closed = false;
  #explainClient: pg.Client | undefined;
  #explainConnected = false;
  #explaining: Promise<unknown> = Promise.resolve();

  constructor(connection: PostgresConnection, baseDir: string) {
    this.#connection = connection;
    this.#baseDir = baseDir;
  }

  /** Forget everything (a schema change was forwarded). */
  invalidate(): void {
    this.#tables.clear();
    this.#functions.clear();
    this.#relations.clear();
    this.#queryTypes.clear();
  }

  /**
   * The cached output column types of a query: type OIDs, null (they could not be learned), or
   * undefined (ask queryTypes()).
   */
  cachedQueryTypes(query: string): readonly number[] | null | undefined {
    const c = this.#queryTypes.get(query);
    if (!c || Date.now() - c.at > TTL_MS) return undefined;
    return c.value;
  }

  /**
   * Learns the output column types of a query (binary COPY does not say them) without running
   * it: the query becomes a temporary view in a transaction that is always rolled back, and the
   * view's columns are read from pg_attribute. Sent as one extended-protocol statement, so the
   * text cannot carry a second one. Queries a view cannot hold (INSERT ... RETURNING, a temporary
   * table of the caller's own session) get null.
   */
  async queryTypes(query: string): Promise<void> {
    if (this.cachedQueryTypes(query) !== undefined) return;
    const types = await this.#onReviewClient(async (client): Promise<number[] | null> => {
      await client.query('BEGIN');
      try {
        await client.query("SET LOCAL statement_timeout = '2s'");
        try {
          await client.query({
            text: `CREATE TEMPORARY VIEW airlock_copy_columns AS ${query}`,
            queryMode: 'extended',
          } as pg.QueryConfig);
        } catch {
          return null;
        }
        const r = await client.query<{ t: string }>(
          `SELECT (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8 AS t
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = 'pg_temp.airlock_copy_columns'::pg_catalog.regclass
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum`,
        );
        return r.rows.map((row) => Number(row.t));
      } finally {
        await client.query('ROLLBACK');
      }
    });
    if (this.#queryTypes.size > MAX_ENTRIES) this.#queryTypes.clear();
    this.#queryTypes.set(query, { value: types ?? null, at: Date.now() });
  }

  /**
   * The relations a name may mean: in the given schema, or in any schema when unqualified (the
   * caller can change its search_path). Undefined: not cached, ask relations().
   */
  cachedRelations(schema: string | undefined, table: string): readonly RelationInfo[] | undefined {
    const c = this.#relations.get(`${schema ?? ''}\u0000${table}`);
    if (!c || Date.now() - c.at > TTL_MS) return undefined;
    return c.value;
  }

  async relations(
    names: readonly { readonly schema?: string | undefined; readonly table: string }[],
  ): Promise<void> {
    const ask = new Map<string, { schema: string; table: string }>();
    for (const n of names)
      if (this.cachedRelations(n.schema, n.table) === undefined)
        ask.set(`${n.schema ?? ''}\u0000${n.table}`, { schema: n.schema ?? '', table: n.table });
    if (ask.size === 0) return;
    const list = [...ask.values()];
    const rows = await this.#query<{
      i: string;
      nspname: string;
      relname: string;
      relkind: string;
      def: string | null;
      cols: string[];
      types: string[];
    }>(
      `SELECT q.i, n.nspname, c.relname, c.relkind::text AS relkind,
              CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS def,
              ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS cols,
              ARRAY(SELECT (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8
                      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS types
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(schema, name, i)
         JOIN pg_catalog.pg_class c ON c.relname = q.name
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE (q.schema = '' OR n.nspname = q.schema) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
      [list.map((n) => n.schema), list.map((n) => n.table)],
    );
    const found = list.map((): RelationInfo[] => []);
    for (const r of rows)
      found[Number(r.i) - 1]?.push({
        schema: r.nspname,
        table: r.relname,
        kind: r.relkind,
        columns: r.cols,
        types: r.types.map(Number),
        definition: r.def ?? undefined,
      });
    const now = Date.now();
    if (this.#relations.size > MAX_ENTRIES) this.#relations.clear();
    for (const [i, n] of list.entries())
      this.#relations.set(`${n.schema}\u0000${n.table}`, { value: found[i]!, at: now });
  }

  /** The cached answer for a table OID: a value, null (no such table), or undefined (ask). */
  cachedTable(oid: number): TableColumns | null | undefined {
    const c = this.#tables.get(oid);
    if (!c || Date.now() - c.at > TTL_MS) return undefined;
    return c.value;
  }

  async tables(oids: readonly number[]): Promise<ReadonlyMap<number, TableColumns | null>> {
    const out = new Map<number, TableColumns | null>();
    const ask: number[] = [];
    for (const oid of new Set(oids)) {
      const c = this.cachedTable(oid);
      if (c === undefined) ask.push(oid);
      else out.set(oid, c);
    }
    if (ask.length === 0) return out;
    const rows = await this.#query<{
      oid: string;
      nspname: string;
      relname: string;
      relkind: string;
      attnum: number;
      attname: string;
    }>(
      `SELECT c.oid::int8 AS oid, n.nspname, c.relname, c.relkind::text AS relkind, a.attnum, a.attname
         FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
        WHERE c.oid = ANY($1::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped`,
      [ask],
    );
    const found = new Map<
      number,
      { schema: string; table: string; kind: string; columns: Map<number, string> }
    >();
    for (const r of rows) {
      const oid = Number(r.oid);
      let t = found.get(oid);
      if (!t) {
        t = { schema: r.nspname, table: r.relname, kind: r.relkind, columns: new Map() };
        found.set(oid, t);
      }
      t.columns.set(r.attnum, r.attname);
    }
    const now = Date.now();
    if (this.#tables.size > MAX_ENTRIES) this.#tables.clear();
    for (const oid of ask) {
      const t = found.get(oid) ?? null;
      this.#tables.set(oid, { value: t, at: now });
      out.set(oid, t);
    }
    return out;
  }

  /**
   * Volatility of functions by name as written (`name` or `schema.name`). A name that resolves
   * to several functions (overloads, or the same name in several schemas on the search path)
   * gets the most volatile of them; a name the target does not know is absent from the result.
   */
  async volatility(names: readonly string[]): Promise<ReadonlyMap<string, Volatility>> {
    const out = new Map<string, Volatility>();
    const ask: string[] = [];
    const now = Date.now();
    for (const n of new Set(names)) {
      const c = this.#functions.get(n);
      if (c && now - c.at <= FUNCTION_TTL_MS) {
        if (c.value) out.set(n, c.value);
      } else ask.push(n);
    }
    if (ask.length === 0) return out;
    const bare = ask.map((n) => (n.includes('.') ? n.slice(n.lastIndexOf('.') + 1) : n));
    const schemas = ask.map((n) => (n.includes('.') ? n.slice(0, n.lastIndexOf('.')) : ''));
    // Unqualified names are looked up in every schema, not just the search path: the caller can
    // change its search_path, so the most volatile candidate anywhere is what counts.
    const rows = await this.#query<{ i: number; v: Volatility }>(
      `SELECT q.i, max(p.provolatile) AS v
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(name, schema, i)
         JOIN pg_catalog.pg_proc p ON p.proname = q.name
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE q.schema = '' OR n.nspname = q.schema
        GROUP BY q.i`,
      [bare, schemas],
    );
    const byIndex = new Map(rows.map((r) => [Number(r.i), r.v]));
    if (this.#functions.size > MAX_ENTRIES) this.#functions.clear();
    ask.forEach((n, i) => {
      const v = byIndex.get(i + 1) ?? null;
      this.#functions.set(n, { value: v, at: now });
      if (v) out.set(n, v);
    });
    return out;
  }

  /** How side connections log in: the held credential, the connection's TLS settings. */
  #clientConfig(applicationName: string): pg.ClientConfig {
    const up = this.#connection.upstream;
    const ca = up.ca ? readFileSync(resolve(this.#baseDir, up.ca), 'utf8') : undefined;
    return {
      host: up.host,
      port: up.port,
      database: up.database,
      user: up.user,
      password: up.password ? () => up.password!.reveal() : undefined,
      application_name: applicationName,
      connectionTimeoutMillis: 10_000,
      statement_timeout: 10_000,
      ssl:
        up.tls === 'verify-full'
          ? {
              rejectUnauthorized: true,
              ...(ca ? { ca } : {}),
              ...(isIP(up.host) === 0 ? { servername: up.host } : {}),
            }
          : false,
    };
  }

  /**
   * The planner's estimate of rows each statement would write, for reviewers. Planned only
   * (EXPLAIN without ANALYZE) inside a READ ONLY transaction with a 2 s statement timeout, on
   * a connection of its own so a failing plan never disturbs catalog lookups; one at a time.
   */
  estimateRows(statements: readonly string[]): Promise<number | undefined> {
    return this.#onReviewClient(async (client) => {
      let total = 0;
      await client.query('BEGIN READ ONLY');
      try {
        await client.query("SET LOCAL statement_timeout = '2s'");
        for (const sql of statements) {
          const r = await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${sql}`);
          const rows = rowsFromPlan(r.rows[0]?.['QUERY PLAN']);
          if (rows === undefined) return undefined;
          total += rows;
        }
      } finally {
        await client.query('ROLLBACK');
      }
      return total;
    });
  }

  /** Exact rows from a run that is always rolled back (dry-run.ts says when it is attempted). */
  dryRun(parts: readonly ActionPart[], functions: readonly string[]): Promise<DryRun | undefined> {
    return this.#onReviewClient((client) => dryRun(client, parts, functions, (n) => this.volatility(n)));
  }

  /**
   * Runs `fn` on the side connection for reviewer facts, one at a time. Any failure gives no
   * answer (none beats a wrong one) and the next call opens a fresh connection.
   */
  #onReviewClient<T>(fn: (client: pg.Client) => Promise<T | undefined>): Promise<T | undefined> {
    const run = this.#explaining.then(async () => {
      if (this.#closed) return undefined;
      this.#explainClient ??= new pg.Client(this.#clientConfig('airlock blast radius'));
      const client = this.#explainClient;
      try {
        if (!this.#explainConnected) {
          client.on('error', () => {});
          await client.connect();
          this.#explainConnected = true;
        }
        return await fn(client);
      } catch {
        this.#explainClient = undefined;
        this.#explainConnected = false;
        void client.end().catch(() => {});
        return undefined;
      }
    });
    this.#explaining = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.#closed = true;
    void this.#explainClient?.end().catch(() => {});
    this.#explainClient = undefined;
    const c = this.#client;
    this.#client = undefined;
    if (c) await c.then((cl) => cl.end()).catch(() => {});
  }

  async #query<T>(sql: string, params: unknown[]): Promise<T[]> {
    if (this.#closed) throw new Error('the catalog connection is closed');
    const client = await this.#connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } catch (err) {
      // The next lookup opens a fresh connection.
      if (this.#client) void this.#client.then((c) => c.end()).catch(() => {});
      this.#client = undefined;
      throw err;
    }
  }

  #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client;
    const client = new pg.Client(this.#clientConfig('airlock catalog'));
    client.on('error', () => {
      if (this.#client === p) this.#client = undefined;
    });
    const p = client.connect().then(
      () => client,
      (err) => {
        if (this.#client === p) this.#client = undefined;
        throw err;
      },
    );
    this.#client = p;
    return p;
  }
}

/** The catalogs of a listener's connections. */
export class Catalogs {
  readonly #byName = new Map<string, Catalog>();
  readonly #baseDir: string;

  constructor(baseDir: string) {
    this.#baseDir = baseDir;
  }

  for(connection: PostgresConnection): Catalog {
    let c = this.#byName.get(connection.name);
    if (!c) {
      c = new Catalog(connection, this.#baseDir);
      this.#byName.set(connection.name, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byName.values()].map((c) => c.close()));
    this.#byName.clear();
  }
}
