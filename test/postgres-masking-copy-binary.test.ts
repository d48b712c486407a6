/**
 * Binary COPY TO STDOUT through a masked connection, against a private PostgreSQL: psql's \copy
 * in binary format of a table and of a query, each file loaded back on PostgreSQL itself (COPY
 * FROM) to show it is valid and which values changed; and the CopyData the pg driver reads, whose
 * unmasked fields must be byte for byte those of a direct binary COPY.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { BinaryCopyReader } from '../src/protocols/postgres/copy-binary.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough, psqlCommand } from './support/psql.ts';

let upstream: PrivatePostgres;
let gw: TestGateway;
let dir: string;

const MASKING = `
masking:
  - connections: [app]
    columns: ["staff.email", "staff.salary"]
    strategy: partial
    exempt: { principals: [alice, bob] }
  - connections: [app]
    detectors: [email, credit_card]
    strategy: redact
    exempt: { principals: [alice] }
`;

before(async () => {
  upstream = await startPostgres();
  await upstream.psql(
    `CREATE TABLE staff (id int PRIMARY KEY, email text NOT NULL, salary int, note varchar(40), born date, card bigint);
     INSERT INTO staff VALUES (1, 'ann@example.com', 5100, 'first', '1980-02-03', 7),
                              (2, 'bo@corp.example', NULL, NULL, NULL, 4111111111111111),
                              (3, 'cy@example.org', -42, 'ünïcode ☃', '2001-12-31', NULL);
     ALTER TABLE staff OWNER TO app_rw;
     CREATE TABLE loaded (LIKE staff);
     CREATE TABLE loaded_query (id int, email text, s int, note varchar(40));`,
    { db: 'app' },
  );
  gw = await startTestGateway(upstream, { extra: MASKING });
  dir = mkdtempSync(join(tmpdir(), 'airlock-copy-binary-'));
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function copyThrough(who: 'agent' | 'bob', command: string): Promise<void> {
  const p = psqlCommand(gw.target(who), command, ['-X', '-v', 'ON_ERROR_STOP=1']);
  const exit = await p.waitForExit(60_000);
  assert.equal(exit.code, 0, p.stderr());
}

/** Loads a binary file into a scratch table on PostgreSQL itself and returns its rows as text. */
async function load(table: string, file: string): Promise<string> {
  await upstream.psql(`TRUNCATE ${table}`, { db: 'app' });
  await upstream.psql(`\\copy ${table} from '${file}' with (format binary)`, { db: 'app' });
  return upstream.psql(`SELECT * FROM ${table} ORDER BY id`, { db: 'app' });
}

/** psql's unaligned output as rows of fields. */
function rows(out: string): string[][] {
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('|'));
}

test('psql \\copy of a table in binary: masked text masked, masked integer NULL, the rest as it is', async () => {
  const direct = join(dir, 'direct.bin');
  const masked = join(dir, 'masked.bin');
  await upstream.psql(`\\copy staff to '${direct}' with (format binary)`, { db: 'app' });
  await copyThrough('agent', `\\copy staff to '${masked}' with (format binary)`);
  const fromDirect = await load('loaded', direct);
  assert.match(fromDirect, /ann@example\.com/);
  const fromMasked = await load('loaded', masked);
  const d = rows(fromDirect);
  const m = rows(fromMasked);
  assert.equal(m.length, 3);
  assert.deepEqual(
    m.map((r) => [r[1], r[2]]),
    [
      ['a**@example.com', ''],
      ['b*@corp.example', ''],
      ['c*@example.org', ''],
    ],
  );
  // id, note, born as they are; the card number in a bigint a detector flags is NULL.
  assert.deepEqual(
    m.map((r) => [r[0], r[3], r[4], r[5]]),
    d.map((r) => [r[0], r[3], r[4], r[1] === 'bo@corp.example' ? '' : r[5]]),
  );
  for (const secret of ['ann@example.com', 'bo@corp.example', 'cy@example.org'])
    assert.ok(!readFileSync(masked).includes(Buffer.from(secret)), `${secret} was sent`);
});

test('psql \\copy of a query in binary: the query’s output types are learned, masked by lineage', async () => {
  const file = join(dir, 'query.bin');
  await copyThrough(
    'agent',
    `\\copy (SELECT id, lower(email), salary + 1 AS s, note FROM staff ORDER BY id) to '${file}' with (format binary)`,
  );
  const out = await load('loaded_query', file);
  assert.deepEqual(rows(out), [
    ['1', 'a**@example.com', '', 'first'],
    ['2', 'b*@corp.example', '', ''],
    ['3', 'c*@example.org', '', 'ünïcode ☃'],
  ]);
});

/**
 * COPY TO STDOUT through the pg driver, read the way COPY stream libraries do: a submittable
 * query whose CopyData chunks are collected as they arrive.
 */
class CopyOut {
  readonly #text: string;
  readonly #chunks: Buffer[] = [];
  #error: Error | undefined;
  readonly result: Promise<Buffer>;
  #settle!: (e: Error | undefined) => void;

  constructor(text: string) {
    this.#text = text;
    this.result = new Promise((res, rej) => {
      this.#settle = (e) => (e ? rej(e) : res(Buffer.concat(this.#chunks)));
    });
  }
  submit(connection: { query(text: string): void }): void {
    connection.query(this.#text);
  }
  handleCopyData(msg: { chunk: Buffer }): void {
    this.#chunks.push(msg.chunk);
  }
  handleCommandComplete(): void {}
  handleError(err: Error): void {
    this.#error = err;
  }
  handleReadyForQuery(): void {
    this.#settle(this.#error);
  }
}

/** The tuples of a binary COPY read with the pg driver, raw field bytes as hex (NULL: null). */
async function driverCopy(who: 'agent' | 'bob' | 'direct', sql: string): Promise<(string | null)[][]> {
  const client =
    who === 'direct' ? await upstream.client({ user: 'app_rw' }) : await pgThrough(gw.target(who));
  try {
    const copy = new CopyOut(sql);
    client.query(copy as unknown as pg.QueryConfig);
    const bytes = await copy.result;
    const reader = new BinaryCopyReader(1 << 20);
    const tuples: (string | null)[][] = [];
    for (const it of reader.push(bytes))
      if (it.t === 'tuple') tuples.push(it.fields.map((v) => (v ? v.toString('hex') : null)));
    assert.ok(reader.done);
    return tuples;
  } finally {
    await client.end();
  }
}

test('pg driver: unmasked fields are byte for byte a direct binary COPY; detectors alone work too', async () => {
  const sql =
    'COPY (SELECT id, email, salary, note, born, card FROM staff ORDER BY id) TO STDOUT (FORMAT binary)';
  const direct = await driverCopy('direct', sql);
  const masked = await driverCopy('agent', sql);
  assert.equal(masked.length, direct.length);
  for (const [i, row] of masked.entries()) {
    const d = direct[i]!;
    assert.deepEqual([row[0], row[3], row[4]], [d[0], d[3], d[4]]);
    assert.equal(row[2], null);
    assert.notEqual(row[1], d[1]);
  }
  assert.equal(masked[1]![5], null, 'a card number in a bigint is not sent');
  assert.equal(masked[0]![5], direct[0]![5]);
  // bob is under the detectors only: emails in text become markers, the table form is typed too.
  const bob = await driverCopy('bob', 'COPY staff TO STDOUT (FORMAT binary)');
  assert.deepEqual(
    bob.map((r) => (r[1] ? Buffer.from(r[1], 'hex').toString() : null)),
    ['[redacted email]', '[redacted email]', '[redacted email]'],
  );
  assert.deepEqual(
    bob.map((r) => r[2]),
    direct.map((r) => r[2]),
  );
  assert.equal(bob[1]![5], null);
});
