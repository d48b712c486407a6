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
import mysql from 'mysql2/promise';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './processes.ts';

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

/** Principals every MySQL test gateway knows (the same as the PostgreSQL helper's). */
export const MYSQL_PRINCIPALS = {
  agent: { kind: 'agent', groups: ['agents'] },
  alice: { kind: 'human', groups: ['dba'] },
  bob: { kind: 'human', groups: ['dba'] },
  eve: { kind: 'human', groups: ['support'] },
  bench: { kind: 'service', groups: ['bench'] },
} as const;
export type MysqlPrincipal = keyof typeof MYSQL_PRINCIPALS;

/** The connection name callers put where a database name goes. */
export const MYSQL_CONNECTION = 'shop';

export const MYSQL_DEFAULT_RULES = `
rules:
  - name: reads are free
    connections: [${MYSQL_CONNECTION}]
    kinds: [read]
    effect: allow
  - name: the benchmark may write
    connections: [${MYSQL_CONNECTION}]
    principals: [bench]
    kinds: [write]
    effect: allow
  - name: no drops outside migrations
    statements: [DropStmt, TruncateStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
  - name: agent notes expire quickly
    connections: [${MYSQL_CONNECTION}]
    principals: [agent]
    tables: [audit_notes]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 2s, hold: wait }
  - name: customer changes are approved per statement
    connections: [${MYSQL_CONNECTION}]
    principal_kinds: [agent, human]
    tables: [customers]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: retry, window: 10m }
  - name: writes need a DBA
    connections: [${MYSQL_CONNECTION}]
    principal_kinds: [agent, human]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
`;

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
export async function startMysqlTestGateway(
  target: PrivateMariadb,
  opts: {
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
  } = {},
): Promise<MysqlTestGateway> {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { loadPolicyFile } = await import('../../src/core/policy/load.ts');
  const { startGateway } = await import('../../src/server/gateway.ts');
  const dir = mkdtempSync(join(tmpdir(), 'airlock-mysql-gw-'));
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const tokens = {} as Record<MysqlPrincipal, string>;
  const identities: string[] = [];
  for (const [name, p] of Object.entries(MYSQL_PRINCIPALS) as [
    MysqlPrincipal,
    (typeof MYSQL_PRINCIPALS)[MysqlPrincipal],
  ][]) {
    tokens[name] = `alk_test_${name}_${randomBytes(24).toString('base64url')}`;
    writeFileSync(join(dir, 'secrets', `${name}.token`), `${tokens[name]}\n`, { mode: 0o600 });
    identities.push(
      `    - { name: ${name}, token: "\${file:./secrets/${name}.token}", kind: ${p.kind}, groups: [${p.groups.join(', ')}] }`,
    );
  }
  writeFileSync(
    join(dir, 'secrets', 'upstream.password'),
    `${opts.upstreamUser?.password ?? target.app.password}\n`,
    {
      mode: 0o600,
    },
  );
  let tlsBlock = '';
  if (opts.tls) {
    writeFileSync(join(dir, 'secrets', 'tls.crt'), opts.tls.cert);
    writeFileSync(join(dir, 'secrets', 'tls.key'), opts.tls.key, { mode: 0o600 });
    tlsBlock = `tls:\n  cert: "\${file:./secrets/tls.crt}"\n  key: "\${file:./secrets/tls.key}"\n`;
  }
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: false
  mysql: 127.0.0.1:0
store: sqlite:./data/airlock.db
${tlsBlock}
identities:
  tokens:
${identities.join('\n')}

connections:
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
${opts.extra ?? ''}
`,
  );
  const policy = loadPolicyFile(policyFile);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({ policy });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const apiUrl = gateway.api.url.replace(/\/$/, '');
  const addr = gateway.listeners.mysql;
  if (!addr) throw new Error('the MySQL listener did not start');
  let closed = false;
  return {
    dir,
    apiUrl,
    mysql: { host: addr.host, port: addr.port },
    tokens,
    storeFile: join(dir, 'data', 'airlock.db'),
    async api<T>(method: string, path: string, body?: unknown, as?: MysqlPrincipal) {
      const headers: Record<string, string> = {};
      if (as) headers.authorization = `Bearer ${tokens[as]}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(apiUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        // not JSON
      }
      return { status: res.status, body: parsed as T, text };
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await gateway.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
