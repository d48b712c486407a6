/**
 * Faults: the target goes away and comes back; the store becomes unwritable and recovers; the
 * gateway is killed with SIGKILL under load and restarted. Real psql, the pg driver, a private
 * PostgreSQL as the target and the real `airlock serve` process.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { startTestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough, psqlCommand } from './support/psql.ts';
import { serveGateway } from './support/served-gateway.ts';

const _ROOT = join(import.meta.dirname, '..');

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

describe('faults', { timeout: 300_000 }, () => {
  let upstream: PrivatePostgres;

  before(async () => {
    upstream = await startPostgres();
  });

  after(async () => {
    await upstream?.stop();
    await stopAll();
  });

  test('the target goes down and comes back: a clear error meanwhile, then new connections work', async () => {
    const gw = await startTestGateway(upstream);
    try {
      const ok = psqlCommand(gw.target('agent'), 'SELECT count(*) FROM orders');
      assert.equal((await ok.waitForExit(20_000)).code, 0, ok.output());

      const open: pg.Client = await pgThrough(gw.target('agent'));
      open.on('error', () => {});
      // The test server runs with synchronous_commit off: flush what it has acknowledged (the
      // sample schema) before killing it, or the crash may take it back.
      await upstream.psql('CHECKPOINT', { db: 'app' });
      await upstream.pause({ crash: true });
      await assert.rejects(open.query('SELECT 1'));
      const down = psqlCommand(gw.target('agent'), 'SELECT 1');
      assert.notEqual((await down.waitForExit(20_000)).code, 0);
      assert.match(down.stderr(), /could not reach|unavailable|target/i);
      // The gateway itself keeps serving: the API answers.
      assert.equal((await gw.api('GET', '/api/v1/health')).status, 200);

      await upstream.resume();
      const back = await until('a query through the gateway after the target came back', async () => {
        const p = psqlCommand(gw.target('agent'), 'SELECT count(*) FROM orders');
        return (await p.waitForExit(20_000)).code === 0 ? p.stdout() : undefined;
      });
      assert.match(back, /\d+/);
    } finally {
      await gw.close();
    }
  });

  test('the store becomes unwritable: statements are refused with a clear error, then it recovers', async () => {
    const gw = await startTestGateway(upstream);
    const lock = new Database(gw.storeFile);
    try {
      const before = psqlCommand(gw.target('bench'), 'UPDATE orders SET total = total WHERE id = 1');
      assert.equal((await before.waitForExit(20_000)).code, 0, before.output());

      // A session opened before the fault: its next write must be refused, not run unaudited.
      const open: pg.Client = await pgThrough(gw.target('bench'));
      open.on('error', () => {});
      // Another process holds the write lock: every write to the store now fails after the busy timeout.
      lock.exec('BEGIN EXCLUSIVE');
      await assert.rejects(open.query('UPDATE orders SET total = total WHERE id = 2'), (err: Error) => {
        assert.match(err.message, /audit log could not be written|store/i);
        return true;
      });
      lock.exec('ROLLBACK');
      await open.end().catch(() => {});

      await until('writes pass again once the store is writable', async () => {
        const p = psqlCommand(gw.target('bench'), 'UPDATE orders SET total = total WHERE id = 3');
        return (await p.waitForExit(20_000)).code === 0 ? true : undefined;
      });
      const verify = await gw.api<{ ok: boolean }>('GET', '/api/v1/audit/verify', undefined, 'alice');
      assert.equal(verify.body.ok, true, verify.text);
    } finally {
      lock.close();
      await gw.close();
    }
  });

  test('kill -9 under load: after a restart the chain verifies, held requests are cancelled, no write is missing from the log', async () => {
    const served = await serveGateway(upstream);
    try {
      await upstream.psql('CREATE TABLE IF NOT EXISTS fault_log (id int PRIMARY KEY, note text)', {
        db: 'app',
      });
      await upstream.psql('GRANT ALL ON fault_log TO app_rw', { db: 'app' });
      let gw = await served.start();

      // One statement held for approval when the process dies.
      const heldClient = await pgThrough(served.target('agent'));
      heldClient.on('error', () => {});
      void heldClient.query('DELETE FROM orders WHERE id = 77').catch(() => {});
      const heldId = await until('the held request', async () => {
        const r = await served.api<{ requests: { id: number }[] }>('GET', '/api/v1/requests');
        return r.requests[0]?.id;
      });

      // Load: four writers inserting unique ids, four readers, until the kill.
      const acknowledged = new Set<number>();
      let stop = false;
      let next = 1;
      const writer = async () => {
        const c = await pgThrough(served.target('bench'));
        c.on('error', () => {});
        try {
          while (!stop) {
            const id = next++;
            await c.query('INSERT INTO fault_log (id, note) VALUES ($1, $2)', [id, `w${id}`]);
            acknowledged.add(id);
          }
        } catch {
          // The gateway died under us.
        }
      };
      const reader = async () => {
        const c = await pgThrough(served.target('bench'));
        c.on('error', () => {});
        try {
          while (!stop) await c.query('SELECT count(*) FROM fault_log');
        } catch {}
      };
      const load = [writer(), writer(), writer(), writer(), reader(), reader(), reader(), reader()];
      await until('some writes acknowledged', async () => (acknowledged.size >= 50 ? true : undefined));
      gw.child.kill('SIGKILL');
      await gw.waitForExit(10_000);
      stop = true;
      await Promise.all(load);
      assert.ok(acknowledged.size >= 50);

      gw = await served.start();
      const verify = await served.api<{ ok: boolean }>('GET', '/api/v1/audit/verify');
      assert.equal(verify.ok, true, JSON.stringify(verify));

      const held = await served.api<{ request: { status: string; reason: string } }>(
        'GET',
        `/api/v1/requests/${heldId}`,
      );
      assert.equal(held.request.status, 'cancelled');
      assert.match(held.request.reason, /gateway restarted/);

      // Every row the target has was forwarded, so each must have its audit record.
      let audited = 0;
      for (let from = 1; ; from += 1000) {
        const page = await served.api<{ records: { type: string; data: { summary?: string } }[] }>(
          'GET',
          `/api/v1/audit?from=${from}&limit=1000`,
        );
        for (const r of page.records)
          if (r.type === 'action.allowed' && r.data.summary?.startsWith('INSERT INTO fault_log')) audited++;
        if (page.records.length < 1000) break;
      }
      const rows = Number(
        (await upstream.psql('SELECT count(*) FROM fault_log', { db: 'app' })).match(/\d+/)![0],
      );
      assert.ok(rows >= acknowledged.size, `${rows} rows, ${acknowledged.size} acknowledged`);
      assert.ok(audited >= rows, `${audited} audited inserts for ${rows} rows in the target`);
      await heldClient.end().catch(() => {});
    } finally {
      await served.close();
      await upstream.psql('DROP TABLE IF EXISTS fault_log', { db: 'app' }).catch(() => {});
    }
  });
});
