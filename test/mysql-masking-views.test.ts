/**
 * MySQL/MariaDB masking through views: the server names the view, not the masked table column
 * under it, as a view column's source. A private mariadbd behind Airlock, driven by mysql2 (text
 * and prepared statements) and the `mariadb` command-line client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mysql from 'mysql2/promise';
import {
  MYSQL_CONNECTION,
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbCli,
  mariadbGatewayHooks,
  mysqlThrough,
  type PrivateMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';

const TEST_TIMEOUT = 120_000;
const skip = mariadbAvailable();

let target: PrivateMariadb;
let gw: MysqlTestGateway;

mariadbGatewayHooks(
  skip,
  (t, g) => {
    target = t;
    gw = g;
  },
  {
    extra: `masking:
  - connections: [${MYSQL_CONNECTION}]
    columns: ["customers.card_number"]
    strategy: redact
`,
  },
);

const CARD = /4111 1111 1111/;

async function withAgent(run: (c: mysql.Connection) => Promise<void>): Promise<void> {
  const c = await mysqlThrough(gw, 'agent');
  c.on('error', () => {});
  try {
    await run(c);
  } finally {
    await c.end();
  }
}

describe('masking through views', { skip, timeout: 5 * 60_000 }, () => {
  before(async () => {
    if (skip) return;
    await target.query('CREATE VIEW app.cards AS SELECT id, name, card_number AS cn FROM app.customers');
    await target.query('CREATE VIEW app.cards_again AS SELECT id AS cid, cn AS c2 FROM app.cards');
    await target.query(
      "CREATE VIEW app.tagged AS SELECT c.id, CONCAT('#', c.card_number) AS tag, c.name FROM app.customers c",
    );
    await target.query(
      'CREATE VIEW app.joined AS SELECT o.id AS oid, o.customer, k.cn FROM app.orders o JOIN app.cards k ON k.id = o.id',
    );
    await target.query(
      'CREATE VIEW app.nested AS SELECT c.id, (SELECT card_number FROM app.customers d WHERE d.id = c.id) AS sub FROM app.customers c',
    );
  });

  test('text protocol: a view column over a masked column is masked, the view’s other columns pass', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    await withAgent(async (c) => {
      const [rows] = await c.query('SELECT id, name, cn FROM cards WHERE id = 3');
      const r = (rows as Record<string, unknown>[])[0]!;
      assert.equal(r.id, 3);
      assert.equal(r.name, 'Customer 3');
      assert.equal(typeof r.cn, 'string');
      assert.doesNotMatch(String(r.cn), CARD);
      const [aliased] = await c.query('SELECT cn AS plain FROM app.cards WHERE id = 4');
      assert.doesNotMatch(JSON.stringify(aliased), CARD);
      // A view of a view.
      const [again] = await c.query('SELECT cid, c2 FROM cards_again WHERE cid = 5');
      const a = (again as Record<string, unknown>[])[0]!;
      assert.equal(a.cid, 5);
      assert.doesNotMatch(String(a.c2), CARD);
      // A computed view column is masked as the columns it reads; plain ones next to it pass.
      const [tagged] = await c.query('SELECT id, tag, name FROM tagged WHERE id = 6');
      const t = (tagged as Record<string, unknown>[])[0]!;
      assert.equal(t.id, 6);
      assert.equal(t.name, 'Customer 6');
      assert.doesNotMatch(String(t.tag), CARD);
      // A view over a table and a view: each column is judged by where it comes from.
      const [joined] = await c.query('SELECT oid, customer, cn FROM joined WHERE oid = 2');
      const j = (joined as Record<string, unknown>[])[0]!;
      assert.equal(j.oid, 2);
      assert.equal(j.customer, 'Customer 3');
      assert.doesNotMatch(String(j.cn), CARD);
      const [nested] = await c.query('SELECT * FROM nested WHERE id = 7');
      assert.doesNotMatch(JSON.stringify(nested), CARD);
      // A table next to the views is judged as before.
      const [plain] = await c.query('SELECT id, name FROM customers WHERE id = 8');
      assert.deepEqual(plain, [{ id: 8, name: 'Customer 8' }]);
    });
  });

  test('binary protocol (prepared statements) is masked through views the same way', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    await withAgent(async (c) => {
      const [rows] = await c.execute('SELECT id, name, cn FROM cards WHERE id = ?', [9]);
      const r = (rows as Record<string, unknown>[])[0]!;
      assert.equal(r.id, 9);
      assert.equal(r.name, 'Customer 9');
      assert.doesNotMatch(String(r.cn), CARD);
      const [again] = await c.execute('SELECT cid, c2 FROM cards_again WHERE cid = ?', [10]);
      const a = (again as Record<string, unknown>[])[0]!;
      assert.equal(a.cid, 10);
      assert.doesNotMatch(String(a.c2), CARD);
    });
  });

  test('the mariadb client sees the view column masked', { timeout: TEST_TIMEOUT }, async () => {
    const q = mariadbCli(gw, 'SELECT id, name, cn FROM cards WHERE id = 11');
    assert.equal((await q.waitForExit(60_000)).code, 0, q.output());
    assert.doesNotMatch(q.stdout(), CARD);
    assert.match(q.stdout(), /^id\tname\tcn\n11\tCustomer 11\t.+\n$/);
  });

  test('a view made after the session looked its name up is still seen as a view', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    await withAgent(async (c) => {
      await assert.rejects(c.query('SELECT id, cn FROM late_cards WHERE id = 12'));
      await target.query('CREATE VIEW app.late_cards AS SELECT id, card_number AS cn FROM app.customers');
      const [rows] = await c.query('SELECT id, cn FROM late_cards WHERE id = 12');
      const r = (rows as Record<string, unknown>[])[0]!;
      assert.equal(r.id, 12);
      assert.doesNotMatch(String(r.cn), CARD);
    });
  });
});

describe('when views cannot be looked up', { skip, timeout: 5 * 60_000 }, () => {
  let one: MysqlTestGateway | undefined;
  before(async () => {
    if (skip) return;
    // One connection at a time: the session's own, never the side connection that looks up views.
    await target.query(
      "CREATE USER 'app_one'@'%' IDENTIFIED BY 'one-secret' WITH MAX_USER_CONNECTIONS 1; GRANT SELECT ON app.* TO 'app_one'@'%'",
    );
    one = await startMysqlTestGateway(target, {
      upstreamUser: { user: 'app_one', password: 'one-secret' },
      extra: `masking:
  - connections: [${MYSQL_CONNECTION}]
    columns: ["customers.card_number"]
    strategy: redact
`,
    });
  });
  after(async () => {
    await one?.close();
  });

  test('every column of a named table or view gets the strictest rule (fail closed)', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await mysqlThrough(one!, 'agent');
    c.on('error', () => {});
    try {
      const [rows] = await c.query('SELECT name, cn FROM cards WHERE id = 13');
      const r = (rows as Record<string, unknown>[])[0]!;
      assert.notEqual(r.name, 'Customer 13');
      assert.doesNotMatch(String(r.cn), CARD);
      const [bin] = await c.execute('SELECT name, cn FROM cards WHERE id = ?', [13]);
      assert.doesNotMatch(JSON.stringify(bin), /Customer 13|4111/);
      const [table] = await c.query('SELECT name FROM customers WHERE id = 13');
      assert.doesNotMatch(JSON.stringify(table), /Customer 13/);
      // Values with no table behind them are not held back.
      const [constant] = await c.query("SELECT 'x' AS k");
      assert.deepEqual(constant, [{ k: 'x' }]);
    } finally {
      await c.end();
    }
  });
});
