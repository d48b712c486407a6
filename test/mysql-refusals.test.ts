/**
 * What the MySQL listener refuses or rewrites on its own, before the Gate is asked, against a
 * private MariaDB with the real `mariadb` client: LOAD DATA LOCAL INFILE on a connection without
 * `local_infile: true` (audited like any denial), and USE naming a connection rather than a schema.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type mysql from 'mysql2/promise';
import { eventually, pendingRequestWhere } from './support/eventually.ts';
import {
  MYSQL_CONNECTION,
  type MysqlPrincipal,
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbCli,
  mariadbGatewayHooks,
  mysqlThrough,
  type PrivateMariadb,
} from './support/mariadb.ts';
import type { ManagedProcess } from './support/processes.ts';

const TEST_TIMEOUT = 120_000;
const skip = mariadbAvailable();

let target: PrivateMariadb;
let gw: MysqlTestGateway;

// A second MySQL connection, so `USE warehouse` names a connection and not a schema.
mariadbGatewayHooks(
  skip,
  (t, g) => {
    target = t;
    gw = g;
  },
  (target) => ({
    connectionExtra: `  warehouse:
    type: mysql
    upstream:
      host: 127.0.0.1
      port: ${target.port}
      database: app
      user: app_rw
      password: "\${file:./secrets/upstream.password}"
    default: deny
`,
  }),
);

interface AuditRecord {
  type: string;
  data: Record<string, unknown>;
}

/** The `mariadb` CLI through Airlock (batch mode, tab-separated output). */
function cli(
  sql: string,
  o: { who?: MysqlPrincipal; database?: string; args?: string[] } = {},
): ManagedProcess {
  return mariadbCli(gw, sql, o);
}

interface RequestView {
  id: number;
  connection: string;
  summary: string;
  kind: string;
  principal: { name: string };
}

function pendingRequest(text: string): Promise<RequestView> {
  return pendingRequestWhere(gw.api, `a pending request for ${text}`, (r: RequestView) =>
    r.summary.includes(text),
  );
}

async function connectAgent(): Promise<mysql.Connection> {
  const c = await mysqlThrough(gw, 'agent', { multipleStatements: true });
  c.on('error', () => {});
  return c;
}

async function audit(): Promise<AuditRecord[]> {
  const res = await gw.api<{ records: AuditRecord[] }>('GET', '/api/v1/audit?limit=1000', undefined, 'alice');
  assert.equal(res.status, 200, res.text);
  return res.body.records;
}

describe('refusals before the Gate', { skip, timeout: 5 * 60_000 }, () => {
  test('LOAD DATA LOCAL INFILE refused for local_infile: false is audited as a denial', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sql = "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE audit_notes (note)";
    const p = cli(sql, { args: ['--local-infile=1'] });
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(
      p.stderr(),
      /ERROR 1142 \(42000\).*denied by Airlock: LOAD DATA LOCAL INFILE is off for connection "shop"/,
    );
    const denied = await eventually('the audited refusal', async () =>
      (await audit()).find((r) => r.type === 'action.denied' && r.data.summary === sql),
    );
    assert.equal(denied.data.protocol, 'mysql');
    assert.equal(denied.data.connection, MYSQL_CONNECTION);
    assert.equal(denied.data.kind, 'transfer');
    assert.equal(denied.data.rule, 'local_infile is off');
    assert.equal(denied.data.decision, 'deny');
    assert.match(String(denied.data.reason), /LOAD DATA LOCAL INFILE is off for connection "shop"/);
    assert.match(String(denied.data.fingerprint), /^[0-9a-f]{16,}$/);
    assert.deepEqual(denied.data.principal, { name: 'agent', kind: 'agent', groups: ['agents'] });
    // The same fields as a denial the Gate makes.
    const byRule = await eventually('a policy denial', async () => {
      const drop = cli('DROP TABLE orders');
      await drop.waitForExit(60_000);
      return (await audit()).find(
        (r) => r.type === 'action.denied' && r.data.summary === 'DROP TABLE orders',
      );
    });
    assert.deepEqual(Object.keys(denied.data).sort(), Object.keys(byRule.data).sort());
    const rows = (await target.query('SELECT COUNT(*) AS n FROM audit_notes')) as { n: number | string }[];
    assert.equal(Number(rows[0]!.n), 0, 'nothing was loaded');
  });

  test('USE of the connection name selects its database (client command and text)', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // The client's own `use` command sends COM_INIT_DB.
    const p = cli('USE shop; SELECT DATABASE() AS db');
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.equal(p.stdout(), 'db\napp\n');
    // A driver sends it as text (COM_QUERY).
    const c = await connectAgent();
    try {
      await c.query('USE shop');
      const [db] = await c.query('SELECT DATABASE() AS db');
      assert.deepEqual(db, [{ db: 'app' }]);
    } finally {
      await c.end();
    }
  });

  test('USE of another connection name is refused and switches nothing', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const refused =
      /denied by Airlock: USE warehouse does not switch Airlock connections: this session stays on "shop"; connect again with "warehouse" as the database name/;
    const p = cli('USE warehouse; SELECT DATABASE() AS db');
    assert.notEqual((await p.waitForExit(60_000)).code, 0);
    assert.match(p.stderr(), /ERROR 1142 \(42000\)/);
    assert.match(p.stderr(), refused);
    const c = await connectAgent();
    try {
      await assert.rejects(c.query('USE warehouse'), refused);
      // The session stays usable, on its own database.
      const [db] = await c.query('SELECT DATABASE() AS db');
      assert.deepEqual(db, [{ db: 'app' }]);
    } finally {
      await c.end();
    }
    const refusals = await eventually('the audited refusals', async () => {
      const r = (await audit()).filter(
        (x) => x.type === 'action.denied' && x.data.rule === 'USE does not switch connections',
      );
      return r.length >= 2 ? r : undefined;
    });
    assert.ok(refusals.every((r) => r.data.protocol === 'mysql' && r.data.connection === 'shop'));
    // Named as the database at login, it is that connection (whose default is deny).
    const w = cli('SELECT DATABASE() AS warehouse_db', { database: 'warehouse' });
    assert.notEqual((await w.waitForExit(60_000)).code, 0);
    const denied = await eventually('the denial on warehouse', async () =>
      (await audit()).find(
        (r) => r.type === 'action.denied' && String(r.data.summary).includes('warehouse_db'),
      ),
    );
    assert.equal(denied.data.connection, 'warehouse');
  });

  test('USE of the connection name inside several statements is refused with how to send it', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await connectAgent();
    try {
      await assert.rejects(
        c.query('SELECT 1; USE shop'),
        /USE shop selects this connection's database only when sent on its own; send it alone, or write USE `app`/,
      );
      const [rows] = await c.query('USE shop');
      assert.equal((rows as { affectedRows: number }).affectedRows, 0);
      const [db] = await c.query('SELECT DATABASE() AS db');
      assert.deepEqual(db, [{ db: 'app' }]);
    } finally {
      await c.end();
    }
  });

  test('USE of a schema on the target is an ordinary statement, judged and held', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = cli('USE information_schema; SELECT DATABASE() AS db');
    const req = await pendingRequest('USE information_schema');
    assert.equal(req.kind, 'admin');
    assert.equal(req.principal.name, 'agent');
    const ok = await gw.api('POST', `/api/v1/requests/${req.id}/approve`, {}, 'alice');
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.equal(p.stdout(), 'db\ninformation_schema\n');
  });
});
