/**
 * `airlock exec CONNECTION -- "SQL"`: runs SQL through the gateway's PostgreSQL listener with
 * the caller's token as the password, so it is judged exactly like any other client. Notices
 * (such as "waiting for approval: request N ...") are shown on stderr as they arrive. MySQL
 * connections go through the MySQL listener instead (exec-mysql.ts).
 */
import pg from 'pg';
import { AirlockError } from '../core/errors.ts';
import type { ApiClient } from './client.ts';
import { runMysqlExec } from './exec-mysql.ts';
import { formatTable } from './table.ts';

export interface ExecOptions {
  readonly connection: string;
  readonly sql: string;
  readonly json: boolean;
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  readonly token: string | undefined;
  readonly client: ApiClient;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

interface Listener {
  host: string;
  port: number;
  database: string;
}

interface ConnectionsResponse {
  connections: { name: string; type?: string; postgres?: Listener; mysql?: Listener }[];
}

interface Target {
  protocol: 'postgres' | 'mysql';
  host: string;
  port: number;
  user: string;
}

/** Where the gateway's listener is and who we are, from the API unless given on the command line. */
async function target(opts: ExecOptions): Promise<Target> {
  let user = 'airlock';
  if (opts.host !== undefined) {
    let protocol: Target['protocol'] = 'postgres';
    try {
      user = (await opts.client.request<{ name: string }>('GET', '/api/v1/whoami')).name;
      const list = await opts.client.request<ConnectionsResponse>('GET', '/api/v1/connections');
      if (list.connections.find((x) => x.name === opts.connection)?.type === 'mysql') protocol = 'mysql';
    } catch {
      // The user name is only recorded by the gateway; identity comes from the token.
    }
    return { protocol, host: opts.host, port: opts.port ?? (protocol === 'mysql' ? 13306 : 15432), user };
  }
  const [who, list] = await Promise.all([
    opts.client.request<{ name: string }>('GET', '/api/v1/whoami'),
    opts.client.request<ConnectionsResponse>('GET', '/api/v1/connections'),
  ]);
  user = who.name;
  const c = list.connections.find((x) => x.name === opts.connection);
  if (!c)
    throw new AirlockError(
      'AIRLOCK_E_CONNECTION_UNKNOWN',
      `the gateway has no connection named "${opts.connection}"`,
      {
        hint: `known connections: ${list.connections.map((x) => x.name).join(', ') || '(none)'}`,
      },
    );
  if (c.type === 'mysql') {
    if (!c.mysql)
      throw new AirlockError(
        'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
        `the gateway's MySQL listener is off, so "${opts.connection}" cannot be reached`,
        { hint: 'enable listen.mysql in the policy, or pass --host and --port' },
      );
    return { protocol: 'mysql', host: opts.host ?? c.mysql.host, port: opts.port ?? c.mysql.port, user };
  }
  if (!c.postgres)
    throw new AirlockError(
      'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
      `the gateway's PostgreSQL listener is off, so "${opts.connection}" cannot be reached`,
      {
        hint: 'enable listen.postgres in the policy, or pass --host and --port',
      },
    );
  return {
    protocol: 'postgres',
    host: opts.host ?? c.postgres.host,
    port: opts.port ?? c.postgres.port,
    user,
  };
}

export async function runExec(opts: ExecOptions): Promise<void> {
  if (!opts.token)
    throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'AIRLOCK_TOKEN is not set', {
      hint: 'export AIRLOCK_TOKEN=<your Airlock token>; it is sent as the database password',
    });
  const where = await target(opts);
  if (where.protocol === 'mysql')
    return runMysqlExec({ ...opts, host: where.host, port: where.port, user: where.user, token: opts.token });
  const client = new pg.Client({
    host: where.host,
    port: where.port,
    user: where.user,
    database: opts.connection,
    password: opts.token,
    application_name: 'airlock exec',
  });
  client.on('notice', (n) => opts.err(`${n.severity ?? 'NOTICE'}: ${n.message}`));
  // Errors after connect arrive through 'error' too; the query promise reports them.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    throw fromPg(e, `could not connect to the gateway at ${where.host}:${where.port}`);
  }
  try {
    let result: pg.QueryResult | pg.QueryResult[];
    try {
      result = (await client.query(opts.sql)) as pg.QueryResult | pg.QueryResult[];
    } catch (e) {
      throw fromPg(e);
    }
    const results = Array.isArray(result) ? result : [result];
    if (opts.json) {
      const rows = results.flatMap((r) => r.rows ?? []);
      opts.out(JSON.stringify(results.length === 1 ? rows : results.map((r) => r.rows ?? []), null, 2));
      return;
    }
    for (const r of results) {
      if (r.fields && r.fields.length > 0) {
        const headers = r.fields.map((f) => f.name);
        opts.out(
          formatTable(
            headers,
            r.rows.map((row: Record<string, unknown>) => headers.map((h) => row[h])),
          ),
        );
        opts.out(`(${r.rowCount ?? r.rows.length} row${(r.rowCount ?? r.rows.length) === 1 ? '' : 's'})`);
      }
      opts.out(commandTag(r));
    }
  } finally {
    await client.end().catch(() => {});
  }
}

function commandTag(r: pg.QueryResult): string {
  if (!r.command) return '';
  if (r.command === 'INSERT') return `INSERT 0 ${r.rowCount ?? 0}`;
  return r.rowCount === null || r.rowCount === undefined ? r.command : `${r.command} ${r.rowCount}`;
}

function fromPg(e: unknown, context?: string): AirlockError {
  if (e instanceof AirlockError) return e;
  const err = e as { message?: string; hint?: string; code?: string; severity?: string };
  const connRefused = err.code === 'ECONNREFUSED';
  const message = connRefused && context ? `${context}: connection refused` : (err.message ?? String(e));
  const code = connRefused
    ? 'AIRLOCK_E_UPSTREAM_UNAVAILABLE'
    : err.code === '42501'
      ? 'AIRLOCK_E_DENIED'
      : 'AIRLOCK_E_BAD_REQUEST';
  return new AirlockError(code, message, {
    ...(err.hint
      ? { hint: err.hint }
      : connRefused
        ? { hint: 'is `airlock serve` or `airlock demo` running? pass --host/--port or set AIRLOCK_URL' }
        : {}),
  });
}
