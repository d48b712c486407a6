/**
 * Exact dry run of held DML (connection option `dry_run: true`): the request carries the rows the
 * statement would touch, counted by running it in a transaction that is rolled back; the table
 * is unchanged until a reviewer approves, and then the statement runs for real. Statements whose
 * effects a rollback might not undo are not dry run, and the request says why.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough, psqlCommand } from './support/psql.ts';

interface Req {
  id: number;
  summary: string;
  estimatedRows: number | null;
  dryRun: { rows: number | null; note: string | null; skipped: string | null } | null;
}

describe('exact dry run of held DML', { timeout: 180_000 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;

  before(async () => {
    upstream = await startPostgres();
    await upstream.psql(
      `CREATE TABLE ledger (id int GENERATED ALWAYS AS IDENTITY, v int);
       CREATE TABLE watched (id int, v int);
       INSERT INTO watched VALUES (1, 1), (2, 2);
       CREATE FUNCTION watched_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
       CREATE TRIGGER watched_touch BEFORE UPDATE ON watched FOR EACH ROW EXECUTE FUNCTION watched_touch();
       CREATE TABLE parent (id int PRIMARY KEY);
       CREATE TABLE child (id int, parent int REFERENCES parent ON DELETE CASCADE);
       INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1);
       CREATE TRIGGER child_touch BEFORE DELETE ON child FOR EACH ROW EXECUTE FUNCTION watched_touch();
       ALTER TABLE parent OWNER TO app_rw; ALTER TABLE child OWNER TO app_rw;
       ALTER TABLE ledger OWNER TO app_rw; ALTER TABLE watched OWNER TO app_rw;
       ANALYZE orders;`,
      { db: 'app' },
    );
    gw = await startTestGateway(upstream, { connection: '    dry_run: true' });
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  async function held(sqlStart: string): Promise<Req> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const res = await gw.api<{ requests: Req[] }>(
        'GET',
        '/api/v1/requests?status=pending',
        undefined,
        'alice',
      );
      const r = res.body.requests.find((x) => x.summary.startsWith(sqlStart));
      if (r) return r;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    throw new Error(`no request for ${sqlStart}`);
  }

  const count = async (table: string) =>
    Number((await upstream.psql(`SELECT count(*) FROM ${table}`, { db: 'app' })).match(/\d+/)![0]);

  test('a held DELETE shows the exact rows; the table is unchanged until approved, then it applies', async () => {
    const before = await count('orders');
    const psql = psqlCommand(gw.target('agent'), 'DELETE FROM orders WHERE id <= 17');
    const r = await held('DELETE FROM orders WHERE id <= 17');
    assert.deepEqual(r.dryRun, { rows: 17, note: null, skipped: null });
    assert.equal(typeof r.estimatedRows, 'number', 'the planner estimate is still given');
    assert.equal(await count('orders'), before, 'the dry run was rolled back');
    const ok = await gw.api('POST', `/api/v1/requests/${r.id}/approve`, {}, 'alice');
    assert.equal(ok.status, 200, ok.text);
    const exit = await psql.waitForExit(30_000);
    assert.equal(exit.code, 0, psql.stderr());
    assert.match(psql.stdout(), /DELETE 17/);
    assert.equal(await count('orders'), before - 17);
  });

  test('an INSERT that draws identity values says the sequence is not given back', async () => {
    const psql = psqlCommand(
      gw.target('agent'),
      'INSERT INTO ledger (v) SELECT g FROM generate_series(1, 5) g',
    );
    const r = await held('INSERT INTO ledger');
    assert.equal(r.dryRun?.rows, 5);
    assert.match(r.dryRun?.note ?? '', /sequence/);
    assert.equal(await count('ledger'), 0);
    await gw.api('POST', `/api/v1/requests/${r.id}/deny`, { reason: 'no' }, 'alice');
    await psql.waitForExit(30_000);
    assert.equal(await count('ledger'), 0);
  });

  test('not dry run: triggers, sequences called directly, parameters; the request says why', async () => {
    const cases: [string, RegExp][] = [
      ['UPDATE watched SET v = v + 1', /triggers/],
      ['DELETE FROM parent WHERE id = 1', /referencing it\) has triggers/],
      ["UPDATE orders SET total = nextval('audit_notes_id_seq') WHERE id = 30", /nextval/],
      ['UPDATE orders SET total = total; ALTER TABLE orders ADD COLUMN x int', /only INSERT, UPDATE, DELETE/],
    ];
    for (const [sql, why] of cases) {
      const psql = psqlCommand(gw.target('agent'), sql);
      const r = await held(sql.slice(0, 30));
      assert.equal(r.dryRun?.rows ?? null, null, sql);
      assert.match(r.dryRun?.skipped ?? '', why, sql);
      await gw.api('POST', `/api/v1/requests/${r.id}/deny`, { reason: 'no' }, 'alice');
      await psql.waitForExit(30_000);
    }
    const c = await pgThrough(gw.target('agent'));
    c.on('error', () => {});
    try {
      const q = c.query('DELETE FROM orders WHERE id = $1', [40]).catch((e: Error) => e);
      const r = await held('DELETE FROM orders WHERE id = $1');
      assert.match(r.dryRun?.skipped ?? '', /parameters/);
      await gw.api('POST', `/api/v1/requests/${r.id}/deny`, { reason: 'no' }, 'alice');
      assert.ok((await q) instanceof Error);
    } finally {
      await c.end();
    }
    assert.equal(
      (await upstream.psql('SELECT last_value, is_called FROM audit_notes_id_seq', { db: 'app' })).trim(),
      '1|f',
      'the sequence was never advanced',
    );
  });

  test('a held statement that waits for a lock is not dry run, and nothing is left locked', async () => {
    const locker = await upstream.client({ db: 'app' });
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT * FROM orders WHERE id = 45 FOR UPDATE');
      const psql = psqlCommand(gw.target('agent'), 'UPDATE orders SET total = 0 WHERE id = 45');
      const r = await held('UPDATE orders SET total = 0 WHERE id = 45');
      assert.match(r.dryRun?.skipped ?? '', /lock/);
      await locker.query('ROLLBACK');
      await gw.api('POST', `/api/v1/requests/${r.id}/approve`, {}, 'alice');
      const exit = await psql.waitForExit(30_000);
      assert.equal(exit.code, 0, psql.stderr());
      assert.match(psql.stdout(), /UPDATE 1/);
    } finally {
      await locker.end();
    }
  });
});
