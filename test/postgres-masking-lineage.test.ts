/**
 * Column masking that follows values: a masked column laundered through functions, operators,
 * casts, aggregates, CTEs, subqueries, set operations, views, user functions, cursors and
 * prepared statements never comes out unmasked; COPY TO STDOUT is masked field by field (binary
 * COPY tuple by tuple), every other byte as PostgreSQL wrote it. Real psql and pg through Airlock to a private PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { serialize } from 'pg-protocol';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { type PsqlTarget, pgThrough, psqlCommand } from './support/psql.ts';
import { dataRowValues, WireClient } from './support/wire.ts';

// Names are qualified on purpose: only the table's own column is masked by rule, so nothing here
// is masked merely for being called `email`.
const MASKING = `
masking:
  - connections: [app]
    columns: ["public.customers.email", "customers.card_number"]
    strategy: partial
    exempt: { principals: [alice] }
`;

const LEAK = /customer\d+@example\.com|4111 1111 1111/i;

describe('column masking follows values', { timeout: 300_000 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;

  before(async () => {
    upstream = await startPostgres();
    await upstream.psql(
      `INSERT INTO customers VALUES (21, E'tab\\there back\\\\slash\\nnew "q", comma', 'customer21@example.com', NULL);
       CREATE VIEW contacts AS SELECT id, email AS contact, name FROM customers;
       CREATE VIEW contacts2 AS SELECT id, upper(contact) AS shout FROM contacts;
       CREATE MATERIALIZED VIEW mailbox AS SELECT id, lower(email) AS m FROM customers;
       CREATE FUNCTION mail_of(int) RETURNS text LANGUAGE sql STABLE AS 'SELECT email FROM customers WHERE id = $1';
       CREATE FUNCTION all_mail() RETURNS TABLE (x text) LANGUAGE sql STABLE AS 'SELECT email FROM customers';
       GRANT SELECT ON contacts, contacts2, mailbox TO app_rw;`,
      { db: 'app' },
    );
    gw = await startTestGateway(upstream, { extra: MASKING });
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  async function psqlOut(t: PsqlTarget, sql: string, extra: string[] = ['-A', '-t']): Promise<string> {
    const p = psqlCommand(t, sql, [...extra, '-v', 'ON_ERROR_STOP=1']);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, `${sql}\n${p.stderr()}`);
    return p.stdout();
  }

  const direct = (): PsqlTarget => ({
    host: upstream.host,
    port: upstream.port,
    database: 'app',
    token: upstream.app.password,
    user: upstream.app.user,
  });

  // Each is a way to get customers.email (or card_number) out without RowDescription naming it.
  const LAUNDERING = [
    'SELECT lower(email) FROM customers WHERE id = 1',
    "SELECT email || '' FROM customers WHERE id = 1",
    'SELECT substr(email, 1, 50) FROM customers WHERE id = 1',
    'SELECT email::varchar(100) FROM customers WHERE id = 1',
    'SELECT upper(email) AS name FROM customers WHERE id = 1',
    'SELECT coalesce(email, card_number) FROM customers WHERE id = 1',
    'SELECT CASE WHEN id > 0 THEN email ELSE name END FROM customers WHERE id = 1',
    "SELECT string_agg(email, ',') FROM customers",
    'SELECT ARRAY[email, card_number] FROM customers WHERE id = 1',
    'SELECT row_to_json(c) FROM customers c WHERE id = 1',
    'SELECT to_jsonb(c.*) FROM customers c WHERE id = 1',
    'SELECT c FROM customers c WHERE id = 1',
    'SELECT (c).email FROM customers c WHERE id = 1',
    "SELECT format('%s/%s', email, card_number) FROM customers WHERE id = 1",
    "SELECT replace(email, '@', ' at ') FROM customers WHERE id = 1",
    "SELECT encode(convert_to(email, 'UTF8'), 'escape') FROM customers WHERE id = 1",
    'WITH c AS (SELECT email AS e FROM customers) SELECT lower(e) FROM c',
    "WITH c(x) AS (SELECT email FROM customers) SELECT x || '' FROM c",
    'WITH c AS (SELECT lower(email) FROM customers) SELECT * FROM c',
    'SELECT * FROM (SELECT lower(email) AS q, id FROM customers) s WHERE id = 1',
    'SELECT s.* FROM (SELECT email || card_number AS z FROM customers) s',
    'SELECT (SELECT email FROM customers WHERE id = 1) AS z',
    'SELECT x FROM customers, LATERAL (SELECT lower(email) AS x) l WHERE id = 1',
    "SELECT email FROM customers WHERE id = 1 UNION ALL SELECT 'x'",
    "SELECT 'x' UNION SELECT lower(email) FROM customers",
    "SELECT * FROM (VALUES ('a')) v(a) UNION ALL SELECT card_number FROM customers",
    'WITH RECURSIVE r(e, n) AS (SELECT email, 1 FROM customers WHERE id = 1 UNION ALL SELECT e, n + 1 FROM r WHERE n < 2) SELECT lower(e) FROM r',
    'SELECT contact FROM contacts WHERE id = 1',
    'SELECT lower(contact) FROM contacts WHERE id = 1',
    'SELECT * FROM contacts WHERE id = 1',
    'SELECT shout FROM contacts2 WHERE id = 1',
    'SELECT m FROM mailbox WHERE id = 1',
    'SELECT mail_of(1)',
    'SELECT * FROM all_mail()',
    'SELECT x FROM all_mail() AS a',
    'SELECT email COLLATE "C" FROM customers WHERE id = 1',
    'SELECT (SELECT array_agg(email) FROM customers)',
    'SELECT x FROM customers c JOIN LATERAL unnest(ARRAY[c.email]) AS u(x) ON true WHERE id = 1',
    'SELECT x FROM customers c(i, n, e), LATERAL (SELECT lower(e) AS x) l WHERE i = 1',
    'SELECT x FROM customers c(i, n, e) CROSS JOIN LATERAL unnest(ARRAY[e]) AS u(x) WHERE i = 1',
    'BEGIN; DECLARE cur CURSOR FOR SELECT lower(email) FROM customers; FETCH 2 FROM cur; COMMIT',
    'SELECT t.e FROM customers AS t(i, n, e) WHERE i = 1',
    'SELECT max(email) OVER () FROM customers LIMIT 1',
    "SELECT json_build_object('m', email)::text FROM customers WHERE id = 1",
  ];

  test(`${LAUNDERING.length} ways to launder a masked column: none leaks`, async () => {
    assert.ok(LAUNDERING.length >= 20);
    for (const sql of LAUNDERING) {
      const out = await psqlOut(gw.target('agent'), sql);
      assert.doesNotMatch(out, LEAK, sql);
      assert.match(out, /\*\*\*/, `${sql}: masked values come back (${out})`);
      // The exempt principal sees the value: the statement really did carry it.
      assert.match(await psqlOut(gw.target('alice'), sql), /customer\d|4111/i, `${sql} (alice)`);
    }
  });

  test('errors and notices that quote a masked value are masked; others keep their words', async () => {
    const echoes = [
      'SELECT email::int FROM customers WHERE id = 1',
      'SELECT 1 FROM customers WHERE email::int = 1',
      'SELECT contact::date FROM contacts WHERE id = 1',
      'SELECT mail_of(1)::int',
      "SELECT ('{' || email)::json FROM customers WHERE id = 1",
      'INSERT INTO customers (id, name, email) SELECT id + 100, NULL, email FROM customers WHERE id = 1',
    ];
    for (const sql of echoes) {
      const p = psqlCommand(gw.target('bench'), sql);
      assert.notEqual((await p.waitForExit(60_000)).code, 0, sql);
      assert.match(p.stderr(), /ERROR/, sql);
      assert.doesNotMatch(p.stderr(), LEAK, `${sql}: ${p.stderr()}`);
    }
    const c = await pgThrough(gw.target('agent'));
    try {
      await assert.rejects(c.query('SELECT email::int FROM customers WHERE id = $1', [4]), (err: Error) => {
        assert.doesNotMatch(err.message, LEAK);
        assert.match(err.message, /invalid input syntax for type integer/);
        return true;
      });
      // Words the caller wrote, and errors of statements that read nothing masked, are kept.
      await assert.rejects(c.query('SELECT nosuch FROM customers'), /column "nosuch" does not exist/);
      await assert.rejects(c.query("SELECT 'abc'::int"), /invalid input syntax for type integer: "abc"/);
    } finally {
      await c.end();
    }
  });

  test('the extended protocol (pg, prepared with parameters) is traced the same way', async () => {
    const c = await pgThrough(gw.target('agent'));
    try {
      const r = await c.query('SELECT lower(email) AS a, lower(name) AS b FROM customers WHERE id = $1', [2]);
      assert.deepEqual(r.rows[0], { a: 'c********@example.com', b: 'customer 2' });
      const again = await c.query({
        name: 'named',
        text: 'SELECT email || $1 AS a FROM customers WHERE id = 3',
        values: ['!'],
      });
      assert.doesNotMatch(JSON.stringify(again.rows), LEAK);
    } finally {
      await c.end();
    }
  });

  test('a protocol Bind of a SQL PREPAREd statement, and Execute of a SQL cursor, are traced too', async () => {
    const w = await WireClient.connect(gw.target('agent'));
    try {
      w.write(serialize.query('PREPARE p2 AS SELECT lower(email) AS e, id FROM customers WHERE id = 1'));
      await w.until('Z');
      // A statement Airlock did not see parsed is judged unknown, and held: approve it.
      w.write(
        serialize.bind({ statement: 'p2' }),
        serialize.describe({ type: 'P', name: '' }),
        serialize.execute({}),
        serialize.sync(),
      );
      await approvePending();
      const frames = await w.until('Z', 60_000);
      const rows = frames.filter((f) => f.type === 0x44).map(dataRowValues);
      assert.deepEqual(rows, [['c********@example.com', '1']]);
      w.write(
        serialize.query('BEGIN; DECLARE c2 CURSOR FOR SELECT upper(email) AS e FROM customers WHERE id = 2'),
      );
      await w.until('Z');
      w.write(serialize.execute({ portal: 'c2' }), serialize.sync());
      await approvePending();
      const more = await w.until('Z', 60_000);
      const values = more.filter((f) => f.type === 0x44).map(dataRowValues);
      assert.deepEqual(values, [['C********@EXAMPLE.COM']]);
      w.write(serialize.query('COMMIT'));
      await w.until('Z');
    } finally {
      w.end();
    }
  });

  async function approvePending(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await gw.api<{ requests: { id: number }[] }>(
        'GET',
        '/api/v1/requests?status=pending',
        undefined,
        'alice',
      );
      const r = res.body.requests[0];
      if (r) {
        const ok = await gw.api('POST', `/api/v1/requests/${r.id}/approve`, {}, 'alice');
        assert.equal(ok.status, 200, ok.text);
        return;
      }
      assert.ok(Date.now() < deadline, 'no request to approve');
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  test('columns that draw on nothing masked stay as they are', async () => {
    const sql =
      "SELECT id, lower(name), name || '!', count(*) OVER (), now() IS NOT NULL FROM customers WHERE id <= 2 ORDER BY id";
    assert.equal(await psqlOut(gw.target('agent'), sql), await psqlOut(direct(), sql));
    const v = 'SELECT id, name FROM contacts WHERE id = 3';
    assert.equal(await psqlOut(gw.target('agent'), v), await psqlOut(direct(), v));
  });

  test('COPY TO STDOUT is masked field by field; other bytes as PostgreSQL wrote them', async () => {
    const cases: [string, (string | null)[]][] = [
      // The fields each line has, masked ones marked by null.
      ['COPY customers TO STDOUT (FORMAT csv)', ['id', 'name', null, null]],
      ['COPY customers TO STDOUT', ['id', 'name', null, null]],
      ['COPY customers TO STDOUT (HEADER)', ['id', 'name', null, null]],
      ["COPY customers (name, email) TO STDOUT (FORMAT csv, HEADER, DELIMITER ';')", ['name', null]],
      ['COPY (SELECT id, lower(email), name FROM customers ORDER BY id) TO STDOUT', ['id', null, 'name']],
      [
        "COPY (SELECT * FROM contacts ORDER BY id) TO STDOUT (FORMAT csv, QUOTE '''', FORCE_QUOTE *)",
        ['id', null, 'name'],
      ],
      ['\\copy (select id, email, name from customers order by id) to stdout', ['id', null, 'name']],
      ['\\copy customers to stdout with (format csv)', ['id', 'name', null, null]],
    ];
    for (const [sql, shape] of cases) {
      const through = await psqlOut(gw.target('agent'), sql, []);
      const plain = await psqlOut(direct(), sql, []);
      assert.doesNotMatch(through, LEAK, sql);
      const csv = /csv/i.test(sql);
      const delimiter = sql.includes("DELIMITER ';'") ? ';' : csv ? ',' : '\t';
      const quote = !csv ? undefined : sql.includes("QUOTE ''''") ? "'" : '"';
      const a = records(through, delimiter, quote);
      const b = records(plain, delimiter, quote);
      assert.equal(a.length, b.length, sql);
      const header = /HEADER/.test(sql);
      let masked = 0;
      for (let i = 0; i < a.length; i++) {
        const fa = a[i]!;
        const fb = b[i]!;
        assert.equal(fa.length, fb.length, `${sql}: row ${i}`);
        for (let j = 0; j < fa.length; j++) {
          if (shape[j] === null && !(header && i === 0)) {
            if (fb[j] !== '' && fb[j] !== '\\N') masked++;
            assert.doesNotMatch(fa[j]!, LEAK);
          } else assert.equal(fa[j], fb[j], `${sql}: row ${i} field ${j}`);
        }
      }
      assert.ok(masked >= 1, `${sql}: something was masked`);
    }
    // Binary COPY: read tuple by tuple, masked through views and functions as well.
    for (const sql of [
      'COPY customers TO STDOUT (FORMAT binary)',
      'COPY (SELECT id, contact FROM contacts) TO STDOUT (FORMAT binary)',
      'COPY (SELECT mail_of(id) FROM customers) TO STDOUT (FORMAT binary)',
      'COPY (SELECT x FROM all_mail()) TO STDOUT (FORMAT binary)',
    ]) {
      const bin = psqlCommand(gw.target('agent'), sql, ['-A', '-t']);
      assert.equal((await bin.waitForExit(60_000)).code, 0, `${sql}\n${bin.stderr()}`);
      assert.ok(bin.stdout().startsWith('PGCOPY\n'), sql);
      assert.match(bin.stdout(), /c\*+@example\.com/, sql);
      assert.doesNotMatch(bin.stdout(), LEAK, sql);
    }
    const latin1 = psqlCommand(gw.target('agent'), "COPY customers TO STDOUT (ENCODING 'LATIN1')", [
      '-A',
      '-t',
    ]);
    assert.notEqual((await latin1.waitForExit(60_000)).code, 0);
    assert.match(latin1.stderr(), /ENCODING other than UTF8 cannot be masked/);
    assert.doesNotMatch(latin1.stdout(), LEAK);
  });
});

/** Rows of COPY output as raw fields (quoted fields kept with their quotes, newlines and all). */
function records(text: string, delimiter: string, quote: string | undefined): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of text) {
    if (quoted) {
      cur += ch;
      if (ch === quote) quoted = false;
    } else if (ch === quote) {
      quoted = true;
      cur += ch;
    } else if (ch === delimiter) {
      row.push(cur);
      cur = '';
    } else if (ch === '\n') {
      row.push(cur);
      rows.push(row);
      row = [];
      cur = '';
    } else cur += ch;
  }
  if (cur !== '' || row.length > 0) rows.push([...row, cur]);
  return rows;
}
