/**
 * A private PostgreSQL for tests and the benchmark: initdb into a temporary directory, start on a
 * free loopback port with SCRAM authentication, create the `app` database owned by `app_rw` with
 * sample tables, and remove it all on stop(). Never touches the machine's own PostgreSQL.
 *
 * PostgreSQL refuses to run as root, so when this process is root the server binaries run as an
 * unprivileged account (`postgres` if it exists, else `nobody`) that owns the data directory.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './processes.ts';

export interface StartPostgresOptions {
  /** Create the `app` database, the `app_rw` role and the sample tables (default true). */
  sample?: boolean;
  /** Extra `-c name=value` server settings. */
  settings?: Readonly<Record<string, string | number>>;
  /** Log server output to this process's stderr (default: only on failure). */
  verbose?: boolean;
}

export interface PrivatePostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  /** Directory of the server binaries used (initdb, pg_ctl, pgbench live next to each other). */
  readonly binDir: string;
  readonly superuser: 'postgres';
  readonly password: string;
  /** The application role and its password. */
  readonly app: { readonly database: 'app'; readonly user: 'app_rw'; readonly password: string };
  connectionString(db?: string, user?: string): string;
  /** Run SQL with psql (superuser unless `user` is given); resolves with stdout, rejects on error. */
  psql(sql: string, opts?: { db?: string; user?: string }): Promise<string>;
  /** A connected pg client (superuser on `app` by default). Caller ends it. */
  client(opts?: { db?: string; user?: string }): Promise<pg.Client>;
  /** The OS account the server runs as (for tools such as pgbouncer that also refuse root). */
  readonly runAs: { readonly uid: number; readonly gid: number; readonly name: string } | undefined;
  /** Stops the server (fast shutdown, or SIGKILL when `crash`) and keeps its data for resume(). */
  pause(opts?: { crash?: boolean }): Promise<void>;
  /** Starts the paused server again on the same port. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/** The directory holding initdb/postgres/pg_ctl: $PG_BIN, the newest /usr/lib/postgresql/N/bin, or PATH. */
export function findPostgresBin(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv && existsSync(join(fromEnv, 'initdb'))) return fromEnv;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'))) return dir;
  }
  // Homebrew and Postgres.app keep versioned directories too.
  for (const base of ['/opt/homebrew/opt', '/usr/local/opt']) {
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base)
      .filter((d) => d.startsWith('postgresql'))
      .sort()
      .reverse())
      if (existsSync(join(base, d, 'bin', 'initdb'))) return join(base, d, 'bin');
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, postgres) were not found: install PostgreSQL (Debian: apt-get install postgresql) or set PG_BIN',
  );
}

/** A client tool (psql, pgbench, pg_isready): next to the server binaries, else on PATH. */
export function findTool(name: string): string | undefined {
  try {
    const bin = findPostgresBin();
    if (existsSync(join(bin, name))) return join(bin, name);
  } catch {
    // fall through to PATH
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter))
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

/** The unprivileged account to run server binaries as when we are root; undefined otherwise. */
export function unprivilegedAccount(): { uid: number; gid: number; name: string } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n');
  for (const wanted of ['postgres', 'nobody']) {
    const line = passwd.find((l) => l.startsWith(`${wanted}:`));
    if (!line) continue;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid), name: wanted };
  }
  throw new Error(
    'running as root, but neither a "postgres" nor a "nobody" account exists to run PostgreSQL as',
  );
}

const live = new Set<{ proc: ManagedProcess; dir: string }>();
process.once('exit', () => {
  for (const { proc, dir } of live) {
    proc.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PrivatePostgres> {
  const binDir = findPostgresBin();
  const runAs = unprivilegedAccount();
  const asUser = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pg-'));
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  const dataDir = join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  const appPassword = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) chownSync(pwfile, runAs.uid, runAs.gid);

  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
  const init = spawnSync(
    join(binDir, 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=scram-sha-256',
      `--pwfile=${pwfile}`,
      '-E',
      'UTF8',
      '--no-sync',
      '--locale=C',
    ],
    { ...asUser, env, cwd: dir, encoding: 'utf8', timeout: 120_000 },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `initdb failed (${init.status ?? init.signal}):\n${init.stdout}\n${init.stderr}${init.error ? `\n${init.error.message}` : ''}`,
    );
  }
  rmSync(pwfile, { force: true });

  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '32MB',
    max_connections: 200,
    unix_socket_directories: dir,
    ...opts.settings,
  };
  let proc: ManagedProcess | undefined;
  let port = 0;
  let lastError = '';
  // The free port can be taken between probing and binding; try a few.
  for (let attempt = 0; attempt < 5 && !proc; attempt++) {
    port = await freePort();
    const args = ['-D', dataDir, '-p', String(port)];
    for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
    const p = startProcess(join(binDir, 'postgres'), args, {
      ...asUser,
      env,
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await p.waitForOutput(/database system is ready to accept connections/, 60_000);
      proc = p;
    } catch (err) {
      lastError = (err as Error).message;
      await p.stop('SIGKILL', 5_000);
      if (!/could not bind|Address already in use/i.test(p.output())) break;
    }
  }
  if (!proc) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${lastError}`);
  }
  if (opts.verbose) proc.child.stderr?.on('data', (d) => process.stderr.write(d));
  const entry = { proc, dir };
  live.add(entry);

  const connectionString = (db = 'postgres', user = 'postgres') => {
    const pw = user === 'app_rw' ? appPassword : password;
    return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(pw)}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  };
  const client = async (o: { db?: string; user?: string } = {}) => {
    const c = new pg.Client({ connectionString: connectionString(o.db ?? 'app', o.user ?? 'postgres') });
    // A server shutdown while a test still holds the client must not become an uncaught error.
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const psqlBin = findTool('psql');
  const psql = async (sql: string, o: { db?: string; user?: string } = {}) => {
    if (!psqlBin)
      throw new Error(
        'psql was not found: install the PostgreSQL client (Debian: apt-get install postgresql-client)',
      );
    const user = o.user ?? 'postgres';
    const p = startProcess(
      psqlBin,
      [
        '-X',
        '-q',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        user,
        '-d',
        o.db ?? 'app',
        '-c',
        sql,
      ],
      {
        env: {
          ...process.env,
          PGPASSWORD: user === 'app_rw' ? appPassword : password,
          PGCONNECT_TIMEOUT: '10',
        },
      },
    );
    p.endInput();
    const exit = await p.waitForExit(60_000);
    if (exit.code !== 0) throw new Error(`psql failed (${exit.code}): ${p.stderr()}`);
    return p.stdout();
  };

  if (opts.sample !== false) {
    const admin = new pg.Client({ connectionString: connectionString('postgres') });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE app_rw LOGIN PASSWORD '${appPassword}'`);
      await admin.query('CREATE DATABASE app OWNER app_rw');
    } finally {
      await admin.end();
    }
    const app = new pg.Client({ connectionString: connectionString('app', 'app_rw') });
    await app.connect();
    try {
      await app.query(SAMPLE_SCHEMA);
    } finally {
      await app.end();
    }
  }

  const serverArgs = ['-D', dataDir, '-p', String(port)];
  for (const [k, v] of Object.entries(settings)) serverArgs.push('-c', `${k}=${v}`);
  let stopped = false;
  let paused = false;
  return {
    host: '127.0.0.1',
    port,
    dataDir,
    binDir,
    superuser: 'postgres',
    password,
    app: { database: 'app', user: 'app_rw', password: appPassword },
    connectionString,
    psql,
    client,
    runAs,
    async pause(o = {}) {
      if (paused || stopped) return;
      paused = true;
      await entry.proc.stop(o.crash ? 'SIGKILL' : 'SIGINT', 20_000);
    },
    async resume() {
      if (!paused || stopped) return;
      const p = startProcess(join(binDir, 'postgres'), serverArgs, {
        ...asUser,
        env,
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      await p.waitForOutput(/database system is ready to accept connections/, 60_000);
      entry.proc = p;
      paused = false;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, disconnect, exit.
      if (!paused) await entry.proc.stop('SIGINT', 20_000);
      live.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const SAMPLE_SCHEMA = `
CREATE TABLE customers (
  id int PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  card_number text
);
INSERT INTO customers (id, name, email, card_number)
SELECT i, 'Customer ' || i, 'customer' || i || '@example.com', '4111 1111 1111 ' || lpad(i::text, 4, '0')
FROM generate_series(1, 20) AS i;

CREATE TABLE orders (
  id int PRIMARY KEY,
  customer text NOT NULL,
  total numeric(10, 2) NOT NULL
);
INSERT INTO orders (id, customer, total)
SELECT i, 'Customer ' || (1 + i % 20), (i * 7.25)::numeric(10, 2)
FROM generate_series(1, 50) AS i;

CREATE TABLE audit_notes (id serial PRIMARY KEY, note text NOT NULL);
`;
