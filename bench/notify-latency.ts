/**
 * Review latency, end to end in one process over loopback:
 *
 * - notify: from a write reaching the Gate (and being held) to its signed webhook arriving at a
 *   local receiver that verifies the signature;
 * - approve: from Approvals.approve (what the API's approve route calls) to the waiter the
 *   PostgreSQL session blocks on (Gate.settled) resolving.
 *
 * Real Gate, Approvals, AuditLog (durable appends) and SQLite store, the real notifier. Target:
 * both p99 under 50 ms. Run alone with `node --import tsx bench/notify-latency.ts [n]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Action, Principal } from '../src/core/action.ts';
import { InProcessEventBus } from '../src/core/approvals/bus.ts';
import { Approvals } from '../src/core/approvals/service.ts';
import { AuditLog } from '../src/core/audit/log.ts';
import { Gate } from '../src/core/gate.ts';
import { parsePolicy } from '../src/core/policy/load.ts';
import { startNotifier } from '../src/notify/notifier.ts';
import { verifyWebhookSignature } from '../src/notify/signing.ts';
import { openStore } from '../src/store/open.ts';

export interface LatencyStats {
  readonly n: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface NotifyLatencyResult {
  readonly notify: LatencyStats;
  readonly approve: LatencyStats;
  readonly targetMs: number;
  readonly ok: boolean;
}

const TARGET_MS = 50;
const SECRET = 'bench-webhook-secret';
const agent: Principal = { name: 'agent', kind: 'agent', groups: ['bots'] };
const reviewer: Principal = { name: 'bob', kind: 'human', groups: ['dba'] };

function stats(samples: number[]): LatencyStats {
  const sorted = [...samples].sort((a, b) => a - b);
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

export async function benchNotifyLatency(n = 200): Promise<NotifyLatencyResult> {
  // Arrivals of `created` webhooks, by request id; a bad signature is an error, not a sample.
  const arrivedAt = new Map<number, number>();
  const waiting = new Map<number, (at: number) => void>();
  let badSignatures = 0;
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const body = Buffer.concat(chunks).toString('utf8');
      const ok = verifyWebhookSignature(
        SECRET,
        req.headers['x-airlock-timestamp'] as string | undefined,
        body,
        req.headers['x-airlock-signature'] as string | undefined,
      );
      res.writeHead(ok ? 204 : 401).end();
      if (!ok) {
        badSignatures++;
        return;
      }
      const { event, request } = JSON.parse(body) as { event: string; request: { id: number } };
      if (event !== 'created') return;
      arrivedAt.set(request.id, at);
      waiting.get(request.id)?.(at);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as { port: number }).port;

  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-notify-'));
  const policy = parsePolicy(
    `
public_url: http://127.0.0.1:7070
identities:
  tokens:
    - { name: agent, token: agent-token, kind: agent, groups: [bots] }
    - { name: bob, token: bob-token, kind: human, groups: [dba] }
connections:
  bench-db: { type: postgres, upstream: { host: 127.0.0.1, database: app, user: app } }
rules:
  - { name: writes need a DBA, kinds: [write], effect: review, review: { groups: [dba] } }
notify:
  - { type: webhook, url: "http://127.0.0.1:${port}/airlock", secret: "${SECRET}" }
`,
    join(dir, 'airlock.yaml'),
  );
  const store = await openStore('sqlite::memory:', dir);
  const audit = new AuditLog(store);
  await audit.init();
  const bus = new InProcessEventBus();
  const approvals = new Approvals({ store, audit, bus });
  await approvals.start();
  const gate = new Gate({ policy, approvals, audit });
  const notifier = startNotifier({ policy, approvals, bus, audit });

  const action = (i: number): Action => ({
    protocol: 'postgres',
    connection: 'bench-db',
    principal: agent,
    sessionId: `bench-${i}`,
    source: '127.0.0.1:50000',
    kind: 'write',
    summary: `DELETE FROM orders WHERE id = ${i}`,
    normalized: `DELETE FROM orders WHERE id = ${i}`,
    parts: [
      {
        kind: 'write',
        text: `DELETE FROM orders WHERE id = ${i}`,
        statement: 'DeleteStmt',
        tables: ['orders'],
      },
    ],
    attributes: {},
  });

  const hold = async (i: number): Promise<{ id: number; notifyMs: number }> => {
    const t0 = performance.now();
    const outcome = await gate.decide(action(i));
    if (outcome.verdict !== 'hold') throw new Error(`statement ${i} was not held (${outcome.verdict})`);
    const id = outcome.request.id;
    const at = arrivedAt.get(id) ?? (await new Promise<number>((resolve) => waiting.set(id, resolve)));
    arrivedAt.delete(id);
    waiting.delete(id);
    return { id: outcome.request.id, notifyMs: at - t0 };
  };

  const approve = async (id: number): Promise<number> => {
    const waiter = gate.settled(id);
    // Let the waiter register, as a session that has been holding for a while would have.
    await new Promise((r) => setImmediate(r));
    const t0 = performance.now();
    await approvals.approve(id, reviewer);
    const s = await waiter;
    const ms = performance.now() - t0;
    if (s.status !== 'approved') throw new Error(`request ${id} settled as ${s.status}`);
    return ms;
  };

  try {
    // Warm-up: first statements compile, the first keep-alive socket opens.
    for (let i = 0; i < 10; i++) await approve((await hold(-1 - i)).id);
    await notifier.idle();

    const notifyMs: number[] = [];
    const approveMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const { id, notifyMs: ms } = await hold(i);
      notifyMs.push(ms);
      approveMs.push(await approve(id));
    }
    await notifier.idle();
    if (badSignatures > 0) throw new Error(`${badSignatures} webhooks arrived with a bad signature`);
    const failed = notifier.deliveries({ status: ['failed'] });
    if (failed.length > 0)
      throw new Error(`${failed.length} webhooks failed: ${failed[0]!.attempts.at(-1)?.error}`);

    const result: NotifyLatencyResult = {
      notify: stats(notifyMs),
      approve: stats(approveMs),
      targetMs: TARGET_MS,
      ok: false,
    };
    const ok = result.notify.p99Ms < TARGET_MS && result.approve.p99Ms < TARGET_MS;
    const line = (label: string, s: LatencyStats) =>
      `  ${label.padEnd(34)} p50 ${s.p50Ms.toFixed(2).padStart(7)} ms   p99 ${s.p99Ms.toFixed(2).padStart(7)} ms   max ${s.maxMs.toFixed(2).padStart(7)} ms`;
    console.log(`review latency over ${n} requests (target: p99 < ${TARGET_MS} ms)`);
    console.log(line('held → webhook received', result.notify));
    console.log(line('approve → held statement released', result.approve));
    console.log(`  ${ok ? 'within target' : 'OVER TARGET'}`);
    return { ...result, ok };
  } finally {
    await notifier.close();
    await approvals.close();
    await audit.close();
    await store.close();
    await new Promise<void>((resolve) => {
      receiver.closeAllConnections();
      receiver.close(() => resolve());
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = Number(process.argv[2] ?? 200);
  benchNotifyLatency(Number.isInteger(n) && n > 0 ? n : 200).then(
    (r) => {
      process.exitCode = r.ok ? 0 : 1;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
