/**
 * MySQL/MariaDB through Airlock: a private mariadbd behind the gateway, driven by the real
 * `mariadb` command-line client and the `mysql2` driver (text and prepared statements). Every
 * test bounds its own waits; none asserts on speed.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { eventually, pendingRequestFrom } from './support/eventually.ts';
import {
  MYSQL_CONNECTION,
  type MysqlPrincipal,
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbCli,
  mariadbClient,
  mariadbGatewayHooks,
  mysqlThrough,
  type PrivateMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';
import type { ManagedProcess } from './support/processes.ts';

const TEST_TIMEOUT = 120_000;
const skip = mariadbAvailable();

let target: PrivateMariadb;
let gw: MysqlTestGateway;

mariadbGatewayHooks(skip, (t, g) => {
  target = t;
  gw = g;
});

interface RequestView {
  id: number;
  status: string;
  summary: string;
  kind: string;
  principal: { name: string };
  attributes?: Record<string, unknown>;
}

/** The `mariadb` CLI through Airlock (batch mode, tab-separated output). */
function cli(sql: string, o: Parameters<typeof mariadbCli>[2] = {}): ManagedProcess {
  return mariadbCli(gw, sql, o);
}

/** The same client straight to the target, for transparency comparisons. */
function cliDirect(sql: string): ManagedProcess {
  return mariadbClient(
    {
      port: target.port,
      user: target.app.user,
      password: target.app.password,
      database: target.app.database,
    },
    sql,
  );
}

function through(
  who: MysqlPrincipal = 'agent',
  extra: Partial<mysql.ConnectionOptions> = {},
): Promise<mysql.Connection> {
  return mysqlThrough(gw, who, extra).then((c) => {
    c.on('error', () => {});
    return c;
  });
}

function pendingRequest(principal: string, text: string): Promise<RequestView> {
  return pendingRequestFrom(gw.api, principal, text);
}

/** A promise's outcome without an unhandled rejection while the test does other things. */
function settle<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: Error & { errno?: number; sqlState?: string } }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: Error) => ({ ok: false as const, error }),
  );
}

async function rejected(p: Promise<unknown>): Promise<Error & { errno?: number; sqlState?: string }> {
  const r = await settle(p);
  assert.equal(r.ok, false, 'expected an error');
  return (r as { error: Error & { errno?: number; sqlState?: string } }).error;
}

async function rowExists(table: string, id: number): Promise<boolean> {
  const rows = (await target.query(`SELECT 1 FROM ${table} WHERE id = ${Number(id)}`)) as unknown[];
  return rows.length === 1;
}

describe('MySQL through Airlock', { skip, timeout: 10 * 60_000 }, () => {
  test('the mariadb client reads through Airlock', { timeout: TEST_TIMEOUT }, async () => {
    const p = cli('SELECT COUNT(*) AS n FROM orders');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout(), 'n\n50\n');
  });

  test('client output is identical direct and through Airlock for a corpus of scripts', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const scripts = [
      'SELECT id, customer, total FROM orders ORDER BY id LIMIT 10',
      'SELECT 1 AS a, NULL AS b, 2.5 AS c, "x\ty" AS d; SELECT 2',
      'SHOW TABLES',
      'DESCRIBE orders',
      'SELECT COUNT(*), SUM(total), MAX(id) FROM orders',
      'SELECT * FROM customers WHERE id IN (1, 2, 3) ORDER BY id',
      'SELECT REPEAT("a", 100000) AS big',
      'SELECT id FROM orders WHERE id > 1000',
      'SELECT no_such_column FROM orders',
      'SELECT 1; SELECT * FROM no_such_table; SELECT 3',
      'BEGIN; SELECT id FROM orders WHERE id = 1; COMMIT',
      'SELECT CONCAT("é", "ü", "😀") AS utf8',
    ];
    for (const sql of scripts) {
      const a = cliDirect(sql);
      const b = cli(sql);
      const [ea, eb] = await Promise.all([a.waitForExit(60_000), b.waitForExit(60_000)]);
      assert.equal(eb.code, ea.code, `exit code for ${sql}: ${b.output()}`);
      assert.equal(b.stdout(), a.stdout(), `stdout for ${sql}`);
      assert.equal(b.stderr(), a.stderr(), `stderr for ${sql}`);
    }
  });

  test('a DELETE is held until a reviewer approves it, then runs', { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(await rowExists('orders', 7));
    const p = cli('DELETE FROM orders WHERE id = 7');
    const req = await pendingRequest('agent', 'DELETE FROM orders WHERE id = 7');
    assert.equal(req.kind, 'write');
    // Held: nothing reached the target and the client is still waiting.
    assert.ok(await rowExists('orders', 7), 'the DELETE must not run before approval');
    assert.equal(p.hasExited(), false);
    const approved = await gw.api('POST', `/api/v1/requests/${req.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(await rowExists('orders', 7), false);
  });

  test('a reviewer\u2019s denial reaches the client with the reason, and the session stays usable', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('agent');
    try {
      const held = settle(c.query('DELETE FROM orders WHERE id = 8'));
      const req = await pendingRequest('agent', 'DELETE FROM orders WHERE id = 8');
      const denied = await gw.api(
        'POST',
        `/api/v1/requests/${req.id}/deny`,
        { reason: 'not during the freeze' },
        'alice',
      );
      assert.equal(denied.status, 200, denied.text);
      const err = await rejected(
        held.then((r) => (r.ok ? Promise.resolve(r.value) : Promise.reject(r.error))),
      );
      assert.equal(err.errno, 1142);
      assert.equal(err.sqlState, '42000');
      assert.match(err.message, /denied by Airlock: .*not during the freeze/);
      const [rows] = await c.query('SELECT COUNT(*) AS n FROM orders WHERE id = 8');
      assert.deepEqual(rows, [{ n: 1 }]);
    } finally {
      await c.end();
    }
  });

  test('a policy denial is shown by the mariadb client', { timeout: TEST_TIMEOUT }, async () => {
    const p = cli('DROP TABLE orders');
    assert.notEqual((await p.waitForExit(60_000)).code, 0);
    assert.match(
      p.stderr(),
      /ERROR 1142 \(42000\).*denied by Airlock: schema drops go through the migration pipeline/,
    );
  });

  test('executable comments and comment tricks do not hide statements', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('agent', { multipleStatements: true });
    try {
      for (const sql of [
        '/*!DROP*/ TABLE orders',
        '/*!50000 DROP TABLE orders */',
        '/*M!100000 DROP TABLE orders */',
        'SELECT 1 /*!50000 ; DROP TABLE orders */',
        'SELECT 1 --1; DROP TABLE orders',
        'SELECT 1; DROP TABLE orders',
        "SELECT '\\\\'; DROP TABLE orders; -- '",
        'SELECT 1 /* ; */; DROP TABLE `orders`',
      ]) {
        const err = await rejected(c.query(sql));
        assert.equal(err.errno, 1142, `${sql}: ${err.message}`);
        assert.match(err.message, /schema drops go through the migration pipeline/, sql);
      }
      // A string that only looks like a statement is a string.
      const [rows] = await c.query("SELECT 'x; DROP TABLE orders' AS s");
      assert.deepEqual(rows, [{ s: 'x; DROP TABLE orders' }]);
    } finally {
      await c.end();
    }
    assert.ok(await rowExists('orders', 1), 'orders still exists');
  });

  test('a held statement whose caller disconnects is cancelled; one nobody decides expires with an error', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('agent');
    void settle(c.query('DELETE FROM orders WHERE id = 20'));
    const req = await pendingRequest('agent', 'DELETE FROM orders WHERE id = 20');
    // mysql2 does not settle a query in flight when its connection is destroyed; nothing waits on it.
    c.destroy();
    const cancelled = await eventually('the request to be cancelled', async () => {
      const res = await gw.api<{ request: RequestView }>(
        'GET',
        `/api/v1/requests/${req.id}`,
        undefined,
        'alice',
      );
      return res.body.request.status === 'cancelled' ? res.body.request : undefined;
    });
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(await rowExists('orders', 20));

    const d = await through('agent');
    try {
      const err = await rejected(d.query("INSERT INTO audit_notes (note) VALUES ('never')"));
      assert.equal(err.errno, 1142);
      assert.match(err.message, /expired/);
      const [rows] = await d.query('SELECT 1 AS still');
      assert.deepEqual(rows, [{ still: 1 }]);
    } finally {
      await d.end();
    }
  });

  test('hold: retry answers at once with the request; once approved the same statement passes', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sql = "UPDATE customers SET name = 'Renamed' WHERE id = 3";
    const c = await through('agent');
    try {
      const err = await c.query(sql).then(
        () => assert.fail('must not run before approval'),
        (e: Error & { errno?: number }) => e,
      );
      assert.equal(err.errno, 1142);
      const m = /request (\d+)/.exec(err.message);
      assert.ok(m, err.message);
      assert.match(err.message, /approve it at http/);
      assert.equal((await gw.api('POST', `/api/v1/requests/${m[1]}/approve`, {}, 'alice')).status, 200);
      const [r] = await c.query(sql);
      assert.equal((r as mysql.ResultSetHeader).affectedRows, 1);
    } finally {
      await c.end();
    }
  });

  test('prepared statements: reads pass; a held write is bound to its parameters', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('agent');
    try {
      const [rows] = await c.execute('SELECT id, total FROM orders WHERE id = ?', [10]);
      assert.deepEqual(rows, [{ id: 10, total: '72.50' }]);
      const held = c.execute('DELETE FROM orders WHERE id = ?', [11]);
      held.catch(() => {});
      const req = await pendingRequest('agent', 'DELETE FROM orders WHERE id = ?');
      assert.deepEqual(req.attributes?.parameters, ['11']);
      assert.equal((await gw.api('POST', `/api/v1/requests/${req.id}/approve`, {}, 'bob')).status, 200);
      const [r] = await held;
      assert.equal((r as mysql.ResultSetHeader).affectedRows, 1);
      // The same statement with another value is a new request.
      const second = settle(c.execute('DELETE FROM orders WHERE id = ?', [12]));
      const req2 = await pendingRequest('agent', 'DELETE FROM orders WHERE id = ?');
      assert.notEqual(req2.id, req.id);
      assert.deepEqual(req2.attributes?.parameters, ['12']);
      assert.equal(
        (await gw.api('POST', `/api/v1/requests/${req2.id}/deny`, { reason: 'keep 12' }, 'bob')).status,
        200,
      );
      const r2 = await second;
      assert.ok(!r2.ok && /keep 12/.test(r2.error.message));
      assert.ok(await rowExists('orders', 12));
    } finally {
      await c.end();
    }
  });

  test('SQL-level PREPARE is judged by the prepared text; EXECUTE of it too', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('agent', { multipleStatements: true });
    try {
      const [r] = await c.query(
        "PREPARE s FROM 'SELECT COUNT(*) AS n FROM orders'; EXECUTE s; DEALLOCATE PREPARE s",
      );
      assert.ok(Array.isArray(r));
      const dropped = await rejected(c.query("PREPARE d FROM 'DROP TABLE orders'"));
      assert.match(dropped.message, /schema drops go through the migration pipeline/);
      // A name we never saw prepared is dynamic SQL of unknown effect: held for review, so refused here on deny.
      const held = settle(c.query('EXECUTE nothing_prepared'));
      const req = await pendingRequest('agent', 'EXECUTE nothing_prepared');
      assert.equal(req.kind, 'unknown');
      await gw.api('POST', `/api/v1/requests/${req.id}/deny`, { reason: 'unknown' }, 'alice');
      const outcome = await held;
      assert.ok(!outcome.ok && /denied by Airlock/.test(outcome.error.message));
    } finally {
      await c.end();
    }
  });

  test('LOAD DATA LOCAL INFILE is refused unless the connection turns it on', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = cli("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE audit_notes (note)", {
      args: ['--local-infile=1'],
    });
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /LOAD DATA LOCAL INFILE is off for connection "shop"/);
  });

  test('a wrong token is refused with a clear error', { timeout: TEST_TIMEOUT }, async () => {
    const p = cli('SELECT 1', { token: 'alk_not_a_real_token' });
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(
      p.stderr(),
      /ERROR 1045 \(28000\): Access denied by Airlock: the Airlock token was not recognised/,
    );
    await assert.rejects(
      mysql.createConnection({
        host: '127.0.0.1',
        port: gw.mysql.port,
        user: 'x',
        password: 'wrong',
        database: MYSQL_CONNECTION,
      }),
      (err: { errno?: number; message: string }) => {
        assert.equal(err.errno, 1045);
        assert.match(err.message, /Airlock token/);
        return true;
      },
    );
    // An unknown connection name says which ones exist.
    const q = cli('SELECT 1', { database: 'nope' });
    await q.waitForExit(60_000);
    assert.match(q.stderr(), /no MySQL connection "nope".*shop/);
  });

  test('COM_PING, COM_INIT_DB, COM_RESET_CONNECTION and COM_CHANGE_USER', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('agent');
    try {
      await c.ping();
      await c.query('USE app');

      await assert.rejects(
        c.changeUser({ user: 'other' }),
        /COM_CHANGE_USER is not supported through Airlock/,
      );
    } finally {
      c.destroy();
    }
    // The client's `use` command sends COM_INIT_DB; the connection's own name selects the target database.
    const u = cli('use shop; SELECT DATABASE() AS db');
    assert.equal((await u.waitForExit(60_000)).code, 0, u.output());
    assert.equal(u.stdout(), 'db\napp\n');
    const d = await through('agent');
    try {
      await d.reset();
      const [rows] = await d.query('SELECT 1 AS one');
      assert.deepEqual(rows, [{ one: 1 }]);
    } finally {
      await d.end();
    }
  });

  test('malformed packets close that connection with an error; the gateway keeps serving', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const garbage = [
      Buffer.from([0x01, 0x00, 0x00, 0x05, 0xff]),
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0xff, 0xff, 0xff, 0x01, ...Buffer.alloc(100)]),
      Buffer.from([0x20, 0x00, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, ...Buffer.alloc(28)]),
    ];
    for (const g of garbage) {
      await new Promise<void>((resolve) => {
        const s = connect(gw.mysql.port, '127.0.0.1');
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.once('data', () => s.end(g));
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 5000).unref();
      });
    }
    const p = cli('SELECT 1 AS still_up');
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
  });
});

describe('session recording', { skip, timeout: 5 * 60_000 }, () => {
  test('statements, decisions, results and errors are recorded and sealed in the audit chain', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through('eve');
    await c.query('SELECT COUNT(*) AS n FROM orders');
    await rejected(c.query('SELECT * FROM no_such_table'));
    await rejected(c.query('DROP TABLE orders'));
    await c.end();
    interface RecordingJson {
      id: string;
      principal?: string;
      protocol?: string;
      status: string;
      sha256?: string;
      auditSeq?: number;
    }
    const recording = await eventually('a sealed recording', async () => {
      const res = await gw.api<{ recordings: RecordingJson[] }>(
        'GET',
        `/api/v1/recordings?connection=${MYSQL_CONNECTION}`,
        undefined,
        'alice',
      );
      assert.equal(res.status, 200, res.text);
      const r = res.body.recordings.find((x) => x.principal === 'eve' && x.protocol === 'mysql');
      return r?.status === 'closed' ? r : undefined;
    });
    assert.match(recording.sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok(recording.auditSeq);
    const content = await fetch(`${gw.apiUrl}/api/v1/recordings/${recording.id}/content`, {
      headers: { authorization: `Bearer ${gw.tokens.alice}` },
    });
    assert.equal(content.status, 200);
    const events = (await content.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events[0]!.protocol, 'mysql');
    const types = events.slice(1).map((e) => `${e.type}${e.decision ? `:${e.decision}` : ''}`);
    assert.deepEqual(types, [
      'statement:allow',
      'result',
      'statement:allow',
      'error',
      'statement:deny',
      'end',
    ]);
    assert.equal(events.find((e) => e.type === 'error')?.code, 1146);
  });
});

describe('LOAD DATA LOCAL INFILE with local_infile: true', { skip, timeout: 5 * 60_000 }, () => {
  let gw2: MysqlTestGateway;
  let file: string;
  before(async () => {
    if (skip) return;
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    file = join(mkdtempSync(join(tmpdir(), 'airlock-infile-')), 'notes.txt');
    writeFileSync(file, 'first uploaded note\nsecond uploaded note\n');
    gw2 = await startMysqlTestGateway(target, { connectionExtra: '    local_infile: true\n' });
  });
  after(async () => {
    await gw2?.close();
  });

  test('is a transfer action: held, approved, then the client file reaches the table', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sql = `LOAD DATA LOCAL INFILE '${file}' INTO TABLE audit_notes (note)`;
    const p = cli(sql, { port: gw2.mysql.port, args: ['--local-infile=1'], token: gw2.tokens.agent });
    const req = await eventually('the held LOAD DATA', async () => {
      const res = await gw2.api<{ requests: RequestView[] }>(
        'GET',
        '/api/v1/requests?status=pending',
        undefined,
        'alice',
      );
      return res.body.requests.find((r) => r.summary.includes('LOAD DATA LOCAL'));
    });
    assert.equal(req.kind, 'transfer');
    assert.equal((await gw2.api('POST', `/api/v1/requests/${req.id}/approve`, {}, 'alice')).status, 200);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    const rows = (await target.query(
      "SELECT note FROM audit_notes WHERE note LIKE '%uploaded note' ORDER BY id",
    )) as { note: string }[];
    assert.deepEqual(
      rows.map((r) => r.note),
      ['first uploaded note', 'second uploaded note'],
    );
  });
});

describe('masking of result rows', { skip, timeout: 5 * 60_000 }, () => {
  let gw3: MysqlTestGateway;
  before(async () => {
    if (skip) return;
    gw3 = await startMysqlTestGateway(target, {
      extra: `masking:
  - connections: [${MYSQL_CONNECTION}]
    columns: ["customers.card_number", "orders.total"]
    detectors: [email]
    strategy: redact
    exempt: { groups: [dba] }
`,
    });
  });
  after(async () => {
    await gw3?.close();
  });

  const connectAs = (who: MysqlPrincipal) => mysqlThrough(gw3, who);

  test('text protocol: column rules and detectors, aliases do not escape; exempt groups see values', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await connectAs('agent');
    try {
      const [rows] = await c.query('SELECT id, name, email, card_number AS cn FROM customers WHERE id = 4');
      const r = (rows as Record<string, unknown>[])[0]!;
      assert.equal(r.name, 'Customer 4');
      assert.doesNotMatch(String(r.email), /customer4@example\.com/);
      assert.doesNotMatch(String(r.cn), /4111/);
      // A masked number column cannot carry text: it comes back NULL.
      const [orders] = await c.query('SELECT id, total FROM orders WHERE id = 2');
      assert.deepEqual(orders, [{ id: 2, total: null }]);
    } finally {
      await c.end();
    }
    const a = await connectAs('alice');
    try {
      const [rows] = await a.query('SELECT email, card_number FROM customers WHERE id = 4');
      assert.deepEqual(rows, [{ email: 'customer4@example.com', card_number: '4111 1111 1111 0004' }]);
    } finally {
      await a.end();
    }
  });

  test('binary protocol (prepared statements) is masked the same way', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await connectAs('agent');
    try {
      const [rows] = await c.execute(
        'SELECT id, email, card_number, total FROM customers JOIN orders USING (id) WHERE id = ?',
        [5],
      );
      const r = (rows as Record<string, unknown>[])[0]!;
      assert.equal(r.id, 5);
      assert.doesNotMatch(String(r.email), /customer5@example\.com/);
      assert.doesNotMatch(String(r.card_number), /4111/);
      assert.equal(r.total, null);
    } finally {
      await c.end();
    }
  });

  test('the mariadb client shows masked values', { timeout: TEST_TIMEOUT }, async () => {
    const p = cli('SELECT email FROM customers WHERE id = 6', {
      port: gw3.mysql.port,
      token: gw3.tokens.agent,
    });
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.doesNotMatch(p.stdout(), /customer6@example\.com/);
    assert.match(p.stdout(), /^email\n.+\n$/);
  });
});
