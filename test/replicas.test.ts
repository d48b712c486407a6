/**
 * Several replicas, one PostgreSQL store: three gateways (two in this process, one in a child
 * process that can be killed with SIGKILL) in front of one private target database, sharing a
 * second private PostgreSQL as their store. A statement held on one replica is decided through
 * another; the audit log stays one chain; a dead replica's held requests are cancelled by the
 * survivors once its lease runs out; readiness and draining behave as a load balancer needs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyChain } from '../src/core/audit/verify.ts';
import { loadPolicyFile } from '../src/core/policy/load.ts';
import { type Gateway, startGateway } from '../src/server/gateway.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { CONNECTION, DEFAULT_RULES, PRINCIPALS, type PrincipalName } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { type ManagedProcess, startProcess, stopAll } from './support/processes.ts';
import { type PsqlTarget, pgThrough, psqlCommand } from './support/psql.ts';

const ROOT = join(import.meta.dirname, '..');
const LEASE_MS = 1_500;
const TEST_TIMEOUT = 120_000;

interface Replica {
  readonly name: string;
  readonly api: string;
  readonly pg: { readonly host: string; readonly port: number };
}

let storeDb: PrivatePostgres;
let target: PrivatePostgres;
let dir: string;
let policyFile: string;
let storeUrl: string;
const tokens = {} as Record<PrincipalName, string>;
let a: Gateway;
let b: Gateway;
let child: ManagedProcess;
let replicas: Record<'A' | 'B' | 'C', Replica>;

function writePolicy(): void {
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const identities: string[] = [];
  for (const [name, p] of Object.entries(PRINCIPALS) as [
    PrincipalName,
    (typeof PRINCIPALS)[PrincipalName],
  ][]) {
    tokens[name] = `alk_test_${name}_${randomBytes(24).toString('base64url')}`;
    writeFileSync(join(dir, 'secrets', `${name}.token`), `${tokens[name]}\n`, { mode: 0o600 });
    identities.push(
      `    - { name: ${name}, token: "\${file:./secrets/${name}.token}", kind: ${p.kind}, groups: [${p.groups.join(', ')}] }`,
    );
  }
  writeFileSync(join(dir, 'secrets', 'upstream.password'), `${target.app.password}\n`, { mode: 0o600 });
  policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: 127.0.0.1:0
store: ${storeUrl}

identities:
  tokens:
${identities.join('\n')}

connections:
  ${CONNECTION}:
    type: postgres
    upstream:
      host: ${target.host}
      port: ${target.port}
      database: ${target.app.database}
      user: ${target.app.user}
      password: "\${file:./secrets/upstream.password}"
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${DEFAULT_RULES}
`,
  );
}

function startChild(): ManagedProcess {
  return startProcess(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'test/support/replica-process.ts'), policyFile, String(LEASE_MS)],
    { cwd: ROOT },
  );
}

function replicaOf(name: string, gw: Gateway): Replica {
  return { name, api: gw.api.url, pg: gw.postgres };
}

async function api<T = unknown>(
  replica: Replica,
  method: string,
  path: string,
  body?: unknown,
  as?: PrincipalName,
): Promise<{ status: number; body: T; text: string }> {
  const headers: Record<string, string> = {};
  if (as) headers.authorization = `Bearer ${tokens[as]}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(replica.api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // keep the text
  }
  return { status: res.status, body: parsed as T, text };
}

function via(replica: Replica, who: PrincipalName = 'agent'): PsqlTarget {
  return { ...replica.pg, database: CONNECTION, token: tokens[who], user: who };
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

async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
  dir = mkdtempSync(join(tmpdir(), 'airlock-replicas-'));
  writePolicy();
  // Three replicas start at once against an empty store: the migrations must run once.
  const policy = loadPolicyFile(policyFile);
  child = startChild();
  const [ga, gb, ready] = await Promise.all([
    startGateway({ policy, leaseMs: LEASE_MS, reconcileMs: 1_000 }),
    startGateway({ policy, leaseMs: LEASE_MS, reconcileMs: 1_000 }),
    child.waitForOutput(/READY (.*)\n/, 60_000, 'stdout'),
  ]);
  a = ga;
  b = gb;
  const c = JSON.parse(ready[1]!) as { api: string; postgres: Replica['pg'] };
  replicas = { A: replicaOf('A', a), B: replicaOf('B', b), C: { name: 'C', api: c.api, pg: c.postgres } };
});

after(async () => {
  await a?.close();
  await b?.close();
  await child?.stop('SIGKILL');
  await stopAll();
  await storeDb?.stop();
  await target?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
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
