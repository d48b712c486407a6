/**
 * Classification checked against a real PostgreSQL: every corpus text classified `read` is run on
 * the target and must leave it exactly as it was; functions the classifier does not know are
 * judged by what pg_proc says they are (immutable and stable pass as reads, volatile ones are
 * writes, missing ones stay unknown).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { kindOfParts } from '../src/core/action.ts';
import { classifySql, initClassifier } from '../src/protocols/postgres/classify.ts';
import { POSTGRES_EVASIONS } from './corpus/postgres-evasions.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';

let upstream: PrivatePostgres;
let gw: TestGateway;

const OBJECTS = `
CREATE TABLE t (id int PRIMARY KEY, a int, b int, c text);
INSERT INTO t SELECT i, i, i, 'row ' || i FROM generate_series(1, 10) i;
CREATE TABLE s_source (id int PRIMARY KEY);
CREATE SEQUENCE s;
CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
CREATE UNIQUE INDEX mv_id ON mv (id);
CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, abalance int);
CREATE FUNCTION safe_double(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
CREATE FUNCTION flip(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
CREATE FUNCTION count_t() RETURNS bigint STABLE LANGUAGE sql AS 'SELECT count(*) FROM t';
CREATE FUNCTION bump() RETURNS int VOLATILE LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO audit_notes (note) VALUES ('bumped'); RETURN 1; END$$;
`;

/** Everything a statement could change that outlives it: relations, rows, sequences, roles, functions. */
const SNAPSHOT = `
SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
  SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || c.relowner::text || ':' || coalesce(c.relacl::text, '')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 't:' || md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM t
  UNION ALL SELECT 'notes:' || count(*) FROM audit_notes
  UNION ALL SELECT 'customers:' || md5(string_agg(customers::text, ',' ORDER BY id)) FROM customers
  UNION ALL SELECT 's:' || last_value || is_called FROM s
  UNION ALL SELECT 'roles:' || string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles
  UNION ALL SELECT 'procs:' || count(*) FROM pg_proc
  UNION ALL SELECT 'lo:' || count(*) FROM pg_largeobject_metadata
) q (x)`;

before(async () => {
  await initClassifier();
  upstream = await startPostgres();
  await upstream.psql(OBJECTS, { db: 'app', user: 'app_rw' });
  gw = await startTestGateway(upstream, {
    connectionDefault: 'deny',
    rules: `
rules:
  - name: reads are free
    connections: [app]
    kinds: [read]
    effect: allow
  - name: definitions pass, so a schema change can go through the gateway
    connections: [app]
    kinds: [schema]
    effect: allow
  - name: writes are refused here
    kinds: [write]
    effect: deny
    reason: writes are refused in this test
`,
  });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

test('no corpus text classified read changes the database', async () => {
  const reads = POSTGRES_EVASIONS.filter((c) => {
    const r = classifySql(c.sql);
    return !r.empty && kindOfParts(r.parts) === 'read';
  });
  assert.ok(reads.length >= 30, `only ${reads.length} read cases`);
  const before = await upstream.psql(SNAPSHOT, { db: 'app', user: 'app_rw' });
  for (const c of reads) {
    // Errors are fine (the corpus names objects that need not exist); changes are not.
    await upstream.psql(c.sql, { db: 'app', user: 'app_rw' }).catch(() => undefined);
    const now = await upstream.psql(SNAPSHOT, { db: 'app', user: 'app_rw' });
    assert.equal(now, before, `${c.note}: ${JSON.stringify(c.sql)} changed the database`);
  }
  // The snapshot does see a change.
  await upstream.psql('UPDATE t SET a = a + 1 WHERE id = 1', { db: 'app', user: 'app_rw' });
  assert.notEqual(await upstream.psql(SNAPSHOT, { db: 'app', user: 'app_rw' }), before);
});

async function through(sql: string): Promise<{ code: number | null; out: string; err: string }> {
  const p = psqlCommand(gw.target('agent'), sql, ['-A', '-t', '-v', 'ON_ERROR_STOP=1']);
  const exit = await p.waitForExit(60_000);
  return { code: exit.code, out: p.stdout(), err: p.stderr() };
}

test('functions are judged by their volatility on the target', async () => {
  const immutable = await through('SELECT safe_double(21)');
  assert.equal(immutable.code, 0, immutable.err);
  assert.equal(immutable.out, '42\n');
  const stable = await through('SELECT count_t()');
  assert.equal(stable.code, 0, stable.err);
  assert.equal(stable.out, '10\n');

  const notes = async () => (await upstream.psql('SELECT count(*) FROM audit_notes', { db: 'app' })).trim();
  const n = await notes();
  const volatile = await through('SELECT bump()');
  assert.notEqual(volatile.code, 0);
  assert.match(volatile.err, /writes are refused in this test/);
  assert.equal(await notes(), n, 'the volatile function did not run');

  const missing = await through('SELECT no_such_function()');
  assert.notEqual(missing.code, 0);
  assert.match(missing.err, /denied by Airlock/);
  assert.doesNotMatch(missing.err, /does not exist/, 'unknown functions never reach the target');
});

test('a function redefined outside the gateway is judged anew once its cached answer expires', async () => {
  assert.equal((await through('SELECT safe_double(1)')).out, '2\n');
  // Redefined outside the gateway: seen once the short function cache expires.
  await upstream.psql(
    `CREATE OR REPLACE FUNCTION safe_double(int) RETURNS int VOLATILE LANGUAGE sql AS 'SELECT $1 * 2'`,
    { db: 'app', user: 'app_rw' },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await through('SELECT safe_double(1)');
    if (r.code !== 0) {
      assert.match(r.err, /writes are refused in this test/);
      break;
    }
    assert.ok(Date.now() < deadline, 'the new volatility was never seen');
    await new Promise((res) => setTimeout(res, 1000));
  }
});

test('volatile built-ins known to be harmless pass as reads', async () => {
  const r = await through(
    'SELECT random() >= 0, clock_timestamp() IS NOT NULL, gen_random_uuid() IS NOT NULL',
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 't|t|t\n');
});

test('a function redefined through the gateway is judged anew by the next statement', async () => {
  // Judged immutable, and the answer cached.
  assert.equal((await through('SELECT flip(1)')).out, '2\n');
  const redefine = await through(
    `CREATE OR REPLACE FUNCTION flip(int) RETURNS int VOLATILE LANGUAGE sql AS 'SELECT $1 * 2'`,
  );
  assert.equal(redefine.code, 0, redefine.err);
  // The schema change dropped the cached answer: no waiting for it to expire.
  const after = await through('SELECT flip(1)');
  assert.notEqual(after.code, 0);
  assert.match(after.err, /writes are refused in this test/);
});
