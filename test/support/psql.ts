/**
 * Callers for the gateway as real clients see it: the `psql` binary (spawned, the Airlock token as
 * PGPASSWORD, the connection name as the database) and the `pg` driver.
 */
import pg from 'pg';
import { findTool } from './postgres.ts';
import { type ManagedProcess, startProcess } from './processes.ts';

export interface PsqlTarget {
  readonly host: string;
  readonly port: number;
  /** Connection name (the database name selects the Airlock connection). */
  readonly database: string;
  /** The Airlock token, presented as the password. */
  readonly token: string;
  /** Client user name; Airlock only records it. */
  readonly user?: string;
}

function psqlBinary(): string {
  const bin = findTool('psql');
  if (!bin)
    throw new Error(
      'psql was not found: install the PostgreSQL client (Debian: apt-get install postgresql-client)',
    );
  return bin;
}

function psqlArgs(t: PsqlTarget): string[] {
  return ['-X', '-h', t.host, '-p', String(t.port), '-U', t.user ?? 'agent', '-d', t.database];
}

function psqlEnv(t: PsqlTarget): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGPASSWORD: t.token,
    PGCONNECT_TIMEOUT: '15',
    PGSSLMODE: 'prefer',
  };
  // A developer's own settings must not redirect the test's psql.
  for (const k of ['PGSERVICE', 'PGSERVICEFILE', 'PGPASSFILE', 'PGOPTIONS', 'PGHOSTADDR']) delete env[k];
  return env;
}

/** psql -c SQL: runs one command and exits. */
export function psqlCommand(t: PsqlTarget, sql: string, extra: readonly string[] = []): ManagedProcess {
  const p = startProcess(psqlBinary(), [...psqlArgs(t), ...extra, '-c', sql], { env: psqlEnv(t) });
  p.endInput();
  return p;
}

/** An interactive psql driven through stdin; write statements with `p.write('...;\n')`. */
export function psqlSession(t: PsqlTarget, extra: readonly string[] = []): ManagedProcess {
  return startProcess(psqlBinary(), [...psqlArgs(t), ...extra], { env: psqlEnv(t) });
}

/** A pg driver client connected through the gateway. Caller ends it. */
export async function pgThrough(t: PsqlTarget): Promise<pg.Client> {
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user ?? 'agent',
    password: t.token,
    connectionTimeoutMillis: 15_000,
  });
  // An error event with no listener would crash the test process (e.g. the gateway closes).
  client.on('error', () => {});
  await client.connect();
  return client;
}
