/**
 * TLS on both legs: callers that ask for it (mysql2 and the mariadb client) get the gateway's
 * certificate and send their token over caching_sha2_password's full authentication; the gateway
 * logs in to a private mariadbd over TLS with `tls: verify-full`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbCli,
  mysqlThrough,
  type PrivateMariadb,
  startMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';
import { stopAll } from './support/processes.ts';
import { selfSignedCert } from './support/tls.ts';

const skip =
  mariadbAvailable() ??
  (spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed');
const TEST_TIMEOUT = 120_000;

let dir: string;
let cert: string;
let key: string;
let target: PrivateMariadb;
let gw: MysqlTestGateway;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'airlock-mysql-tls-'));
  ({ cert, key } = selfSignedCert(dir));
  target = await startMariadb({
    extraArgs: [
      `--ssl-cert=${join(dir, 'cert.pem')}`,
      `--ssl-key=${join(dir, 'key.pem')}`,
      '--require-secure-transport=ON',
    ],
  });
  gw = await startMysqlTestGateway(target, {
    tls: { cert, key },
    upstreamExtra: `      tls: verify-full\n      ca: ${join(dir, 'cert.pem')}\n`,
  });
});

after(async () => {
  await gw?.close();
  await target?.stop();
  await stopAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('MySQL through Airlock over TLS', { skip, timeout: 5 * 60_000 }, () => {
  test('mysql2 with TLS to the gateway, the gateway with verify-full TLS to the target', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await mysqlThrough(gw, 'agent', { ssl: { ca: cert } });
    try {
      const [rows] = await c.query('SELECT COUNT(*) AS n FROM orders');
      assert.deepEqual(rows, [{ n: 50 }]);
      // The target's view of this session: its own leg is TLS too (it requires secure transport).
      const [status] = await c.query("SHOW SESSION STATUS LIKE 'Ssl_version'");
      assert.match(String((status as { Value: string }[])[0]?.Value), /TLS/);
    } finally {
      await c.end();
    }
  });

  test('the mariadb client with --ssl', { timeout: TEST_TIMEOUT }, async () => {
    const p = mariadbCli(gw, 'SELECT COUNT(*) AS n FROM customers', {
      args: ['--ssl', `--ssl-ca=${join(dir, 'cert.pem')}`],
    });
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout(), 'n\n20\n');
  });
});
