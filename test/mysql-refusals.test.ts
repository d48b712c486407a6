/**
 * What the MySQL listener refuses on its own, before the Gate is asked, against a private
 * MariaDB with the real `mariadb` client: LOAD DATA LOCAL INFILE on a connection without
 * `local_infile: true` (audited like any denial).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  MYSQL_CONNECTION,
  type MysqlPrincipal,
  type MysqlTestGateway,
  mariadbAvailable,
  type PrivateMariadb,
  startMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';
import { type ManagedProcess, startProcess, stopAll } from './support/processes.ts';

const TEST_TIMEOUT = 120_000;
const skip = mariadbAvailable();

let target: PrivateMariadb;
let gw: MysqlTestGateway;

before(async () => {
  if (skip) return;
  target = await startMariadb();
  gw = await startMysqlTestGateway(target);
});

after(async () => {
  await gw?.close();
  await target?.stop();
  await stopAll();
});

interface AuditRecord {
  type: string;
  data: Record<string, unknown>;
}

/** The `mariadb` CLI through Airlock (batch mode, tab-separated output). */
function cli(
  sql: string,
  o: { who?: MysqlPrincipal; database?: string; args?: string[] } = {},
): ManagedProcess {
  const who = o.who ?? 'agent';
  return startProcess('mariadb', [
    '--no-defaults',
    '--batch',
    '-h',
    '127.0.0.1',
    '-P',
    String(gw.mysql.port),
    '-u',
    who,
    `-p${gw.tokens[who]}`,
    ...(o.args ?? []),
    o.database ?? MYSQL_CONNECTION,
    '-e',
    sql,
  ]);
}

async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function audit(): Promise<AuditRecord[]> {
  const res = await gw.api<{ records: AuditRecord[] }>('GET', '/api/v1/audit?limit=1000', undefined, 'alice');
  assert.equal(res.status, 200, res.text);
  return res.body.records;
}

describe('refusals before the Gate', { skip, timeout: 5 * 60_000 }, () => {
  test('LOAD DATA LOCAL INFILE refused for local_infile: false is audited as a denial', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sql = "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE audit_notes (note)";
    const p = cli(sql, { args: ['--local-infile=1'] });
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(
      p.stderr(),
      /ERROR 1142 \(42000\).*denied by Airlock: LOAD DATA LOCAL INFILE is off for connection "shop"/,
    );
    const denied = await eventually('the audited refusal', async () =>
      (await audit()).find((r) => r.type === 'action.denied' && r.data.summary === sql),
    );
    assert.equal(denied.data.protocol, 'mysql');
    assert.equal(denied.data.connection, MYSQL_CONNECTION);
    assert.equal(denied.data.kind, 'transfer');
    assert.equal(denied.data.rule, 'local_infile is off');
    assert.equal(denied.data.decision, 'deny');
    assert.match(String(denied.data.reason), /LOAD DATA LOCAL INFILE is off for connection "shop"/);
    assert.match(String(denied.data.fingerprint), /^[0-9a-f]{16,}$/);
    assert.deepEqual(denied.data.principal, { name: 'agent', kind: 'agent', groups: ['agents'] });
    // The same fields as a denial the Gate makes.
    const byRule = await eventually('a policy denial', async () => {
      const drop = cli('DROP TABLE orders');
      await drop.waitForExit(60_000);
      return (await audit()).find(
        (r) => r.type === 'action.denied' && r.data.summary === 'DROP TABLE orders',
      );
    });
    assert.deepEqual(Object.keys(denied.data).sort(), Object.keys(byRule.data).sort());
    const rows = (await target.query('SELECT COUNT(*) AS n FROM audit_notes')) as { n: number | string }[];
    assert.equal(Number(rows[0]!.n), 0, 'nothing was loaded');
  });
});
