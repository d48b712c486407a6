/**
 * Transparency: what is allowed behaves as it does against PostgreSQL directly. A corpus of psql
 * scripts (test/corpus/sql) runs once straight against a private PostgreSQL and once through
 * Airlock, and stdout and stderr must match (backend PIDs, which differ per connection, aside).
 * Then the behaviours a script cannot show: Ctrl-C in psql cancels the statement on the target,
 * a caller that stops reading makes the gateway stop reading instead of buffering, drivers'
 * prepared-statement caches and pipelines, parameter status changes and notifications sent by
 * other sessions, and TLS from callers with sslmode=verify-full.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { findTool, type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { startProcess, stopAll } from './support/processes.ts';
import { selfSignedCert } from './support/tls.ts';
import { WireClient } from './support/wire.ts';

const CORPUS = join(import.meta.dirname, 'corpus', 'sql');
const TIMEOUT = 180_000;

let upstream: PrivatePostgres;
let gw: TestGateway;
let tlsDir: string;

before(async () => {
  upstream = await startPostgres();
  tlsDir = mkdtempSync(join(tmpdir(), 'airlock-caller-tls-'));
  // A self-signed certificate is its own CA: verify-full checks the chain and the host name.
  selfSignedCert(tlsDir);
  gw = await startTestGateway(upstream, {
    connectionDefault: 'allow',
    rules: 'rules: []',
    extra: `tls: { cert: "\${file:${join(tlsDir, 'cert.pem')}}", key: "\${file:${join(tlsDir, 'key.pem')}}" }`,
  });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
  if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const PSQL_ENV = {
  PGTZ: 'UTC',
  PGDATESTYLE: 'ISO, MDY',
  LC_ALL: 'C.UTF-8',
  LANG: 'C.UTF-8',
  PGCONNECT_TIMEOUT: '15',
  PGAPPNAME: 'transparency',
};

function psqlEnv(password: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...PSQL_ENV,
    PGPASSWORD: password,
    PGSSLMODE: 'disable',
    ...extra,
  };
  for (const k of ['PGSERVICE', 'PGSERVICEFILE', 'PGPASSFILE', 'PGOPTIONS', 'PGHOSTADDR']) delete env[k];
  return env;
}

function psqlArgs(host: string, port: number, user: string, extra: string[]): string[] {
  return ['-X', '-h', host, '-p', String(port), '-U', user, '-d', 'app', '-P', 'pager=off', ...extra];
}

async function runScript(file: string, via: 'direct' | 'airlock'): Promise<Run> {
  const args =
    via === 'direct'
      ? psqlArgs(upstream.host, upstream.port, upstream.app.user, ['-f', file])
      : psqlArgs(gw.pg.host, gw.pg.port, 'bench', ['-f', file]);
  const p = startProcess(findTool('psql')!, args, {
    env: psqlEnv(via === 'direct' ? upstream.app.password : gw.tokens.bench),
  });
  p.endInput();
  const exit = await p.waitForExit(TIMEOUT);
  return { code: exit.code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Backend PIDs differ from connection to connection; nothing else may. */
function comparable(text: string): string {
  return text.replace(/server process with PID \d+/g, 'server process with PID <pid>');
}

/** What each script must show directly, so that a script that silently failed cannot pass. */
const SHOWS: Record<string, { stdout?: RegExp; stderr?: RegExp }> = {
  '01-types.sql': { stdout: /ünïcødé ✓ 日本語[\s\S]*\\x00ff10[\s\S]*\(null\)/ },
  '02-copy.sql': {
    stdout: /"quoted, with comma"[\s\S]*PGCOPY/,
    stderr: /invalid input syntax for type numeric/,
  },
  '03-large.sql': { stdout: /\(60000 rows\)[\s\S]*\(30000 rows\)/ },
  '04-cursors.sql': { stdout: /MOVE 5/, stderr: /cursor "nope" does not exist/ },
  '05-errors.sql': {
    stdout: /22012[\s\S]*25P02/,
    stderr: /current transaction is aborted, commands ignored until end of transaction block/,
  },
  '06-notices.sql': {
    stderr: /NOTICE: {2}a notice with 42[\s\S]*DETAIL: {2}the detail[\s\S]*custom failure here/,
  },
  '07-listen.sql': { stdout: /notification "ch_one" with payload "delivered at commit"/ },
  '08-prepared.sql': { stdout: /HELLO[\s\S]*renamed[\s\S]*08:00:00-04/ },
};

describe('the SQL script corpus gives the same output directly and through Airlock', () => {
  const scripts = readdirSync(CORPUS)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  test('the corpus has scripts', () => assert.ok(scripts.length >= 8));
  for (const name of scripts) {
    test(name, { timeout: TIMEOUT }, async () => {
      const file = join(CORPUS, name);
      const direct = await runScript(file, 'direct');
      const through = await runScript(file, 'airlock');
      assert.ok(direct.stdout.length > 0, `${name} printed nothing directly: ${direct.stderr}`);
      const shows = SHOWS[name];
      if (shows?.stdout) assert.match(direct.stdout, shows.stdout, `${name}: unexpected output`);
      if (shows?.stderr) assert.match(direct.stderr, shows.stderr, `${name}: unexpected messages`);
      assert.equal(comparable(through.stdout), comparable(direct.stdout), `${name}: stdout differs`);
      assert.equal(comparable(through.stderr), comparable(direct.stderr), `${name}: stderr differs`);
      assert.equal(through.code, direct.code);
    });
  }
});

test('Ctrl-C in psql cancels the statement on the target', { timeout: TIMEOUT }, async () => {
  const p = startProcess(findTool('psql')!, psqlArgs(gw.pg.host, gw.pg.port, 'bench', []), {
    env: psqlEnv(gw.tokens.bench),
  });
  try {
    p.write("SELECT pg_sleep(60), 'airlock-cancel-probe';\n");
    const running = async () =>
      Number(
        (
          await upstream.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%airlock-cancel-probe%' AND state = 'active' AND pid <> pg_backend_pid()",
          )
        ).trim(),
      );
    const deadline = Date.now() + 30_000;
    while ((await running()) === 0) {
      assert.ok(Date.now() < deadline, 'the statement never started on the target');
      await new Promise((r) => setTimeout(r, 100));
    }
    p.child.kill('SIGINT');
    await p.waitForOutput(/canceling statement due to user request/, 30_000, 'stderr');
    assert.equal(await running(), 0);
  } finally {
    p.endInput();
    await p.stop('SIGTERM', 10_000);
  }
});

test('a caller that stops reading does not make the gateway buffer the result', {
  timeout: TIMEOUT,
}, async () => {
  const w = await WireClient.connect(gw.target('bench'));
  try {
    // About 400 MB of rows; the caller reads none of it for a while.
    w.socket.pause();
    w.write(serialize.query("SELECT repeat('x', 4000) FROM generate_series(1, 100000)"));
    global.gc?.();
    const base = process.memoryUsage();
    const samples: number[] = [];
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const m = process.memoryUsage();
      samples.push(m.arrayBuffers + m.heapUsed - (base.arrayBuffers + base.heapUsed));
    }
    const grown = Math.max(...samples);
    assert.ok(
      grown < 64 * 1024 * 1024,
      `the gateway buffered ${Math.round(grown / 1048576)} MB for a paused caller`,
    );
    // Reading again drains everything, in order.
    w.socket.resume();
    const frames = await w.until('Z', 120_000);
    const rows = frames.filter((f) => f.type === 0x44).length;
    assert.equal(rows, 100000);
  } finally {
    w.end();
  }
});

test("pg's prepared-statement cache and pipelined queries", { timeout: TIMEOUT }, async () => {
  const t = gw.target('bench');
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    database: t.database,
    user: 'bench',
    password: t.token,
  });
  c.on('error', () => {});
  await c.connect();
  try {
    // Named statements: pg parses once, then only binds and executes.
    for (let i = 0; i < 50; i++) {
      const r = await c.query({
        name: 'by-id',
        text: 'SELECT $1::int * 2 AS d, $2::text AS s',
        values: [i, `v${i}`],
      });
      assert.deepEqual(r.rows[0], { d: i * 2, s: `v${i}` });
    }
    // Many queries in flight at once: pg pipelines them on the one connection.
    const all = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        c.query({ name: i % 2 ? 'odd' : 'even', text: 'SELECT $1::int AS n', values: [i] }),
      ),
    );
    assert.deepEqual(
      all.map((r) => r.rows[0].n),
      Array.from({ length: 200 }, (_, i) => i),
    );
    // An error in the middle of a pipeline fails that query only.
    const mixed = await Promise.allSettled([
      c.query('SELECT 1 AS a'),
      c.query('SELECT 1/0'),
      c.query({ text: 'SELECT $1::int AS b', values: [2] }),
    ]);
    assert.equal(mixed[0].status, 'fulfilled');
    assert.equal(mixed[1].status, 'rejected');
    assert.equal(mixed[2].status, 'fulfilled');
  } finally {
    await c.end();
  }
});

/** A raw protocol client straight to the target, as the app user. */
function directWire(): Promise<WireClient> {
  return WireClient.connect({
    host: upstream.host,
    port: upstream.port,
    database: 'app',
    user: upstream.app.user,
    token: upstream.app.password,
  });
}

test('pipelined extended-protocol messages get byte-identical answers', { timeout: TIMEOUT }, async () => {
  const direct = await directWire();
  const through = await WireClient.connect(gw.target('bench'));
  try {
    const pipeline = [
      serialize.parse({
        name: 's1',
        text: 'SELECT $1::int + 1 AS n, $2::text AS t, now() IS NOT NULL AS ok',
        types: [],
      }),
      serialize.describe({ type: 'S', name: 's1' }),
      serialize.bind({ portal: 'p1', statement: 's1', values: ['41', 'x'], binary: true }),
      serialize.describe({ type: 'P', name: 'p1' }),
      serialize.execute({ portal: 'p1' }),
      serialize.bind({ statement: 's1', values: ['1', null] }),
      serialize.execute({}),
      serialize.parse({ text: 'SELECT i, md5(i::text) FROM generate_series(1, 5) AS i', types: [] }),
      serialize.bind({}),
      serialize.execute({ rows: 2 }),
      serialize.execute({ rows: 0 }),
      serialize.close({ type: 'S', name: 's1' }),
      serialize.sync(),
      serialize.parse({ text: 'SELECT 1/0', types: [] }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({ text: 'SELECT 2', types: [] }),
      serialize.sync(),
      serialize.query("SELECT 'simple' AS s; SELECT 3"),
    ];
    const answers = async (w: WireClient) => {
      w.write(...pipeline);
      const frames = [...(await w.until('Z')), ...(await w.until('Z')), ...(await w.until('Z'))];
      return Buffer.concat(frames.map((f) => f.raw));
    };
    const a = await answers(direct);
    const b = await answers(through);
    assert.ok(a.includes(Buffer.from('division by zero')));
    assert.equal(b.toString('hex'), a.toString('hex'));
  } finally {
    direct.end();
    through.end();
  }
});

test('parameter status changes and notifications from other sessions reach the caller', {
  timeout: TIMEOUT,
}, async () => {
  const direct = await directWire();
  const through = await WireClient.connect(gw.target('bench'));
  try {
    // PostgreSQL reports changed settings before ReadyForQuery; RESET ALL reports them back.
    const statements = [
      "SET application_name = 'renamed'; SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'",
      "SET IntervalStyle = 'iso_8601'; SET standard_conforming_strings = off",
      'RESET ALL',
    ];
    const answers = async (w: WireClient) => {
      const out: Buffer[] = [];
      for (const sql of statements) {
        w.write(serialize.query(sql));
        out.push(...(await w.until('Z')).map((f) => f.raw));
      }
      return Buffer.concat(out);
    };
    const a = await answers(direct);
    const b = await answers(through);
    assert.ok(a.includes(Buffer.from('application_name\0renamed\0')), 'PostgreSQL reported the change');
    assert.equal(b.toString('hex'), a.toString('hex'));

    // A notification sent by another session arrives while the caller sends nothing.
    through.write(serialize.query('LISTEN "airlock probe"'));
    await through.until('Z');
    await upstream.psql(`NOTIFY "airlock probe", 'from elsewhere'`);
    const note = (await through.until('A')).at(-1)!;
    const [channel, payload] = note.raw.toString('utf8', 9, note.raw.length - 1).split('\0');
    assert.deepEqual([channel, payload], ['airlock probe', 'from elsewhere']);
  } finally {
    direct.end();
    through.end();
  }
});

test('TLS from callers: psql with sslmode=verify-full', { timeout: TIMEOUT }, async () => {
  const p = startProcess(
    findTool('psql')!,
    psqlArgs('localhost', gw.pg.port, 'bench', ['-tA', '-c', 'SELECT 6 * 7']),
    { env: psqlEnv(gw.tokens.bench, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: join(tlsDir, 'cert.pem') }) },
  );
  p.endInput();
  const exit = await p.waitForExit(60_000);
  assert.equal(exit.code, 0, p.stderr());
  assert.equal(p.stdout(), '42\n');
  // A certificate for another name is refused by the client.
  const wrong = startProcess(
    findTool('psql')!,
    psqlArgs('127.0.0.2', gw.pg.port, 'bench', ['-tA', '-c', 'SELECT 1']),
    { env: psqlEnv(gw.tokens.bench, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: join(tlsDir, 'cert.pem') }) },
  );
  wrong.endInput();
  const wrongExit = await wrong.waitForExit(60_000);
  assert.notEqual(wrongExit.code, 0);
});
