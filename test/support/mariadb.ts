/**
 * A private MariaDB for tests and the benchmark: mariadb-install-db into a temporary directory,
 * mariadbd on a free loopback port (and a socket in that directory), an `app` database with
 * the same sample tables as the PostgreSQL one, and an `app_rw` account with a password. Removed
 * on stop(). Never touches a MariaDB already running on the machine (--no-defaults everywhere).
 *
 * mariadbd refuses to run as root unless told which account to use; as root it runs with
 * --user=root inside its private directory.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before } from 'node:test';
import mysql from 'mysql2/promise';
import { defaultRules } from './gateway.ts';
import { apiUrlOf, makePolicyDir, PRINCIPALS } from './policy-dir.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess, stopAll } from './processes.ts';

export interface PrivateMariadb {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly socket: string;
  readonly dir: string;
  readonly app: { readonly database: 'app'; readonly user: 'app_rw'; readonly password: string };
  /** A mysql2 connection straight to the server (root, or the app account). */
  connect(o?: {
    user?: 'root' | 'app_rw';
    database?: string;
    multipleStatements?: boolean;
  }): Promise<mysql.Connection>;
  /** Runs SQL as root through the socket. */
  query(sql: string): Promise<unknown>;
  stop(): Promise<void>;
}

export function findMariadbTool(name: string): string | undefined {
  for (const dir of [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/usr/local/bin',
    '/usr/local/sbin',
  ])
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

/** Whether the MariaDB server and client are installed (tests skip with a reason otherwise). */
export function mariadbAvailable(): string | undefined {
  for (const tool of ['mariadbd', 'mariadb-install-db', 'mariadb'])
    if (!findMariadbTool(tool))
      return `${tool} is not installed (Debian: apt-get install mariadb-server mariadb-client)`;
  return undefined;
}

const live = new Set<{ proc: ManagedProcess; dir: string }>();
process.once('exit', () => {
  for (const { proc, dir } of live) {
    proc.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

export async function startMariadb(
  opts: { verbose?: boolean; extraArgs?: readonly string[] } = {},
): Promise<PrivateMariadb> {
  const installDb = findMariadbTool('mariadb-install-db');
  const server = findMariadbTool('mariadbd');
  if (!installDb || !server) throw new Error(mariadbAvailable());
  const dir = mkdtempSync(join(tmpdir(), 'airlock-mariadb-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const userArgs = root ? ['--user=root'] : [];
  const init = spawnSync(
    installDb,
    [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      ...userArgs,
    ],
    { encoding: 'utf8', timeout: 180_000, env: { ...process.env, LC_ALL: 'C' } },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `mariadb-install-db failed (${init.status ?? init.signal}):\n${init.stdout}\n${init.stderr}`,
    );
  }
  let proc: ManagedProcess | undefined;
  let port = 0;
  let lastError = '';
  for (let attempt = 0; attempt < 5 && !proc; attempt++) {
    port = await freePort();
    const p = startProcess(
      server,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--socket=${socket}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--pid-file=${join(dir, 'mysqld.pid')}`,
        '--skip-name-resolve',
        '--innodb-buffer-pool-size=32M',
        '--innodb-flush-log-at-trx-commit=0',
        '--skip-log-bin',
        '--max-connections=300',
        '--character-set-server=utf8mb4',
        '--collation-server=utf8mb4_general_ci',
        ...userArgs,
        ...(opts.extraArgs ?? []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' } },
    );
    try {
      await p.waitForOutput(/ready for connections/, 90_000);
      proc = p;
    } catch (err) {
      lastError = (err as Error).message;
      await p.stop('SIGKILL', 5_000);
      if (!/Address already in use|Can't start server: Bind/i.test(p.output())) break;
    }
  }
  if (!proc) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`MariaDB did not start: ${lastError}`);
  }
  if (opts.verbose) proc.child.stderr?.on('data', (d) => process.stderr.write(d));
  const entry = { proc, dir };
  live.add(entry);
  const appPassword = randomBytes(18).toString('base64url');

  const connect: PrivateMariadb['connect'] = async (o = {}) => {
    const user = o.user ?? 'root';
    const c = await mysql.createConnection({
      ...(user === 'root' ? { socketPath: socket } : { host: '127.0.0.1', port }),
      user,
      password: user === 'root' ? '' : appPassword,
      database: o.database,
      multipleStatements: o.multipleStatements ?? false,
    });
    c.on('error', () => {});
    return c;
  };
  const admin = await connect({ multipleStatements: true });
  try {
    await admin.query(`CREATE DATABASE app;
CREATE USER 'app_rw'@'%' IDENTIFIED BY '${appPassword}';
GRANT ALL ON app.* TO 'app_rw'@'%';
USE app;
${SAMPLE_SCHEMA}`);
  } finally {
    await admin.end();
  }

  let stopped = false;
  return {
    host: '127.0.0.1',
    port,
    socket,
    dir,
    app: { database: 'app', user: 'app_rw', password: appPassword },
    connect,
    async query(sql) {
      const c = await connect({ database: 'app', multipleStatements: true });
      try {
        const [rows] = await c.query(sql);
        return rows;
      } finally {
        await c.end();
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await proc.stop('SIGTERM', 30_000);
      live.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const SAMPLE_SCHEMA = `
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, card_number text);
INSERT INTO customers (id, name, email, card_number)
  SELECT seq, CONCAT('Customer ', seq), CONCAT('customer', seq, '@example.com'), CONCAT('4111 1111 1111 ', LPAD(seq, 4, '0'))
  FROM seq_1_to_20;
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total decimal(10, 2) NOT NULL);
INSERT INTO orders (id, customer, total)
  SELECT seq, CONCAT('Customer ', 1 + seq % 20), seq * 7.25 FROM seq_1_to_50;
CREATE TABLE audit_notes (id int AUTO_INCREMENT PRIMARY KEY, note text NOT NULL);
`;

/** Principals every MySQL test gateway knows: the PostgreSQL helper's, but for carol. */
const { carol: _carol, ...mysqlPrincipals } = PRINCIPALS;
export const MYSQL_PRINCIPALS = mysqlPrincipals;
export type MysqlPrincipal = keyof typeof MYSQL_PRINCIPALS;

/** The connection name callers put where a database name goes. */
export const MYSQL_CONNECTION = 'shop';

export const MYSQL_DEFAULT_RULES = defaultRules(MYSQL_CONNECTION);

export interface MysqlTestGateway {
  readonly dir: string;
  readonly apiUrl: string;
  readonly mysql: { readonly host: string; readonly port: number };
  readonly tokens: Record<MysqlPrincipal, string>;
  readonly storeFile: string;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    as?: MysqlPrincipal,
  ): Promise<{ status: number; body: T; text: string }>;
  close(): Promise<void>;
}

/** An Airlock gateway whose `shop` connection is the private MariaDB (policy file, tokens by reference). */
export interface MysqlGatewayOptions {
  rules?: string;
  extra?: string;
  connectionExtra?: string;
  /** Log in to the target as this account instead of `app_rw`. */
  upstreamUser?: { user: string; password: string };
  /** What actions no rule matches get (default review). */
  connectionDefault?: 'allow' | 'review' | 'deny';
  /** YAML lines appended under `upstream:` (6-space indent). */
  upstreamExtra?: string;
  tls?: { cert: string; key: string };
  /** Where the MySQL listener binds (default a random loopback port). */
  mysqlListen?: string;
}

export async function startMysqlTestGateway(
  target: PrivateMariadb,
  opts: MysqlGatewayOptions = {},
): Promise<MysqlTestGateway> {
  const files = makePolicyDir('airlock-mysql-gw-', MYSQL_PRINCIPALS);
  files.secret('upstream.password', `${opts.upstreamUser?.password ?? target.app.password}\n`);
  let tls = '';
  if (opts.tls) {
    files.secret('tls.crt', opts.tls.cert);
    files.secret('tls.key', opts.tls.key);
    tls = `tls:\n  cert: "\${file:./secrets/tls.crt}"\n  key: "\${file:./secrets/tls.key}"\n`;
  }
  files.writePolicy(
    { listen: ['mysql'], top: tls },
    `connections:
  ${MYSQL_CONNECTION}:
    type: mysql
    upstream:
      host: 127.0.0.1
      port: ${target.port}
      database: ${target.app.database}
      user: ${opts.upstreamUser?.user ?? target.app.user}
      password: "\${file:./secrets/upstream.password}"
${opts.upstreamExtra ?? ''}    default: ${opts.connectionDefault ?? 'review'}
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${opts.connectionExtra ?? ''}
${opts.rules ?? MYSQL_DEFAULT_RULES}
${opts.extra ?? ''}`,
  );
  const gateway = await files.start(opts.mysqlListen ? { listen: { mysql: opts.mysqlListen } } : {});
  const addr = gateway.listeners.mysql;
  if (!addr) {
    await files.close(gateway);
    throw new Error('the MySQL listener did not start');
  }
  return {
    dir: files.dir,
    apiUrl: apiUrlOf(gateway),
    mysql: { host: addr.host, port: addr.port },
    tokens: files.tokens,
    storeFile: files.storeFile,
    api: files.api(gateway),
    close: () => files.close(gateway),
  };
}

/**
 * The hooks of a test file that runs against one private MariaDB with a gateway in front of it:
 * `before` starts both and hands them to `use`, `after` stops them and every process the file
 * started. Nothing starts when `skip` says why MariaDB cannot run here.
 */
export function mariadbGatewayHooks(
  skip: string | undefined,
  use: (target: PrivateMariadb, gw: MysqlTestGateway) => void,
  opts: MysqlGatewayOptions | ((target: PrivateMariadb) => MysqlGatewayOptions) = {},
): void {
  let target: PrivateMariadb | undefined;
  let gw: MysqlTestGateway | undefined;
  before(async () => {
    if (skip) return;
    target = await startMariadb();
    gw = await startMysqlTestGateway(target, typeof opts === 'function' ? opts(target) : opts);
    use(target, gw);
  });
  after(async () => {
    await gw?.close();
    await target?.stop();
    await stopAll();
  });
}

/** A mysql2 connection through the gateway's MySQL listener as `who` (default the agent) to the `shop` connection. */
export function mysqlThrough(
  gw: MysqlTestGateway,
  who: MysqlPrincipal = 'agent',
  extra: Partial<mysql.ConnectionOptions> = {},
): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: '127.0.0.1',
    port: gw.mysql.port,
    user: who,
    password: gw.tokens[who],
    database: MYSQL_CONNECTION,
    ...extra,
  });
}

/** The `mariadb` CLI in batch mode (tab-separated output), logged in as given. */
export function mariadbClient(
  login: { port: number; user: string; password: string; database: string },
  sql: string,
  args: readonly string[] = [],
): ManagedProcess {
  return startProcess('mariadb', [
    '--no-defaults',
    '--batch',
    '-h',
    '127.0.0.1',
    '-P',
    String(login.port),
    '-u',
    login.user,
    `-p${login.password}`,
    ...args,
    login.database,
    '-e',
    sql,
  ]);
}

/** The `mariadb` CLI through the gateway as `who` (default the agent). */
export function mariadbCli(
  gw: MysqlTestGateway,
  sql: string,
  o: { who?: MysqlPrincipal; token?: string; database?: string; port?: number; args?: string[] } = {},
): ManagedProcess {
  const who = o.who ?? 'agent';
  return mariadbClient(
    {
      port: o.port ?? gw.mysql.port,
      user: who,
      password: o.token ?? gw.tokens[who],
      database: o.database ?? MYSQL_CONNECTION,
    },
    sql,
    o.args,
  );
}
