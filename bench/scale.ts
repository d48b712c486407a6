/**
 * `npm run bench -- --scale`: several replicas on one PostgreSQL store.
 *
 * - approve→release: a statement held on replica A is approved through replica B's API; the
 *   time from sending the approval to the statement completing on A (p50/p99; target p99 under
 *   100 ms). The decision crosses replicas through LISTEN/NOTIFY.
 * - audit appends/s on the PostgreSQL store with one and with two writers (durable appends,
 *   many callers each, so group commit and the cross-replica lock both show).
 * - pgbench -S through one replica and through two (clients split between them), with
 *   PostgreSQL as the store, to show the store does not cap the data path.
 *
 * Environment: BENCH_SECONDS (pgbench per run, default 10), BENCH_CLIENTS (default 8),
 * BENCH_SCALE (pgbench -s, default 10), BENCH_APPROVALS (default 200). Writes .bench/scale.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { AuditLog } from '../src/core/audit/log.ts';
import { verifyChain } from '../src/core/audit/verify.ts';
import type { Gateway } from '../src/server/gateway.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { findTool, startPostgres } from '../test/support/postgres.ts';
import { startProcess, stopAll } from '../test/support/processes.ts';
import { pgThrough } from '../test/support/psql.ts';
import { type Replica, replicaOf, setupReplicas } from '../test/support/replicas.ts';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = positive('BENCH_SECONDS', 10);
const CLIENTS = positive('BENCH_CLIENTS', 8);
const SCALE = positive('BENCH_SCALE', 10);
const APPROVALS = positive('BENCH_APPROVALS', 200);
const TARGET_P99_MS = 100;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

function log(line: string): void {
  process.stderr.write(`[bench:scale] ${line}\n`);
}

function stats(samples: number[]): { n: number; p50Ms: number; p99Ms: number; maxMs: number } {
  const sorted = [...samples].sort((x, y) => x - y);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    n: sorted.length,
    p50Ms: round(at(0.5)),
    p99Ms: round(at(0.99)),
    maxMs: round(sorted.at(-1) ?? 0),
  };
}

/** Approve through B, measure until the statement held on A completes. */
async function approveToRelease(
  setup: ReturnType<typeof setupReplicas>,
  a: Replica,
  b: Replica,
  n: number,
): Promise<number[]> {
  const client: pg.Client = await pgThrough(setup.via(a, 'agent'));
  const held: { id: number | undefined; wake: (() => void) | undefined } = { id: undefined, wake: undefined };
  client.on('notice', (msg) => {
    const m = /request (\d+)/i.exec(msg.message ?? '');
    if (m && held.id === undefined) {
      held.id = Number(m[1]);
      held.wake?.();
    }
  });
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      held.id = undefined;
      const noticed = new Promise<void>((resolve) => {
        held.wake = resolve;
      });
      const running = client.query('UPDATE orders SET total = total WHERE id = $1', [1 + (i % 50)]);
      await noticed;
      const t0 = performance.now();
      const res = await setup.api(b, 'POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
      if (res.status !== 200) throw new Error(`approve failed: ${res.text}`);
      await running;
      samples.push(performance.now() - t0);
    }
  } finally {
    await client.end();
  }
  return samples;
}

/** Durable appends per second from `writers` stores, each with `callers` concurrent appenders. */
async function auditRate(url: string, writers: number, callers: number, ms: number): Promise<number> {
  const stores = Array.from({ length: writers }, () => new PostgresStore({ connectionString: url }));
  try {
    const logs = await Promise.all(
      stores.map(async (s) => {
        await s.migrate();
        const l = new AuditLog(s);
        await l.init();
        return l;
      }),
    );
    let count = 0;
    const deadline = performance.now() + ms;
    const t0 = performance.now();
    await Promise.all(
      logs.flatMap((l, w) =>
        Array.from({ length: callers }, async (_, c) => {
          while (performance.now() < deadline) {
            await l.append('action.forwarded', { writer: w, caller: c, n: count });
            count++;
          }
        }),
      ),
    );
    const rate = count / ((performance.now() - t0) / 1000);
    for (const l of logs) await l.close();
    const verified = await verifyChain(stores[0]!);
    if (!verified.ok) throw new Error(`the chain does not verify: ${JSON.stringify(verified)}`);
    return Math.round(rate);
  } finally {
    for (const s of stores) await s.close();
  }
}

async function pgbenchSelect(
  bin: string,
  setup: ReturnType<typeof setupReplicas>,
  through: readonly Replica[],
): Promise<number> {
  const per = Math.max(1, Math.floor(CLIENTS / through.length));
  const runs = through.map((r) => {
    const t = setup.via(r, 'bench');
    const p = startProcess(
      bin,
      [
        '-n',
        '-S',
        '-c',
        String(per),
        '-j',
        '1',
        '-T',
        String(SECONDS),
        '-h',
        t.host,
        '-p',
        String(t.port),
        '-U',
        'bench',
        t.database,
      ],
      { env: { ...process.env, PGPASSWORD: t.token, PGCONNECT_TIMEOUT: '20', PGSSLMODE: 'disable' } },
    );
    p.endInput();
    return p;
  });
  let total = 0;
  for (const p of runs) {
    const exit = await p.waitForExit((SECONDS + 60) * 1000);
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(p.stdout())?.[1];
    if (exit.code !== 0 || tps === undefined)
      throw new Error(`pgbench failed: ${p.stderr().trim().slice(-300)}`);
    total += Number(tps);
  }
  return Math.round(total);
}

export async function benchScale(): Promise<void> {
  const pgbenchBin = findTool('pgbench');
  log('starting a private PostgreSQL store and a private target');
  const [storeDb, target] = await Promise.all([
    startPostgres({ sample: false, settings: { max_connections: 200 } }),
    startPostgres({ settings: { max_connections: 200 } }),
  ]);
  const gateways: Gateway[] = [];
  let setup: ReturnType<typeof setupReplicas> | undefined;
  try {
    await storeDb.psql('CREATE DATABASE airlock', { db: 'postgres' });
    await storeDb.psql('CREATE DATABASE audit_bench', { db: 'postgres' });
    setup = setupReplicas(target, storeDb.connectionString('airlock'));
    gateways.push(...(await Promise.all([setup.start(), setup.start()])));
    const [a, b] = [replicaOf('A', gateways[0]!), replicaOf('B', gateways[1]!)];

    log(`approve on B → release on A, ${APPROVALS} statements`);
    await approveToRelease(setup, a, b, 5); // warm-up
    const approve = stats(await approveToRelease(setup, a, b, APPROVALS));
    log(`  p50 ${approve.p50Ms} ms, p99 ${approve.p99Ms} ms, max ${approve.maxMs} ms`);

    const auditUrl = storeDb.connectionString('audit_bench');
    log('audit appends/s, 1 writer × 8 callers, then 2 writers × 8 callers (3 s each)');
    const one = await auditRate(auditUrl, 1, 8, 3_000);
    const two = await auditRate(auditUrl, 2, 8, 3_000);
    log(`  1 writer ${one}/s, 2 writers ${two}/s`);

    let pgbench: { one: number; two: number } | undefined;
    if (pgbenchBin) {
      log(`pgbench -i -s ${SCALE} on the target`);
      const init = startProcess(
        pgbenchBin,
        [
          '-i',
          '-s',
          String(SCALE),
          '-q',
          '-h',
          target.host,
          '-p',
          String(target.port),
          '-U',
          target.app.user,
          target.app.database,
        ],
        { env: { ...process.env, PGPASSWORD: target.app.password } },
      );
      init.endInput();
      if ((await init.waitForExit(600_000)).code !== 0)
        throw new Error(`pgbench -i failed: ${init.stderr()}`);
      log(`pgbench -S, ${CLIENTS} clients, ${SECONDS} s: through A, then split over A and B`);
      pgbench = {
        one: await pgbenchSelect(pgbenchBin, setup, [a]),
        two: await pgbenchSelect(pgbenchBin, setup, [a, b]),
      };
      log(`  1 replica ${pgbench.one} tps, 2 replicas ${pgbench.two} tps`);
    } else log('pgbench is not installed; skipping the data-path comparison');

    const result = {
      at: new Date().toISOString(),
      node: process.version,
      approveToRelease: { ...approve, targetP99Ms: TARGET_P99_MS, ok: approve.p99Ms < TARGET_P99_MS },
      auditAppendsPerSecond: { oneWriter: one, twoWriters: two },
      ...(pgbench
        ? { pgbenchSelectTps: { ...pgbench, clients: CLIENTS, seconds: SECONDS, scale: SCALE } }
        : {}),
    };
    console.log(JSON.stringify(result, null, 2));
    mkdirSync(join(ROOT, '.bench'), { recursive: true });
    writeFileSync(join(ROOT, '.bench', 'scale.json'), `${JSON.stringify(result, null, 2)}\n`);
    if (!result.approveToRelease.ok) process.exitCode = 1;
  } finally {
    for (const g of gateways) await g.close().catch(() => {});
    setup?.remove();
    await storeDb.stop();
    await target.stop();
  }
}

if (import.meta.filename === process.argv[1]) {
  const watchdog = setTimeout(
    () => {
      log('the scale benchmark exceeded its budget; stopping');
      void stopAll().finally(() => process.exit(2));
    },
    (4 * SECONDS + 900) * 1000,
  );
  watchdog.unref();
  try {
    await benchScale();
  } catch (err) {
    log((err as Error).stack ?? String(err));
    process.exitCode = 1;
  } finally {
    await stopAll();
  }
}
