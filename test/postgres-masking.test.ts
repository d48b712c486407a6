/**
 * Masking of PostgreSQL results through the gateway, against a private PostgreSQL: column rules
 * resolved through the catalog, content detectors, text and binary formats, rows of an Execute
 * that was never described, COPY TO STDOUT, errors that echo values, and exempt principals.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough, psqlCommand } from './support/psql.ts';
import { dataRowValues, WireClient } from './support/wire.ts';

let upstream: PrivatePostgres;
let gw: TestGateway;

const MASKING = `
masking:
  - connections: [app]
    columns: ["*.email", "public.customers.card_number", "cards.pan"]
    strategy: partial
    exempt: { principals: [alice, bob] }
  - connections: [app]
    detectors: [email, credit_card, jwt]
    strategy: redact
    exempt: { principals: [alice] }
`;

before(async () => {
  upstream = await startPostgres();
  await upstream.psql(
    `CREATE TABLE cards (id int PRIMARY KEY, pan bigint, amount numeric(20,0), note text, doc jsonb);
     INSERT INTO cards VALUES (1, 4111111111111111, 4012888888881881, 'paid with 5555 5555 5555 4444 by x@example.com', '{"mail": "y@example.org"}'),
                              (2, 42, 7, 'nothing to see', '{}');
     ALTER TABLE cards OWNER TO app_rw;`,
    { db: 'app' },
  );
  gw = await startTestGateway(upstream, { extra: MASKING });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

async function psqlOut(who: 'agent' | 'alice' | 'bob', sql: string): Promise<string> {
  const p = psqlCommand(gw.target(who), sql, ['-A', '-t', '-v', 'ON_ERROR_STOP=1']);
  const exit = await p.waitForExit(60_000);
  assert.equal(exit.code, 0, p.stderr());
  return p.stdout();
}

test('column rules mask by source column, through aliases, with psql', async () => {
  const out = await psqlOut(
    'agent',
    'SELECT id, name, email, card_number AS c FROM customers ORDER BY id LIMIT 2',
  );
  assert.equal(
    out,
    [
      '1|Customer 1|c********@example.com|**** **** **** 0001',
      '2|Customer 2|c********@example.com|**** **** **** 0002',
      '',
    ].join('\n'),
  );
  // A computed column named like a masked one is matched by its name.
  assert.equal(await psqlOut('agent', "SELECT 'someone@corp.example' AS email"), 's******@corp.example\n');
});

test('detectors mask values in any column; numbers they flag become NULL', async () => {
  const out = await psqlOut('agent', 'SELECT note, amount, doc FROM cards WHERE id = 1');
  assert.equal(out, 'paid with [redacted credit_card] by [redacted email]||{"mail": "[redacted email]"}\n');
  assert.equal(await psqlOut('agent', 'SELECT note, amount FROM cards WHERE id = 2'), 'nothing to see|7\n');
});

test('exempt principals see the data as it is', async () => {
  const out = await psqlOut('alice', 'SELECT email, card_number FROM customers WHERE id = 1');
  assert.equal(out, 'customer1@example.com|4111 1111 1111 0001\n');
});

test('binary results stay valid: masked columns become text, flagged numbers NULL', async () => {
  const t = gw.target('agent');
  // `binary` asks for every result in binary format; the type definitions do not list it.
  const config = {
    host: t.host,
    port: t.port,
    database: t.database,
    user: 'agent',
    password: t.token,
    binary: true,
  };
  const c = new pg.Client(config as pg.ClientConfig);
  c.on('error', () => {});
  await c.connect();
  try {
    const r = await c.query('SELECT id, pan, amount, note, doc FROM cards WHERE id = $1', [1]);
    assert.deepEqual(r.rows[0], {
      id: 1,
      pan: '************1111',
      amount: null,
      note: 'paid with [redacted credit_card] by [redacted email]',
      // pg does not decode binary jsonb: the raw value shows the version byte is kept.
      doc: '\x01{"mail": "[redacted email]"}',
    });
    const ok = await c.query('SELECT id, amount FROM cards WHERE id = $1', [2]);
    assert.deepEqual(ok.rows[0], { id: 2, amount: 7 });
  } finally {
    await c.end();
  }
});

test('rows of an Execute without any Describe are masked too (drivers that cache descriptions)', async () => {
  const w = await WireClient.connect(gw.target('agent'));
  try {
    w.write(
      serialize.parse({ name: 's1', text: 'SELECT email, id FROM customers WHERE id = $1', types: [] }),
      serialize.bind({ statement: 's1', values: ['3'] }),
      serialize.execute({}),
      serialize.bind({ statement: 's1', values: ['4'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    const frames = await w.until('Z');
    const types = frames.map((f) => String.fromCharCode(f.type)).join('');
    assert.equal(types, '12DC2DCZ', 'the gateway’s own Describe answers are not passed on');
    const rows = frames.filter((f) => f.type === 0x44).map(dataRowValues);
    assert.deepEqual(rows, [
      ['c********@example.com', '3'],
      ['c********@example.com', '4'],
    ]);
    // An error in the middle of a pipeline: the target skips to Sync, and masking stays in step.
    w.write(
      serialize.bind({ statement: 's1', values: [] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.bind({ statement: 's1', values: ['5'] }),
      serialize.describe({ type: 'P', name: '' }),
      serialize.execute({}),
      serialize.sync(),
    );
    const after = await w.until('Z');
    assert.equal(after.map((f) => String.fromCharCode(f.type)).join(''), 'EZ');
    const next = await w.until('Z');
    assert.equal(next.map((f) => String.fromCharCode(f.type)).join(''), '2TDCZ');
    assert.deepEqual(dataRowValues(next[2]!), ['c********@example.com', '5']);
  } finally {
    w.end();
  }
});

test('COPY TO STDOUT: scanned by detectors, masked per column under column rules, in binary too', async () => {
  // bob is under the detectors only.
  const out = await psqlOut('bob', 'COPY (SELECT note FROM cards ORDER BY id) TO STDOUT');
  assert.equal(out, 'paid with [redacted credit_card] by [redacted email]\nnothing to see\n');
  const masked = await psqlOut('agent', 'COPY (SELECT * FROM customers WHERE id <= 2 ORDER BY id) TO STDOUT');
  assert.equal(
    masked,
    'Customer 1\tc********@example.com\t**** **** **** 0001\n'.replace(/^/, '1\t') +
      '2\tCustomer 2\tc********@example.com\t**** **** **** 0002\n',
  );
  // Binary: text and jsonb rewritten in place, the flagged bigint and numeric not sent at all.
  const p = psqlCommand(gw.target('bob'), 'COPY cards TO STDOUT (FORMAT binary)', ['-A', '-t']);
  const exit = await p.waitForExit(60_000);
  assert.equal(exit.code, 0, p.stderr());
  const binary = p.stdout();
  assert.ok(binary.startsWith('PGCOPY\n'));
  assert.match(binary, /paid with \[redacted credit_card\] by \[redacted email\]/);
  assert.match(binary, /\{"mail": "\[redacted email\]"\}/);
  assert.doesNotMatch(binary, /@example\.(com|org)/);
});

test('errors and notices that echo values are masked', async () => {
  const c = await pgThrough(gw.target('agent'));
  try {
    await assert.rejects(c.query("SELECT 'leak@example.com'::int"), (err: Error) => {
      assert.match(err.message, /\[redacted email\]/);
      assert.doesNotMatch(err.message, /leak@example\.com/);
      return true;
    });
    // The session is still in step after the error.
    const r = await c.query('SELECT email FROM customers WHERE id = 7');
    assert.equal(r.rows[0].email, 'c********@example.com');
  } finally {
    await c.end();
  }
});

test('SET airlock.unmask is a privilege action of its own; once approved the session sees data as it is', async () => {
  const c = await pgThrough(gw.target('agent'));
  try {
    const held = c.query('SET airlock.unmask = on');
    const request = await (async () => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const res = await gw.api<{
          requests: {
            id: number;
            kind: string;
            principal: { name: string } | string;
            parts?: { statement?: string }[];
          }[];
        }>('GET', '/api/v1/requests?status=pending', undefined, 'alice');
        const r = res.body.requests?.find((x) => x.kind === 'privilege');
        if (r) return r;
        assert.ok(Date.now() < deadline, 'the unmask request never appeared');
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    // Masked while the request waits, in another session of the same principal.
    assert.equal(
      await psqlOut('agent', 'SELECT email FROM customers WHERE id = 9'),
      'c********@example.com\n',
    );
    const approved = await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    await held;
    const r = await c.query('SELECT email, card_number FROM customers WHERE id = 9');
    assert.deepEqual(r.rows[0], { email: 'customer9@example.com', card_number: '4111 1111 1111 0009' });
  } finally {
    await c.end();
  }
  // Other sessions stay masked.
  assert.equal(await psqlOut('agent', 'SELECT email FROM customers WHERE id = 9'), 'c********@example.com\n');
});

test('masking keeps backpressure: a caller that stops reading does not make the gateway buffer', async () => {
  const w = await WireClient.connect(gw.target('agent'));
  try {
    w.socket.pause();
    // About 200 MB of rows, every one masked.
    w.write(
      serialize.query(
        "SELECT 'someone' || i || '@example.com' AS email, repeat('x', 2000) FROM generate_series(1, 100000) AS i",
      ),
    );
    const base = process.memoryUsage();
    let grown = 0;
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const m = process.memoryUsage();
      grown = Math.max(grown, m.arrayBuffers + m.heapUsed - (base.arrayBuffers + base.heapUsed));
    }
    assert.ok(
      grown < 64 * 1024 * 1024,
      `the gateway buffered ${Math.round(grown / 1048576)} MB for a paused caller`,
    );
    w.socket.resume();
    const frames = await w.until('Z', 120_000);
    const rows = frames.filter((f) => f.type === 0x44);
    assert.equal(rows.length, 100000);
    assert.equal(dataRowValues(rows[99999]!)[0], `s${'*'.repeat(12)}@example.com`);
  } finally {
    w.end();
  }
});
