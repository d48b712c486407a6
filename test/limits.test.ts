/**
 * Resource limits through the real PostgreSQL wire path: connection slots per principal,
 * requests waiting per principal, and failed sign-in throttling, each refused with a clear
 * error the client shows and an audit event. Real psql and the pg driver against a private
 * PostgreSQL behind a test gateway.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { pgThrough, psqlCommand } from './support/psql.ts';

describe('resource limits on the PostgreSQL listener', { timeout: 120_000 }, () => {
  let upstream: PrivatePostgres;
  let gw: TestGateway;

  before(async () => {
    upstream = await startPostgres();
    gw = await startTestGateway(upstream, {
      extra: `limits:
  max_connections_per_principal: 2
  max_pending_per_principal: 1
  auth_failures: { max: 3, window: 1m, block: 1m }
`,
    });
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
    await stopAll();
  });

  async function auditTypes(): Promise<string[]> {
    const res = await gw.api<{ records: { type: string }[] }>(
      'GET',
      '/api/v1/audit?limit=1000',
      undefined,
      'alice',
    );
    return res.body.records.map((r) => r.type);
  }

  async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const v = await fn();
      if (v !== undefined) return v;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  test('a principal gets at most its connection slots; closing one frees it', async () => {
    const a = await pgThrough(gw.target('agent'));
    const b = await pgThrough(gw.target('agent'));
    await assert.rejects(pgThrough(gw.target('agent')), (err: Error & { code?: string }) => {
      assert.equal(err.code, '53300');
      assert.match(err.message, /agent already has 2 open connections/);
      return true;
    });
    // Another principal is not affected.
    const other = await pgThrough(gw.target('bench'));
    await other.end();
    await a.end();
    const c = await until('a freed slot', async () => {
      try {
        return await pgThrough(gw.target('agent'));
      } catch {
        return undefined;
      }
    });
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
    await Promise.all([b.end(), c.end()]);
    await until('limit.connections in the audit log', async () =>
      (await auditTypes()).includes('limit.connections') ? true : undefined,
    );
  });

  test('a principal with a request waiting gets a clear denial for the next one, not another request', async () => {
    const held: pg.Client = await pgThrough(gw.target('agent'));
    const first = held.query('DELETE FROM orders WHERE id = 11').catch((e: Error) => e);
    await until('the first request', async () => {
      const res = await gw.api<{ requests: { id: number }[] }>('GET', '/api/v1/requests', undefined, 'alice');
      return res.body.requests[0];
    });
    const second = psqlCommand(gw.target('agent'), 'DELETE FROM orders WHERE id = 12');
    const exit = await second.waitForExit(20_000);
    assert.notEqual(exit.code, 0);
    assert.match(second.stderr(), /agent already has 1 requests waiting for approval/);
    const pending = await gw.api<{ requests: unknown[] }>('GET', '/api/v1/requests', undefined, 'alice');
    assert.equal(pending.body.requests.length, 1, 'no second request was created');
    await until('limit.pending in the audit log', async () =>
      (await auditTypes()).includes('limit.pending') ? true : undefined,
    );
    await held.end().catch(() => {});
    await first;
  });

  test('repeated bad tokens block the source and the claimed user for a while, with an audit event', async () => {
    for (let i = 0; i < 4; i++) {
      const bad = psqlCommand({ ...gw.target('agent'), token: `alk_wrong_${i}` }, 'SELECT 1');
      await bad.waitForExit(20_000);
      assert.match(bad.stderr(), /not recognised|too many failed sign-ins/);
    }
    // Now even the right token is refused from this address until the block ends.
    const good = psqlCommand(gw.target('agent'), 'SELECT 1');
    const exit = await good.waitForExit(20_000);
    assert.notEqual(exit.code, 0);
    assert.match(good.stderr(), /too many failed sign-ins/);
    assert.match(good.stderr(), /wait \d+s/);
    // Limit events are batched like reads: wait for the batch to land.
    await until('the limit events in the audit log', async () => {
      const types = await auditTypes();
      return types.includes('limit.auth_block_started') && types.includes('limit.auth_blocked')
        ? true
        : undefined;
    });
    // The API is a different door: reviewers are not locked out by a noisy database client.
    const who = await gw.api<{ name: string }>('GET', '/api/v1/whoami', undefined, 'alice');
    assert.equal(who.body.name, 'alice');
  });
});
