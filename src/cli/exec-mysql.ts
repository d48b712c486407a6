/**
 * `airlock exec` on a MySQL/MariaDB connection: the SQL goes through the gateway's MySQL listener
 * (database = connection name, password = the caller's token), so it is judged like any client's.
 *
 * The MySQL protocol cannot tell a waiting client anything, so while the statement runs the
 * caller's own pending request on this connection is looked up through the API and shown on
 * stderr ("waiting for approval: request N ..."), then repeated every 10 seconds.
 */
import mysql from 'mysql2/promise';
import { AirlockError } from '../core/errors.ts';
import type { ApiClient } from './client.ts';
import { formatTable } from './table.ts';

export interface MysqlExecOptions {
  readonly connection: string;
  readonly sql: string;
  readonly json: boolean;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly token: string;
  readonly client: ApiClient;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** First look for a held request after this many ms, then every `pollMs` (tests shorten them). */
  readonly pollMs?: number;
}

interface PendingRequest {
  id: number;
  summary: string;
  url: string;
  source: string | null;
}

export async function runMysqlExec(opts: MysqlExecOptions): Promise<void> {
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({
      host: opts.host,
      port: opts.port,
      user: opts.user,
      password: opts.token,
      database: opts.connection,
      // The gateway judges each statement of a multi-statement text on its own.
      multipleStatements: true,
      connectAttributes: { program_name: 'airlock exec' },
    });
  } catch (e) {
    throw fromMysql(e, `could not connect to the gateway at ${opts.host}:${opts.port}`);
  }
  conn.on('error', () => {});
  const stop = watchHold(opts, Date.now() - 1000);
  try {
    let result: unknown;
    let fields: unknown;
    try {
      [result, fields] = await conn.query({ sql: opts.sql, rowsAsArray: true });
    } catch (e) {
      throw fromMysql(e);
    } finally {
      stop();
    }
    print(opts, result, fields);
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

/** One result per statement: a multi-statement text gives arrays of each. */
function print(opts: MysqlExecOptions, result: unknown, fields: unknown): void {
  const multi =
    Array.isArray(fields) && fields.length > 0 && fields.every((f) => f === undefined || Array.isArray(f));
  const results = multi ? (result as unknown[]) : [result];
  const fieldSets = (multi ? fields : [fields]) as (mysql.FieldPacket[] | undefined)[];
  if (opts.json) {
    const rows = results.map((r, i) => (Array.isArray(r) ? rowObjects(r as unknown[][], fieldSets[i]) : []));
    opts.out(JSON.stringify(results.length === 1 ? rows[0] : rows, null, 2));
    return;
  }
  results.forEach((r, i) => {
    if (Array.isArray(r)) {
      const headers = (fieldSets[i] ?? []).map((f) => f.name);
      opts.out(formatTable(headers, r as unknown[][]));
      opts.out(`(${r.length} row${r.length === 1 ? '' : 's'})`);
      return;
    }
    const ok = r as mysql.ResultSetHeader;
    opts.out(`OK, ${ok.affectedRows} row${ok.affectedRows === 1 ? '' : 's'} affected`);
  });
}

function rowObjects(rows: unknown[][], fields: mysql.FieldPacket[] | undefined): Record<string, unknown>[] {
  const names = (fields ?? []).map((f) => f.name);
  return rows.map((row) => Object.fromEntries(names.map((n, i) => [n, row[i]])));
}

/**
 * Polls the API for a pending request of ours on this connection with this text, made since the
 * statement was sent; shows it once found. Only informs: the listener alone holds and decides.
 */
function watchHold(opts: MysqlExecOptions, since: number): () => void {
  const every = opts.pollMs ?? 250;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const query = new URLSearchParams({
    status: 'pending',
    connection: opts.connection,
    principal: opts.user,
    since: String(since),
    limit: '20',
  });
  const poll = async (): Promise<void> => {
    if (stopped) return;
    const found = await opts.client
      .request<{ requests: PendingRequest[] }>('GET', `/api/v1/requests?${query}`)
      .then((r) => r.requests.find((x) => x.summary === opts.sql) ?? r.requests[0])
      .catch(() => undefined);
    if (stopped) return;
    if (!found) {
      timer = setTimeout(() => void poll(), every);
      return;
    }
    const started = Date.now();
    opts.err(`waiting for approval: request ${found.id} — approve it at ${found.url}`);
    const again = (): void => {
      timer = setTimeout(() => {
        if (stopped) return;
        opts.err(
          `still waiting for approval: request ${found.id} (${Math.round((Date.now() - started) / 1000)}s so far)`,
        );
        again();
      }, 10_000);
    };
    again();
  };
  timer = setTimeout(() => void poll(), every);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function fromMysql(e: unknown, context?: string): AirlockError {
  if (e instanceof AirlockError) return e;
  const err = e as { message?: string; code?: string; errno?: number; sqlState?: string };
  const connRefused = err.code === 'ECONNREFUSED';
  const message = connRefused && context ? `${context}: connection refused` : (err.message ?? String(e));
  // 1142 (ER_TABLEACCESS_DENIED_ERROR) is what the gateway answers a denied statement with.
  const code = connRefused
    ? 'AIRLOCK_E_UPSTREAM_UNAVAILABLE'
    : err.errno === 1142 || err.errno === 1045
      ? 'AIRLOCK_E_DENIED'
      : 'AIRLOCK_E_BAD_REQUEST';
  return new AirlockError(
    code,
    message,
    connRefused
      ? { hint: 'is `airlock serve` or `airlock demo` running? pass --host/--port or set AIRLOCK_URL' }
      : {},
  );
}
