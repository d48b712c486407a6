/**
 * The PostgreSQL store against a private server: the same contract the SQLite store passes,
 * plus what sharing adds (concurrent migrations, one audit chain from several writers, CAS
 * across connections, leases) and the LISTEN/NOTIFY bus with its re-sync.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type PrivatePostgres, startPostgres } from '../../test/support/postgres.ts';
import type { RequestEvent } from '../core/approvals/bus.ts';
import { AuditLog } from '../core/audit/log.ts';
import { verifyChain } from '../core/audit/verify.ts';
import { isAirlockError } from '../core/errors.ts';
import { openStore } from './open.ts';
import { PgEventBus } from './pg-event-bus.ts';
import { PostgresStore } from './postgres.ts';
import { newRequest, storeContract } from './store-contract.ts';

function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

describe('PostgresStore', () => {
  let server: PrivatePostgres;
  let n = 0;
  /** A fresh, empty database per test. */
  const freshUrl = async () => {
    const name = `store_${++n}`;
    await server.psql(`CREATE DATABASE ${name}`, { db: 'postgres' });
    return server.connectionString(name);
  };
  const stores: PostgresStore[] = [];
  const open = async (url: string, replicaId?: string) => {
    const s = new PostgresStore({ connectionString: url, ...(replicaId ? { replicaId } : {}) });
    stores.push(s);
    await s.migrate();
    return s;
  };

  before(async () => {
    server = await startPostgres({ sample: false });
  });

  storeContract(async () => open(await freshUrl()));
  after(async () => {
    for (const s of stores) await s.close().catch(() => {});
    await server?.stop();
  });

  test('replicas starting at once migrate once; migrating again keeps data', async () => {
    const url = await freshUrl();
    const many = Array.from({ length: 4 }, () => new PostgresStore({ connectionString: url }));
    stores.push(...many);
    await Promise.all(many.map((s) => s.migrate()));
    await many[0]!.createRequest(newRequest());
    await many[1]!.migrate();
    assert.equal((await many[2]!.listRequests()).length, 1);
    const c = await server.client({ db: url.split('/').pop()! });
    try {
      const shared = (await c.query('SELECT name FROM kysely_migration')).rows.map((r) => r.name);
      assert.ok(shared.includes('0001_requests_and_audit'));
      assert.equal(new Set(shared).size, shared.length, 'each migration recorded once');
      const own = await c.query('SELECT name FROM airlock_pg_migration');
      assert.deepEqual(
        own.rows.map((r) => r.name),
        ['0001_replica_leases'],
      );
    } finally {
      await c.end();
    }
  });

  test('two replicas racing to decide: exactly one wins', async () => {
    const url = await freshUrl();
    const [a, b] = [await open(url), await open(url)];
    for (let i = 0; i < 20; i++) {
      const r = await a.createRequest(newRequest());
      const results = await Promise.all([
        a.updateRequest(r.id, ['pending'], { status: 'approved', decidedAt: 2, grantUntil: 3 }),
        b.updateRequest(r.id, ['pending'], { status: 'denied', decidedAt: 2, reason: 'no' }),
      ]);
      assert.equal(results.filter(Boolean).length, 1, `request ${r.id}: one decision`);
    }
  });

  test('two writers append concurrently: one gap-free chain that verifies', async () => {
    const url = await freshUrl();
    const [a, b] = [await open(url), await open(url)];
    const logs = [new AuditLog(a, { batchMs: 2 }), new AuditLog(b, { batchMs: 2 })];
    for (const log of logs) await log.init();
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++)
      for (const [w, log] of logs.entries()) {
        if (i % 3 === 0) writes.push(log.append('action.forwarded', { writer: w, i }));
        else log.appendLater('action.allowed', { writer: w, i });
      }
    await Promise.all(writes);
    for (const log of logs) await log.close();
    assert.equal(await a.auditCount(), 600);
    const result = await verifyChain(b);
    assert.equal(result.ok, true, JSON.stringify(result));
    const seqs = (await a.readAudit(1, 1000)).map((r) => r.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: 600 }, (_, i) => i + 1),
    );
    // A durable append resolves with the record as committed (renumbered onto the real head).
    const log = new AuditLog(a);
    await log.init();
    const other = new AuditLog(b);
    await other.init();
    await other.append('x', { first: true });
    const rec = await log.append('x', { second: true });
    assert.equal(rec.seq, 602);
    assert.equal((await a.auditHead())?.hash, rec.hash);
    await log.close();
    await other.close();
  });

  test('leases: wait holds of a replica that stopped renewing are orphans; retry requests are not', async () => {
    const url = await freshUrl();
    const dead = await open(url, 'replica-dead');
    const alive = await open(url, 'replica-alive');
    await dead.heartbeat();
    await alive.heartbeat();
    const held = await dead.createRequest(newRequest());
    await dead.createRequest(
      newRequest({ review: { groups: ['dba'], approvals: 1, expires: 1, hold: 'retry', window: 1 } }),
    );
    assert.deepEqual(await alive.orphanedRequests(60_000), [], 'within the lease');
    await new Promise((r) => setTimeout(r, 50));
    await alive.heartbeat();
    assert.deepEqual(await alive.orphanedRequests(20), [{ requestId: held.id, replicaId: 'replica-dead' }]);
    assert.deepEqual(await dead.orphanedRequests(20), [], 'a replica is never orphaned by itself');
    await alive.updateRequest(held.id, ['pending'], { status: 'cancelled', decidedAt: 1, reason: 'lease' });
    assert.deepEqual(await alive.orphanedRequests(20), []);
    await alive.pruneReplicas(20);
    const c = await server.client({ db: url.split('/').pop()! });
    try {
      const ids = (await c.query('SELECT id FROM airlock_replicas ORDER BY id')).rows.map((r) => r.id);
      assert.deepEqual(ids, ['replica-alive']);
    } finally {
      await c.end();
    }
  });

  test('API tokens: found by hash; the first revocation wins and every replica sees it', async () => {
    const url = await freshUrl();
    const [a, b] = [await open(url), await open(url)];
    const token = {
      id: 'tok_1',
      name: 'ci',
      kind: 'service' as const,
      groups: ['ci'],
      connections: ['app'],
      description: 'deploys',
      createdBy: 'alice',
      createdAt: 1_000,
      expiresAt: 9_000,
      hash: 'b'.repeat(64),
    };
    await a.createApiToken(token);
    await assert.rejects(a.createApiToken({ ...token, id: 'tok_2' }), 'the hash is unique');
    const found = await b.findApiToken(token.hash);
    assert.equal(found?.id, 'tok_1');
    assert.deepEqual(found?.connections, ['app']);
    assert.deepEqual(
      (await b.listApiTokens({ name: 'ci' })).map((t) => t.id),
      ['tok_1'],
    );
    const [r1, r2] = await Promise.all([
      a.revokeApiToken('tok_1', 2_000, 'alice'),
      b.revokeApiToken('tok_1', 3_000, 'bob'),
    ]);
    assert.equal(r1?.revokedBy, r2?.revokedBy, 'both see the one revocation that won');
    assert.equal((await a.findApiToken(token.hash))?.revokedAt, r1?.revokedAt);
    assert.equal(await a.revokeApiToken('tok_nope', 1, 'x'), undefined);
  });

  test('openStore opens postgres:// URLs; a bad one is a config error that does not echo the password', async () => {
    const url = await freshUrl();
    const store = await openStore(url, '/nonexistent');
    assert.ok(store instanceof PostgresStore);
    assert.equal((await store.createRequest(newRequest())).id, 1);
    await store.close();
    await assert.rejects(openStore('postgres://user:s3cret@:5432/db', '/tmp'), (err: unknown) => {
      assert.ok(isAirlockError(err));
      assert.equal(err.code, 'AIRLOCK_E_CONFIG_INVALID');
      assert.doesNotMatch(err.describe(), /s3cret/);
      return true;
    });
    const wrong = server.connectionString('postgres').replace(/:[^:@/]+@/, ':wrong-password@');
    await assert.rejects(openStore(wrong, '/tmp'), (err: unknown) => {
      assert.ok(isAirlockError(err));
      assert.equal(err.code, 'AIRLOCK_E_STORE_UNAVAILABLE');
      assert.doesNotMatch(err.describe(), /wrong-password/);
      return true;
    });
  });

  test('bus: an event on one replica reaches the other with the status re-read; re-sync after reconnect', async () => {
    const url = await freshUrl();
    const [a, b] = [await open(url, 'bus-a'), await open(url, 'bus-b')];
    const busA = new PgEventBus({ store: a, reconcileMs: 60_000 });
    const busB = new PgEventBus({ store: b, reconcileMs: 60_000, reconnectMs: 20 });
    await busA.start();
    await busB.start();
    try {
      const seenB: RequestEvent[] = [];
      const ownedA: RequestEvent[] = [];
      const ownedB: RequestEvent[] = [];
      busB.subscribe((e) => seenB.push(e));
      busA.owned.subscribe((e) => ownedA.push(e));
      busB.owned.subscribe((e) => ownedB.push(e));
      const seenA: RequestEvent[] = [];
      busA.subscribe((e) => seenA.push(e));

      const r = await a.createRequest(newRequest());
      await a.updateRequest(r.id, ['pending'], { status: 'denied', decidedAt: Date.now(), reason: 'no' });
      // The payload says which request; the receiver reports the status it reads, not a claim.
      busA.publish({ type: 'request', id: r.id, status: 'pending' });
      await until(() => seenB.length === 1);
      assert.deepEqual(seenB[0], { type: 'request', id: r.id, status: 'denied' });
      assert.equal(seenA.length, 1, 'local delivery is synchronous and happens once');
      assert.deepEqual(ownedA, [{ type: 'request', id: r.id, status: 'pending' }]);

      // Decided on B: B's notifier stays quiet, A's (where it was created) hears of it.
      const r3 = await a.createRequest(newRequest());
      await b.updateRequest(r3.id, ['pending'], { status: 'approved', decidedAt: Date.now(), grantUntil: 0 });
      busB.publish({ type: 'request', id: r3.id, status: 'approved' });
      await until(() => ownedA.some((e) => e.id === r3.id));
      assert.deepEqual(ownedA.at(-1), { type: 'request', id: r3.id, status: 'approved' });
      assert.equal(ownedB.length, 0, 'requests created elsewhere are notified elsewhere');

      // Cut B's LISTEN connection; a decision lands with no NOTIFY while B is away.
      const r2 = await a.createRequest(newRequest());
      await until(() => seenB.length >= 1);
      const c = await server.client({ db: url.split('/').pop()! });
      try {
        await c.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
        );
      } finally {
        await c.end();
      }
      await a.updateRequest(r2.id, ['pending'], { status: 'approved', decidedAt: Date.now(), grantUntil: 0 });
      await until(() => seenB.some((e) => e.id === r2.id && e.status === 'approved'));
      await until(() => busB.connected);
    } finally {
      await busA.close();
      await busB.close();
    }
  });
});
