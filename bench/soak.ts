/**
 * `npm run soak`: mixed traffic through the real `airlock serve` process for a bounded time
 * (AIRLOCK_SOAK_SECONDS, default 600): services reading and writing freely, an agent whose
 * writes are held, a reviewer approving most and denying some. At the end every statement must
 * be accounted for in the audit log, the chain must verify, and the gateway's memory and open
 * file descriptors must be flat (last quarter against the first, after warm-up). Writes
 * .bench/soak.json; exits non-zero on a failed check. Stops by itself.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { startPostgres } from '../test/support/postgres.ts';
import { stopAll } from '../test/support/processes.ts';
import { pgThrough } from '../test/support/psql.ts';
import { serveGateway } from '../test/support/served-gateway.ts';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = Number(process.env.AIRLOCK_SOAK_SECONDS ?? 600);
const SERVICES = Number(process.env.AIRLOCK_SOAK_CLIENTS ?? 6);
const SAMPLE_MS = Math.max(1000, Math.min(10_000, (SECONDS * 1000) / 40));

interface Counts {
  reads: number;
  writes: number;
  heldSent: number;
  approved: number;
  denied: number;
  errors: number;
}

async function main(): Promise<number> {
  const watchdog = setTimeout(
    () => {
      console.error('soak: watchdog fired; stopping');
      process.exit(2);
    },
    (SECONDS + 300) * 1000,
  );
  watchdog.unref();
  const upstream = await startPostgres();
  const served = await serveGateway(upstream);
  const counts: Counts = { reads: 0, writes: 0, heldSent: 0, approved: 0, denied: 0, errors: 0 };
  const samples: { at: number; rss: number; fds: number }[] = [];
  let ok = true;
  try {
    await served.start();
    const deadline = Date.now() + SECONDS * 1000;
    const running = () => Date.now() < deadline;

    const service = async (n: number) => {
      const c: pg.Client = await pgThrough(served.target('bench'));
      c.on('error', () => {});
      let i = 0;
      while (running()) {
        i++;
        try {
          if (i % 4 === 0) {
            await c.query('UPDATE orders SET total = total + 0 WHERE id = $1', [(i % 50) + 1]);
            counts.writes++;
          } else {
            await c.query('SELECT id, total FROM orders WHERE id = $1', [((i + n) % 50) + 1]);
            counts.reads++;
          }
        } catch {
          counts.errors++;
        }
      }
      await c.end();
    };

    const agent = async () => {
      const c: pg.Client = await pgThrough(served.target('agent'));
      c.on('error', () => {});
      let i = 0;
      while (running()) {
        i++;
        counts.heldSent++;
        try {
          // Unique text per statement: every one is its own request.
          await c.query(`UPDATE orders SET total = total WHERE id = ${(i % 50) + 1} AND ${i} = ${i}`);
        } catch (err) {
          if (!/denied/.test((err as Error).message)) counts.errors++;
        }
      }
      await c.end();
    };

    const reviewer = async () => {
      while (running()) {
        try {
          const { requests } = await served.api<{ requests: { id: number }[] }>(
            'GET',
            '/api/v1/requests?limit=50',
          );
          for (const r of requests) {
            if (r.id % 5 === 0) {
              await served.api('POST', `/api/v1/requests/${r.id}/deny`, {
                reason: 'soak: every fifth is denied',
              });
              counts.denied++;
            } else {
              await served.api('POST', `/api/v1/requests/${r.id}/approve`, {});
              counts.approved++;
            }
          }
        } catch {
          // Decided meanwhile (expired, or the agent's connection ended): ignore.
        }
        await new Promise((done) => setTimeout(done, 50));
      }
    };

    const sampler = async () => {
      while (running()) {
        samples.push({ at: Date.now(), ...served.usage() });
        await new Promise((done) => setTimeout(done, SAMPLE_MS));
      }
      samples.push({ at: Date.now(), ...served.usage() });
    };

    await Promise.all([
      ...Array.from({ length: SERVICES }, (_, n) => service(n)),
      agent(),
      agent(),
      reviewer(),
      sampler(),
    ]);
    // Let the batched read records land.
    await new Promise((done) => setTimeout(done, 1500));

    const verify = await served.api<{ ok: boolean; records?: number }>('GET', '/api/v1/audit/verify');
    const types = new Map<string, number>();
    for (let from = 1; ; from += 1000) {
      const page = await served.api<{ records: { type: string }[] }>(
        'GET',
        `/api/v1/audit?from=${from}&limit=1000`,
      );
      for (const r of page.records) types.set(r.type, (types.get(r.type) ?? 0) + 1);
      if (page.records.length < 1000) break;
    }
    const allowed = types.get('action.allowed') ?? 0;
    const created = types.get('request.created') ?? 0;
    const served_ = counts.reads + counts.writes;
    const quarter = Math.max(1, Math.floor(samples.length / 4));
    // The first sample is taken before the load starts; compare after warm-up.
    const first = samples.slice(1, 1 + quarter);
    const last = samples.slice(-quarter);
    const avg = (xs: { rss: number; fds: number }[], k: 'rss' | 'fds') =>
      xs.reduce((s, x) => s + x[k], 0) / Math.max(1, xs.length);
    const rssGrowth = avg(last, 'rss') / Math.max(1, avg(first, 'rss'));
    const fdGrowth = avg(last, 'fds') - avg(first, 'fds');
    const checks = {
      chainVerifies: verify.ok === true,
      everyServiceStatementAudited: allowed >= served_,
      everyHeldStatementHasARequest: created >= counts.heldSent - 2,
      memoryFlat: rssGrowth <= 1.25,
      fdsFlat: fdGrowth <= 5,
      noUnexpectedErrors: counts.errors === 0,
    };
    ok = Object.values(checks).every(Boolean);
    const result = {
      seconds: SECONDS,
      counts,
      audit: Object.fromEntries(types),
      memory: {
        firstMiB: +(avg(first, 'rss') / 2 ** 20).toFixed(1),
        lastMiB: +(avg(last, 'rss') / 2 ** 20).toFixed(1),
        growth: +rssGrowth.toFixed(3),
      },
      fds: { first: +avg(first, 'fds').toFixed(1), last: +avg(last, 'fds').toFixed(1) },
      checks,
    };
    mkdirSync(join(ROOT, '.bench'), { recursive: true });
    writeFileSync(join(ROOT, '.bench', 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(
      `soak ${SECONDS}s: ${served_} service statements (${counts.reads} reads, ${counts.writes} writes), ` +
        `${counts.heldSent} held (${counts.approved} approved, ${counts.denied} denied), ${counts.errors} errors`,
    );
    console.log(
      `audit: ${allowed} allowed, ${created} requests, chain ${verify.ok ? 'verifies' : 'BROKEN'}; ` +
        `memory ${result.memory.firstMiB} → ${result.memory.lastMiB} MiB (x${result.memory.growth}), ` +
        `fds ${result.fds.first} → ${result.fds.last}`,
    );
    for (const [name, pass] of Object.entries(checks)) console.log(`${pass ? 'ok  ' : 'FAIL'} ${name}`);
  } finally {
    await served.close();
    await upstream.stop();
    await stopAll();
  }
  return ok ? 0 : 1;
}

process.exit(await main());
