/**
 * Airlock's login to the target with each authentication plugin MariaDB offers it: the
 * `mysql_native_password` default (every other test), MariaDB's `ed25519`, and a refused login
 * reported to the caller with what to check.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  mariadbAvailable,
  mysqlThrough,
  type PrivateMariadb,
  startMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';
import { stopAll } from './support/processes.ts';

const skip = mariadbAvailable();
let target: PrivateMariadb;

before(async () => {
  if (skip) return;
  target = await startMariadb();
});

after(async () => {
  await target?.stop();
  await stopAll();
});

describe('MySQL target login', { skip, timeout: 5 * 60_000 }, () => {
  test('MariaDB ed25519 account', { timeout: 120_000 }, async () => {
    await target.query(`INSTALL SONAME 'auth_ed25519';
CREATE USER 'app_ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret-1');
GRANT ALL ON app.* TO 'app_ed'@'%'`);
    const gw = await startMysqlTestGateway(target, {
      upstreamUser: { user: 'app_ed', password: 'ed-secret-1' },
    });
    try {
      const c = await mysqlThrough(gw);
      try {
        const [rows] = await c.query('SELECT CURRENT_USER() AS u, COUNT(*) AS n FROM orders');
        assert.deepEqual(rows, [{ u: 'app_ed@%', n: 50 }]);
      } finally {
        await c.end();
      }
    } finally {
      await gw.close();
    }
  });

  test('a target that refuses the held credential: the caller is told what to check', {
    timeout: 120_000,
  }, async () => {
    const gw = await startMysqlTestGateway(target, {
      upstreamUser: { user: 'app_rw', password: 'not-the-password' },
    });
    try {
      await assert.rejects(mysqlThrough(gw), (err: Error) => {
        assert.match(
          err.message,
          /Airlock could not log in to the target: connection "shop": the target refused Airlock's login: Access denied/,
        );
        assert.match(err.message, /check upstream\.user and upstream\.password/);
        assert.doesNotMatch(err.message, /not-the-password/);
        return true;
      });
    } finally {
      await gw.close();
    }
  });
});
