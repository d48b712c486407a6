/**
 * Several replicas, one PostgreSQL store: three gateways (two in this process, one in a child
 * process that can be killed with SIGKILL) in front of one private target database, sharing a
 * second private PostgreSQL as their store. A statement held on one replica is decided through
 * another; the audit log stays one chain; a dead replica's held requests are cancelled by the
 * survivors once its lease runs out; readiness and draining behave as a load balancer needs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyChain } from '../src/core/audit/verify.ts';
import type { Gateway } from '../src/server/gateway.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { eventually } from './support/eventually.ts';
import type { PrincipalName } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { type ManagedProcess, stopAll } from './support/processes.ts';
import { type PsqlTarget, pgThrough, psqlCommand } from './support/psql.ts';
import { type Replica, type ReplicaSetup, replicaOf, setupReplicas } from './support/replicas.ts';

const LEASE_MS = 1_500;
const TEST_TIMEOUT = 120_000;

let storeDb: PrivatePostgres;
let target: PrivatePostgres;
let setup: ReplicaSetup;
let storeUrl: string;
let a: Gateway;
let b: Gateway;
let child: ManagedProcess;
let replicas: Record<'A' | 'B' | 'C', Replica>;

function api<T = unknown>(
  replica: Replica,
  method: string,
  path: string,
  body?: unknown,
  as?: PrincipalName,
): Promise<{ status: number; body: T; text: string }> {
  return setup.api<T>(replica, method, path, body, as);
}

function via(replica: Replica, who: PrincipalName = 'agent'): PsqlTarget {
  return setup.via(replica, who);
}

function requestIdFrom(text: string): number {
  const m = /request (\d+)/i.exec(text);
  assert.ok(m, `no request id in: ${text}`);
  return Number(m[1]);
}

interface RequestView {
  readonly id: number;
  readonly status: string;
  readonly reason?: string | null;
}

async function statusOn(replica: Replica, id: number): Promise<RequestView> {
  const res = await api<{ request: RequestView }>(
    replica,
    'GET',
    `/api/v1/requests/${id}`,
    undefined,
    'alice',
  );
  assert.equal(res.status, 200, res.text);
  return res.body.request;
}

async function rowExists(id: number): Promise<boolean> {
  const c = await target.client({ db: 'app' });
  try {
    return (await c.query('SELECT 1 FROM orders WHERE id = $1', [id])).rowCount === 1;
  } finally {
    await c.end();
  }
}

before(async () => {
  [storeDb, target] = await Promise.all([startPostgres({ sample: false }), startPostgres()]);
  await storeDb.psql('CREATE DATABASE airlock', { db: 'postgres' });
  storeUrl = storeDb.connectionString('airlock');
  setup = setupReplicas(target, storeUrl);
  // Three replicas start at once against an empty store: the migrations must run once.
  const opts = { leaseMs: LEASE_MS, reconcileMs: 1_000 };
  const [ga, gb, c] = await Promise.all([
    setup.start(opts),
    setup.start(opts),
    setup.startChild({ leaseMs: LEASE_MS }),
  ]);
  a = ga;
  b = gb;
  child = c.process;
  replicas = { A: replicaOf('A', a), B: replicaOf('B', b), C: { ...c.replica, name: 'C' } };
});

after(async () => {
  await a?.close();
  await b?.close();
  await child?.stop('SIGKILL');
  await stopAll();
  await storeDb?.stop();
  await target?.stop();
  setup?.remove();
});

describe('replicas on one PostgreSQL store', () => {
  test('the store was migrated once although three replicas started together', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await storeDb.client({ db: 'airlock' });
    try {
      const names = (await c.query('SELECT name FROM kysely_migration')).rows.map((r) => r.name);
      assert.ok(names.includes('0001_requests_and_audit'));
      assert.equal(new Set(names).size, names.length);
      const live = (await c.query('SELECT count(*)::int AS n FROM airlock_replicas')).rows[0].n;
      assert.equal(live, 3, 'each replica holds a lease');
    } finally {
      await c.end();
    }
    for (const r of Object.values(replicas)) {
      const ready = await api<{ ready: boolean; checks: Record<string, string> }>(r, 'GET', '/api/v1/ready');
      assert.equal(ready.status, 200, `${r.name}: ${ready.text}`);
      assert.deepEqual(ready.body.checks, { store: 'ok', audit: 'ok', bus: 'ok', lease: 'ok' });
    }
  });

  test('a statement held on A is approved through B and completes on A', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = psqlCommand(via(replicas.A), 'DELETE FROM orders WHERE id = 1');
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+[^\n]*/i, 30_000, 'stderr'))[0]);
    // C learns of the request from the bus, not from a shared memory.
    assert.equal((await statusOn(replicas.C, id)).status, 'pending');
    assert.equal(await rowExists(1), true);
    const approved = await api(replicas.B, 'POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    const exit = await p.waitForExit(30_000);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /DELETE 1/);
    assert.equal(await rowExists(1), false);
    await eventually('executed on every replica', async () => {
      for (const r of Object.values(replicas))
        if ((await statusOn(r, id)).status !== 'executed') return undefined;
      return true;
    });
  });

  test('a statement held on A is denied through C; A returns the reason', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = psqlCommand(via(replicas.A), 'DELETE FROM orders WHERE id = 2');
    const id = requestIdFrom((await p.waitForOutput(/NOTICE:.*request \d+[^\n]*/i, 30_000, 'stderr'))[0]);
    const reason = 'not during the freeze';
    const denied = await api(replicas.C, 'POST', `/api/v1/requests/${id}/deny`, { reason }, 'bob');
    assert.equal(denied.status, 200, denied.text);
    await p.waitForOutput(new RegExp(`ERROR:.*${reason}`), 30_000, 'stderr');
    await p.waitForExit(30_000);
    assert.equal(await rowExists(2), true);
  });

  test('concurrent traffic through all replicas keeps one gap-free audit chain', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const clients = await Promise.all(
      Object.values(replicas).flatMap((r) => [pgThrough(via(r, 'bench')), pgThrough(via(r, 'bench'))]),
    );
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          for (let j = 0; j < 40; j++) {
            // Reads are batched, writes durable: both paths append concurrently on every replica.
            if (j % 4 === 0) await c.query('INSERT INTO audit_notes (note) VALUES ($1)', [`c${i} n${j}`]);
            else await c.query('SELECT id FROM orders WHERE id = $1', [1 + ((i + j) % 50)]);
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // Batched reads reach the store within the batch window; flush the in-process ones now.
    await a.audit.flush();
    await b.audit.flush();
    const store = new PostgresStore({ connectionString: storeUrl });
    try {
      await eventually(
        'the child replica to flush its batch',
        async () => {
          const count = await store.auditCount();
          const head = await store.auditHead();
          return head && head.seq === count && count > 6 * 40 ? true : undefined;
        },
        10_000,
      );
      const result = await verifyChain(store);
      assert.equal(result.ok, true, JSON.stringify(result));
      const seqs = (await store.readAudit(1, 100_000)).map((r) => r.seq);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i + 1),
        'seq 1..n, no gaps, no forks',
      );
    } finally {
      await store.close();
    }
    for (const r of Object.values(replicas)) {
      const verify = await api<{ ok: boolean }>(r, 'GET', '/api/v1/audit/verify', undefined, 'alice');
      assert.equal(verify.status, 200, verify.text);
      assert.equal(verify.body.ok, true, `${r.name}: ${verify.text}`);
    }
  });

  test('a grant approved through B opens on C; revoked through C, it closes on A', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sql = "UPDATE customers SET name = 'Grant Holder' WHERE id = 5";
    // `retry` hold: refused at once with the request to approve.
    const first = psqlCommand(via(replicas.A), sql);
    await first.waitForExit(30_000);
    const id = requestIdFrom(first.stderr());
    const approved = await api(replicas.B, 'POST', `/api/v1/requests/${id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    // The same statement by the same principal now passes through another replica.
    await eventually('the grant to open on C', async () => {
      const p = psqlCommand(via(replicas.C), sql);
      return (await p.waitForExit(30_000)).code === 0 ? true : undefined;
    });
    const revoked = await api(
      replicas.C,
      'POST',
      `/api/v1/requests/${id}/revoke`,
      { reason: 'wrong row' },
      'bob',
    );
    assert.equal(revoked.status, 200, revoked.text);
    // Every replica drops the grant: A asks for approval again.
    await eventually('the grant to close on A', async () => {
      const p = psqlCommand(via(replicas.A), sql);
      await p.waitForExit(30_000);
      return /approval/i.test(p.stderr()) ? true : undefined;
    });
  });

  test('kill -9 of a replica: survivors cancel its held requests after the lease; the others keep serving', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const held = psqlCommand(via(replicas.C), 'DELETE FROM orders WHERE id = 3');
    const id = requestIdFrom((await held.waitForOutput(/NOTICE:.*request \d+[^\n]*/i, 30_000, 'stderr'))[0]);
    // A retry-mode request is not tied to a connection: it must survive the replica.
    const retry = psqlCommand(via(replicas.C), "UPDATE customers SET name = 'x' WHERE id = 1");
    const retryId = requestIdFrom((await retry.waitForOutput(/request \d+/i, 30_000, 'stderr'))[0]);
    await retry.waitForExit(30_000);
    assert.equal((await statusOn(replicas.A, id)).status, 'pending');

    await child.stop('SIGKILL');
    await held.waitForExit(30_000);
    const cancelled = await eventually('the dead replica’s request to be cancelled', async () => {
      const r = await statusOn(replicas.A, id);
      return r.status === 'pending' ? undefined : r;
    });
    assert.equal(cancelled.status, 'cancelled');
    assert.match(cancelled.reason ?? '', /lease/);
    assert.equal((await statusOn(replicas.B, retryId)).status, 'pending');
    assert.equal(await rowExists(3), true);

    // The survivors still serve reads, and holds that another survivor decides.
    const read = psqlCommand(via(replicas.B), 'SELECT count(*) FROM orders', ['-A', '-t']);
    assert.equal((await read.waitForExit(30_000)).code, 0, read.output());
    const verify = await api<{ ok: boolean }>(replicas.B, 'GET', '/api/v1/audit/verify', undefined, 'alice');
    assert.equal(verify.body.ok, true, verify.text);
  });

  test('draining: a closing replica reports not ready and waits for open connections', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const client = await pgThrough(via(replicas.B, 'bench'));
    await client.query('SELECT 1');
    let closed = false;
    const closing = b.close({ drainMs: 30_000 }).then(() => {
      closed = true;
    });
    const ready = await eventually('B to report draining', async () => {
      const res = await api<{ ready: boolean; checks: Record<string, string> }>(
        replicas.B,
        'GET',
        '/api/v1/ready',
      );
      return res.status === 503 ? res.body : undefined;
    });
    assert.equal(ready.ready, false);
    assert.equal(ready.checks.draining, 'shutting down');
    // Still serving the connection it has while draining.
    assert.equal((await client.query('SELECT count(*)::int AS n FROM orders')).rows[0].n > 0, true);
    assert.equal(closed, false);
    await client.end();
    await closing;
    // A stays ready and serving.
    assert.equal((await api(replicas.A, 'GET', '/api/v1/ready')).status, 200);
  });
});

describe('a replica whose store goes away', () => {
  test('reports not ready, naming the store, and still shuts down', { timeout: TEST_TIMEOUT }, async () => {
    const store = await startPostgres({ sample: false });
    const own = setupReplicas(target, store.connectionString('postgres'));
    const gw = await own.start({ leaseMs: LEASE_MS, reconcileMs: 1_000 });
    const replica = replicaOf('lonely', gw);
    try {
      assert.equal((await own.api(replica, 'GET', '/api/v1/ready')).status, 200);
      await store.stop();
      const ready = await eventually('the replica to report the store down', async () => {
        const res = await own.api<{ ready: boolean; checks: Record<string, string> }>(
          replica,
          'GET',
          '/api/v1/ready',
        );
        return res.status === 503 && res.body.checks.store !== 'ok' ? res.body : undefined;
      });
      assert.equal(ready.ready, false);
      assert.notEqual(ready.checks.bus, 'ok', 'the notification connection is gone too');
      // Fails closed: a write cannot be recorded, so it is refused rather than forwarded.
      const p = psqlCommand(own.via(replica, 'bench'), "INSERT INTO audit_notes (note) VALUES ('x')");
      const exit = await p.waitForExit(60_000);
      assert.notEqual(exit.code, 0, p.output());
      assert.match(p.stderr(), /audit|store/i);
    } finally {
      await gw.close();
      await store.stop();
      own.remove();
    }
  });
});
