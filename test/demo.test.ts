/**
 * The demo, end to end, the way the README tells a newcomer to use it: start `airlock demo`,
 * read demo.json, connect with psql as the agent, watch a DELETE wait, approve it with the CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ManagedProcess, startProcess } from './support/processes.ts';
import { psqlCommand, psqlSession } from './support/psql.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin/airlock.js');

interface DemoJson {
  api: string;
  postgres: { host: string; port: number; database: string };
  tokens: { agent: string; reviewer: string };
}

describe('airlock demo', { timeout: 5 * 60_000 }, () => {
  let dir: string;
  let demo: ManagedProcess;
  let info: DemoJson;

  const agent = () => ({ ...info.postgres, token: info.tokens.agent, user: 'agent' });
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, AIRLOCK_URL: info.api, AIRLOCK_TOKEN: info.tokens.reviewer },
      encoding: 'utf8',
      timeout: 60_000,
      input: '',
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-demo-'));
    demo = startProcess(
      process.execPath,
      [BIN, 'demo', '--data-dir', dir, '--api-port', '0', '--pg-port', '0'],
      {
        cwd: ROOT,
        env: { ...process.env, AIRLOCK_LOG_LEVEL: 'warn' },
      },
    );
    await demo.waitForOutput(/Press Ctrl-C to stop/, 120_000, 'stdout');
    const file = join(dir, 'demo.json');
    assert.ok(existsSync(file), 'demo.json is written');
    assert.equal(statSync(file).mode & 0o777, 0o600, 'demo.json is private');
    info = JSON.parse(readFileSync(file, 'utf8')) as DemoJson;
  });

  after(async () => {
    if (demo && !demo.hasExited()) await demo.stop('SIGKILL', 10_000);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('demo.json and the how-to name the real addresses and tokens', () => {
    assert.match(info.api, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(info.postgres.port, 0);
    assert.equal(info.postgres.database, 'demo');
    assert.match(info.tokens.agent, /^alk_/);
    assert.match(info.tokens.reviewer, /^alk_/);
    const out = demo.stdout();
    assert.ok(
      out.includes(
        `PGPASSWORD=${info.tokens.agent} psql "host=127.0.0.1 port=${info.postgres.port} dbname=demo user=agent"`,
      ),
    );
    assert.match(out, /SELECT \* FROM orders LIMIT 5;/);
    assert.match(out, /npx airlock approve N/);
  });

  test('a SELECT runs at once', async () => {
    const p = psqlCommand(agent(), 'SELECT * FROM orders LIMIT 5', ['-A']);
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.match(p.stdout(), /\(5 rows\)/);
    const c = psqlCommand(agent(), 'SELECT email, card_number FROM customers WHERE id = 1', ['-A', '-t']);
    assert.equal((await c.waitForExit(60_000)).code, 0, c.output());
    assert.match(c.stdout(), /@example\.com\|/);
  });

  test('a DELETE waits until the reviewer approves it with the CLI', async () => {
    const psql = psqlSession(agent(), ['-A', '-v', 'ON_ERROR_STOP=1']);
    try {
      psql.write('DELETE FROM orders WHERE id = 7;\n');
      const [, id] = (await psql.waitForOutput(/request (\d+)/, 60_000)) as RegExpMatchArray;
      assert.ok(id);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(psql.hasExited(), false);
      assert.doesNotMatch(psql.stdout(), /DELETE 1/);

      const still = psqlCommand(agent(), 'SELECT count(*) FROM orders WHERE id = 7', ['-A', '-t']);
      assert.equal((await still.waitForExit(60_000)).code, 0, still.output());
      assert.equal(still.stdout().trim(), '1', 'the row is still there while the request is pending');

      const list = cli(['requests']);
      assert.equal(list.status, 0, `${list.stdout}\n${list.stderr}`);
      assert.match(list.stdout, new RegExp(`\\b${id}\\b.*DELETE FROM orders WHERE id = 7`));

      const approve = cli(['approve', id!]);
      assert.equal(approve.status, 0, `${approve.stdout}\n${approve.stderr}`);
      assert.match(approve.stdout, /approved|executed/);

      await psql.waitForOutput(/DELETE 1/, 60_000, 'stdout');
      psql.write('\\q\n');
      psql.endInput();
      assert.equal((await psql.waitForExit(30_000)).code, 0, psql.output());

      const gone = psqlCommand(agent(), 'SELECT count(*) FROM orders WHERE id = 7', ['-A', '-t']);
      assert.equal((await gone.waitForExit(60_000)).code, 0, gone.output());
      assert.equal(gone.stdout().trim(), '0');
    } finally {
      if (!psql.hasExited()) await psql.stop('SIGKILL', 5_000);
    }
  });

  test('DROP TABLE is denied with the reason', async () => {
    const p = psqlCommand(agent(), 'DROP TABLE orders');
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /schema drops go through the migration pipeline/);
    const c = psqlCommand(agent(), 'SELECT count(*) FROM orders', ['-A', '-t']);
    assert.equal((await c.waitForExit(60_000)).code, 0, c.output());
    assert.equal(c.stdout().trim(), '49');
  });

  test('airlock exec runs SQL through the gateway and prints a table', () => {
    const r = spawnSync(
      process.execPath,
      [BIN, 'exec', 'demo', '--', 'SELECT id, status FROM orders WHERE id <= 2 ORDER BY id'],
      {
        cwd: ROOT,
        env: { ...process.env, AIRLOCK_URL: info.api, AIRLOCK_TOKEN: info.tokens.agent },
        encoding: 'utf8',
        timeout: 60_000,
        input: '',
      },
    );
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /id \| status/);
    assert.match(r.stdout, /\(2 rows\)/);
    assert.match(r.stdout, /SELECT 2/);
  });

  test('client commands without a server say what to do', () => {
    const r = spawnSync(process.execPath, [BIN, 'requests'], {
      cwd: ROOT,
      env: { ...process.env, AIRLOCK_URL: 'http://127.0.0.1:1', AIRLOCK_TOKEN: 'alk_x' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /airlock serve` or `airlock demo` running/);
  });

  test('SIGTERM stops the demo cleanly', async () => {
    const exit = await demo.stop('SIGTERM', 30_000);
    assert.equal(exit.code, 0, demo.output());
  });
});
