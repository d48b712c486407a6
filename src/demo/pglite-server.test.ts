import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { openDemoDatabase } from './database.ts';
import { lastReadyStatus, type PgliteServer, startPgliteServer } from './pglite-server.ts';

const run = promisify(execFile);
let db: PGlite;
let server: PgliteServer;

before(async () => {
  db = await openDemoDatabase();
  server = await startPgliteServer(db, { port: 0 });
});

after(async () => {
  await server.close();
  await db.close();
});

function client(): pg.Client {
  return new pg.Client({
    host: server.host,
    port: server.port,
    user: 'demo',
    database: 'demo',
    password: 'unused',
  });
}

test('the pg driver runs a SELECT with parameters against the seeded data', async () => {
  const c = client();
  await c.connect();
  try {
    const r = await c.query('SELECT id, email, card_number FROM customers WHERE id = $1', [3]);
    assert.equal(r.rows.length, 1);
    assert.match(r.rows[0].email, /@example\.com$/);
    const n = await c.query('SELECT count(*)::int AS n FROM orders');
    assert.equal(n.rows[0].n, 50);
  } finally {
    await c.end();
  }
});

test('a transaction holds other clients until it ends, and an error leaves the session usable', async () => {
  const a = client();
  const b = client();
  await a.connect();
  await b.connect();
  try {
    await a.query('BEGIN');
    await a.query("UPDATE orders SET status = 'held' WHERE id = 1");
    let bDone = false;
    const bRead = b.query('SELECT status FROM orders WHERE id = 1').then((r) => {
      bDone = true;
      return r.rows[0].status as string;
    });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(bDone, false, 'the other client waits while a transaction is open');
    await a.query('ROLLBACK');
    assert.notEqual(await bRead, 'held');

    await assert.rejects(a.query('SELECT * FROM no_such_table'), /no_such_table/);
    const r = await a.query('SELECT 1 AS one');
    assert.equal(r.rows[0].one, 1);
  } finally {
    await a.end();
    await b.end();
  }
});

test('a client that disconnects mid-transaction is rolled back', async () => {
  const a = client();
  await a.connect();
  await a.query('BEGIN');
  await a.query('DELETE FROM orders WHERE id = 2');
  // Drop the socket without COMMIT or Terminate.
  (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  a.on('error', () => {});
  const b = client();
  await b.connect();
  try {
    const r = await b.query('SELECT count(*)::int AS n FROM orders WHERE id = 2');
    assert.equal(r.rows[0].n, 1);
  } finally {
    await b.end();
  }
});

test('real psql talks to it: query, transaction and error', async () => {
  const conn = `host=${server.host} port=${server.port} dbname=demo user=demo sslmode=prefer`;
  const ok = await run(
    'psql',
    [conn, '-X', '-A', '-t', '-c', 'SELECT name FROM customers ORDER BY id LIMIT 1'],
    {
      env: { ...process.env, PGPASSWORD: 'x', PGCONNECT_TIMEOUT: '5' },
    },
  );
  assert.equal(ok.stdout.trim(), 'Ada Lovelace');
  const tx = await run(
    'psql',
    [
      conn,
      '-X',
      '-A',
      '-t',
      '-c',
      'BEGIN',
      '-c',
      "INSERT INTO orders (customer_id, total, status) VALUES (1, 1, 'x')",
      '-c',
      'ROLLBACK',
    ],
    { env: { ...process.env, PGPASSWORD: 'x' } },
  );
  assert.match(tx.stdout, /ROLLBACK/);
  await assert.rejects(
    run('psql', [conn, '-X', '-v', 'ON_ERROR_STOP=1', '-c', 'SELECT * FROM missing'], {
      env: { ...process.env, PGPASSWORD: 'x' },
    }),
    (err: { stderr: string }) => /relation "missing" does not exist/.test(err.stderr),
  );
});

test('lastReadyStatus finds the status of the final ReadyForQuery', () => {
  assert.equal(lastReadyStatus(Uint8Array.from([0x5a, 0, 0, 0, 5, 0x54])), 'T');
  assert.equal(lastReadyStatus(Uint8Array.from([0x31, 0, 0, 0, 4])), undefined);
});
