/**
 * Blast radius: a held write carries the tables it touches and the planner's estimate of the
 * rows it would touch, read on a side connection with EXPLAIN (never executed). Real psql through a test gateway to a
 * private PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';

interface Req {
  id: number;
  summary: string;
  estimatedRows: number | null;
  parts: { kind: string; tables: string[] }[];
}

describe('blast radius for reviewers', { timeout: 120_000 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;

  before(async () => {
    upstream = await startPostgres();
    await upstream.psql('ANALYZE orders', { db: 'app' });
    gw = await startTestGateway(upstream);
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  async function held(sqlStart: string): Promise<Req> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const res = await gw.api<{ requests: Req[] }>('GET', '/api/v1/requests', undefined, 'alice');
      const r = res.body.requests.find((x) => x.summary.startsWith(sqlStart));
      if (r) return r;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    throw new Error(`no request for ${sqlStart}`);
  }

  test('a held DELETE shows the estimated rows, and planning it changed nothing', async () => {
    const before = await upstream.psql('SELECT count(*) FROM orders', { db: 'app' });
    const psql = psqlCommand(gw.target('agent'), 'DELETE FROM orders WHERE id > 0');
    const r = await held('DELETE FROM orders WHERE id > 0');
    assert.equal(typeof r.estimatedRows, 'number');
    const total = Number(before.match(/\d+/)![0]);
    assert.ok(
      r.estimatedRows! > total / 2 && r.estimatedRows! <= total * 2,
      `${r.estimatedRows} for ${total} rows`,
    );
    const deny = await gw.api('POST', `/api/v1/requests/${r.id}/deny`, { reason: 'too broad' }, 'alice');
    assert.equal(deny.status, 200);
    await psql.waitForExit(20_000);
    assert.equal(await upstream.psql('SELECT count(*) FROM orders', { db: 'app' }), before);
  });

  test('a narrow UPDATE estimates few rows; a statement that cannot be planned safely gets none', async () => {
    const one = psqlCommand(gw.target('agent'), 'UPDATE orders SET total = total WHERE id = 3');
    const r1 = await held('UPDATE orders SET total = total WHERE id = 3');
    assert.ok(r1.estimatedRows !== null && r1.estimatedRows <= 2, String(r1.estimatedRows));
    const ddl = psqlCommand(
      gw.target('agent'),
      'UPDATE orders SET total = 1; ALTER TABLE orders ADD COLUMN x int',
    );
    const r2 = await held('UPDATE orders SET total = 1; ALTER');
    assert.equal(r2.estimatedRows, null);
    for (const id of [r1.id, r2.id])
      await gw.api('POST', `/api/v1/requests/${id}/deny`, { reason: 'no' }, 'alice');
    await Promise.all([one.waitForExit(20_000), ddl.waitForExit(20_000)]);
  });

  test('a held write names the tables it touches, those it joins and those inside a CTE', async () => {
    const join =
      'UPDATE orders SET total = total FROM customers c WHERE orders.customer = c.name AND c.id = 1';
    const cte = 'WITH d AS (DELETE FROM orders WHERE id = 5 RETURNING customer) SELECT * FROM d';
    const callers = [join, cte].map((sql) => psqlCommand(gw.target('agent'), sql));
    const [joined, hidden] = [await held(join), await held(cte)];
    assert.deepEqual(
      joined.parts.map((p) => [p.kind, [...p.tables].sort()]),
      [['write', ['customers', 'orders']]],
    );
    assert.deepEqual(
      hidden.parts.map((p) => [p.kind, p.tables]),
      [['write', ['orders']]],
    );
    for (const r of [joined, hidden])
      await gw.api('POST', `/api/v1/requests/${r.id}/deny`, { reason: 'no' }, 'alice');
    await Promise.all(callers.map((c) => c.waitForExit(20_000)));
  });
});
