/**
 * The CLI on a MySQL connection: `airlock exec` runs SQL through a served gateway's MySQL listener
 * (a private MariaDB behind it) and shows a held statement's request while it waits; `airlock
 * policy test` classifies the SQL as the MySQL listener does.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  MYSQL_CONNECTION,
  type MysqlPrincipal,
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbGatewayHooks,
} from './support/mariadb.ts';
import { startProcess } from './support/processes.ts';

const TEST_TIMEOUT = 180_000;
const skip = mariadbAvailable();
const ROOT = join(import.meta.dirname, '..');

let gw: MysqlTestGateway;

mariadbGatewayHooks(skip, (_target, g) => {
  gw = g;
});

function airlock(args: string[], as: MysqlPrincipal = 'agent') {
  return startProcess(process.execPath, [join(ROOT, 'bin', 'airlock.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, AIRLOCK_URL: gw.apiUrl, AIRLOCK_TOKEN: gw.tokens[as], NO_COLOR: '1' },
  });
}

async function run(args: string[], as: MysqlPrincipal = 'agent') {
  const p = airlock(args, as);
  const exit = await p.waitForExit(90_000);
  return { code: exit.code, stdout: p.stdout(), stderr: p.stderr() };
}

describe('airlock exec on a MySQL connection', { skip }, () => {
  test('the connection list names the MySQL listener', { timeout: TEST_TIMEOUT }, async () => {
    const res = await gw.api<{ connections: { name: string; mysql?: { port: number } }[] }>(
      'GET',
      '/api/v1/connections',
      undefined,
      'agent',
    );
    const c = res.body.connections.find((x) => x.name === MYSQL_CONNECTION);
    assert.equal(c?.mysql?.port, gw.mysql.port);
  });

  test('a read prints rows as a table, and as JSON', { timeout: TEST_TIMEOUT }, async () => {
    const table = await run([
      'exec',
      MYSQL_CONNECTION,
      '--',
      'SELECT id, total FROM orders WHERE id <= 2 ORDER BY id',
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /id \| total/);
    assert.match(table.stdout, /1 \| 7\.25/);
    assert.match(table.stdout, /\(2 rows\)/);
    const json = await run([
      'exec',
      '--json',
      MYSQL_CONNECTION,
      '--',
      'SELECT id, customer FROM orders WHERE id = 3',
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), [{ id: 3, customer: 'Customer 4' }]);
  });

  test('several statements: each result in turn', { timeout: TEST_TIMEOUT }, async () => {
    const res = await run([
      'exec',
      MYSQL_CONNECTION,
      '--',
      'SELECT 1 AS a; SELECT id FROM orders WHERE id = 5',
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^a\n-\n1\n\(1 row\)\nid\n--\n 5\n\(1 row\)\n$/);
  });

  test('a held write shows its request id, and runs once approved', { timeout: TEST_TIMEOUT }, async () => {
    const p = airlock(['exec', MYSQL_CONNECTION, '--', 'DELETE FROM orders WHERE id = 44']);
    const m = await p.waitForOutput(
      /waiting for approval: request (\d+) — approve it at (\S+)/,
      60_000,
      'stderr',
    );
    const id = Number(m[1]);
    assert.match(m[2]!, new RegExp(`/requests/${id}$`));
    const pending = await gw.api<{ request: { status: string; protocol: string; summary: string } }>(
      'GET',
      `/api/v1/requests/${id}`,
      undefined,
      'alice',
    );
    assert.equal(pending.body.request.status, 'pending');
    assert.equal(pending.body.request.protocol, 'mysql');
    assert.equal(pending.body.request.summary, 'DELETE FROM orders WHERE id = 44');
    const ok = await gw.api('POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.equal(ok.status, 200, ok.text);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /OK, 1 row affected/);
  });

  test('a denied statement fails with the reason', { timeout: TEST_TIMEOUT }, async () => {
    const res = await run(['exec', MYSQL_CONNECTION, '--', 'DROP TABLE orders']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /error: denied by Airlock: schema drops go through the migration pipeline/);
  });

  test('a requester lists only its own requests', { timeout: TEST_TIMEOUT }, async () => {
    const own = await gw.api('GET', '/api/v1/requests?status=all&principal=agent', undefined, 'agent');
    assert.equal(own.status, 200, own.text);
    const others = await gw.api('GET', '/api/v1/requests?status=all&principal=alice', undefined, 'agent');
    assert.equal(others.status, 403);
    const all = await gw.api('GET', '/api/v1/requests?status=all', undefined, 'agent');
    assert.equal(all.status, 403);
  });
});

describe('airlock policy test on a MySQL connection', { skip }, () => {
  const policyTest = async (sql: string) => {
    const res = await run([
      'policy',
      'test',
      '-c',
      join(gw.dir, 'airlock.yaml'),
      '--as',
      'agent',
      '--connection',
      MYSQL_CONNECTION,
      '--json',
      sql,
    ]);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as {
      effect: string;
      kind: string;
      rule: { name: string };
      reason?: string;
      parts: { kind: string; statement: string | null }[];
    };
  };

  test('MySQL syntax is read by the MySQL classifier', { timeout: TEST_TIMEOUT }, async () => {
    const read = await policyTest('SELECT `id` FROM `orders` WHERE id = 1 # the first one');
    assert.equal(read.effect, 'allow');
    assert.equal(read.kind, 'read');
    assert.equal(read.parts[0]!.statement, 'SelectStmt');
    const hidden = await policyTest('SELECT 1; /*!50000 DROP TABLE orders */');
    assert.equal(hidden.effect, 'deny');
    assert.equal(hidden.rule.name, 'no drops outside migrations');
    assert.deepEqual(
      hidden.parts.map((p) => p.statement),
      ['SelectStmt', 'DropStmt'],
    );
    const write = await policyTest('REPLACE INTO orders (id, customer, total) VALUES (1, "x", 1)');
    assert.equal(write.effect, 'review');
    assert.equal(write.kind, 'write');
  });

  test('USE of the connection name is shown as the listener runs it', { timeout: TEST_TIMEOUT }, async () => {
    const own = await policyTest('USE shop');
    assert.equal(own.effect, 'allow');
    assert.equal(own.kind, 'read');
    const inside = await policyTest('SELECT 1; USE shop');
    assert.equal(inside.effect, 'deny');
    assert.equal(inside.rule.name, 'USE does not switch connections');
    const schema = await policyTest('USE information_schema');
    assert.equal(schema.effect, 'review');
    assert.equal(schema.kind, 'admin');
  });

  test('LOAD DATA LOCAL INFILE is refused when the connection takes no local files', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const res = await policyTest("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE orders");
    assert.equal(res.effect, 'deny');
    assert.equal(res.rule.name, 'local_infile is off');
    assert.match(res.reason ?? '', /LOAD DATA LOCAL INFILE is off for connection "shop"/);
  });
});
