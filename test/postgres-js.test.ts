/**
 * The `postgres` driver (postgres.js) through Airlock, against a private PostgreSQL: simple
 * queries, its default named prepared statements reused across calls, a held write approved,
 * a denied statement carrying the reason, and values of many types decoded the same whether the
 * driver talks to PostgreSQL directly or through Airlock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';

describe('postgres.js through Airlock', { timeout: 180_000 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;
  const notices: string[] = [];
  let direct: postgres.Sql;
  let through: postgres.Sql;

  before(async () => {
    upstream = await startPostgres();
    gw = await startTestGateway(upstream);
    direct = postgres({
      host: upstream.host,
      port: upstream.port,
      database: upstream.app.database,
      username: upstream.app.user,
      password: upstream.app.password,
      max: 1,
      onnotice: () => {},
    });
    const t = gw.target('agent');
    through = postgres({
      host: t.host,
      port: t.port,
      database: t.database,
      username: 'agent',
      password: t.token,
      max: 1,
      connect_timeout: 15,
      onnotice: (n) => notices.push(String(n.message)),
    });
  });

  after(async () => {
    await through?.end({ timeout: 5 });
    await direct?.end({ timeout: 5 });
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  test('simple queries, several statements in one message', async () => {
    const rows = await through`SELECT id, email FROM customers WHERE id <= 2 ORDER BY id`;
    assert.deepEqual(
      rows.map((r) => ({ ...r })),
      [
        { id: 1, email: 'customer1@example.com' },
        { id: 2, email: 'customer2@example.com' },
      ],
    );
    const multi = await through.unsafe('SELECT 1 AS a; SELECT 2 AS b').simple();
    assert.deepEqual(
      (multi as unknown as postgres.RowList<postgres.Row[]>[]).map((r) => [...r].map((x) => ({ ...x }))),
      [[{ a: 1 }], [{ b: 2 }]],
    );
  });

  test('prepared statements (the default) are reused with new parameters', async () => {
    for (const id of [3, 4, 5, 3]) {
      const [r] = await through`SELECT id, name FROM customers WHERE id = ${id}`;
      assert.deepEqual({ ...r }, { id, name: `Customer ${id}` });
    }
    // The driver's statement cache on the Airlock session: one server-side statement per text.
    const prepared =
      await through`SELECT name FROM pg_prepared_statements WHERE statement LIKE ${'%FROM customers WHERE id = $1%'}`;
    assert.equal(prepared.length, 1);
  });

  test('a held write is approved and then runs; a denied one carries the reason', async () => {
    const before = await direct`SELECT total FROM orders WHERE id = 7`;
    // Queries are lazy until awaited or executed.
    const pending = through`UPDATE orders SET total = total + 1 WHERE id = ${7}`.execute();
    const request = await (async () => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const res = await gw.api<{ requests: { id: number; summary: string }[] }>(
          'GET',
          '/api/v1/requests?status=pending',
          undefined,
          'alice',
        );
        const r = res.body.requests.find((x) => x.summary.startsWith('UPDATE orders SET total = total + 1'));
        if (r) return r;
        assert.ok(Date.now() < deadline, 'no request appeared');
        await new Promise((ok) => setTimeout(ok, 100));
      }
    })();
    assert.ok(
      notices.some((n) => n.includes(`request ${request.id}`)),
      'the driver got the waiting notice',
    );
    const ok = await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    assert.equal(ok.status, 200, ok.text);
    const r = await pending;
    assert.equal(r.count, 1);
    assert.equal(r.command, 'UPDATE');
    const afterRows = await direct`SELECT total FROM orders WHERE id = 7`;
    assert.equal(Number(afterRows[0]!.total), Number(before[0]!.total) + 1);

    await assert.rejects(through.unsafe('DROP TABLE orders'), (err: postgres.PostgresError) => {
      assert.equal(err.code, '42501');
      assert.match(err.message, /schema drops go through the migration pipeline/);
      return true;
    });
    // The session carries on after the denial.
    const [one] = await through`SELECT ${1}::int AS one`;
    assert.equal(one!.one, 1);
  });

  test('values of many types decode identically directly and through Airlock', async () => {
    const query = (sql: postgres.Sql) => sql`
      SELECT ${42}::int2 AS i2, ${2147483647}::int4 AS i4, ${'9007199254740993'}::int8 AS i8,
             ${1.5}::float4 AS f4, ${Math.PI}::float8 AS f8, ${'12345678901234567890.0123'}::numeric AS n,
             ${true}::bool AS b, ${'tëxt ☃'}::text AS t, ${'pad'}::char(5) AS c, ${'vc'}::varchar(10) AS vc,
             ${new Date('2024-02-29T12:34:56.789Z')}::timestamptz AS tstz, '2024-02-29 12:34:56'::timestamp AS ts,
             '2024-02-29'::date AS d, '12:34:56.5'::time AS tm, '1 year 2 mons 3 days 04:05:06'::interval AS iv,
             ${Buffer.from([0, 1, 2, 255])}::bytea AS by, ${sql.json({ a: [1, 2, { b: null }] })}::jsonb AS j,
             '{"x": 1}'::json AS js, ${'9a4b6c1e-2f3d-4e5a-8b7c-6d5e4f3a2b1c'}::uuid AS u,
             ARRAY[1, 2, NULL]::int[] AS ai, ARRAY['a', 'b c', NULL, '"q"']::text[] AS at,
             '192.168.0.1/24'::inet AS ip, '(1,2)'::point AS pt, '[1,5)'::int4range AS r,
             NULL::text AS nul, 'NaN'::float8 AS nan, 'infinity'::date::text AS inf,
             ${[1, 2, 3]}::int[] AS pa
    `;
    const a = await query(direct);
    const b = await query(through);
    assert.deepEqual(
      [...b].map((r) => ({ ...r })),
      [...a].map((r) => ({ ...r })),
    );
    assert.deepEqual(
      b.columns.map((c) => [c.name, c.type]),
      a.columns.map((c) => [c.name, c.type]),
    );
    // A large result streams through in order.
    const many = await through`SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g`;
    assert.equal(many.length, 20000);
    assert.equal(many[19999]!.g, 20000);
  });
});
