/**
 * Readiness for load balancers. `GET /api/v1/health` (in api.ts) says the process answers;
 * `GET /api/v1/ready` says this replica should get traffic: the store answers, the audit log
 * can be written (the gateway refuses actions it cannot record), the cross-replica bus and
 * lease are up, and the replica is not draining for shutdown. 200 when ready, 503 otherwise,
 * with each check named so an operator sees which one failed. No authentication: a load
 * balancer has no token, and the answer names no secret.
 */
import type { FastifyInstance } from 'fastify';

export interface ReadinessCheck {
  readonly name: string;
  /** Resolves when fine; a rejection (or `false`) means not ready. */
  check(): Promise<unknown> | unknown;
}

export interface HealthDeps {
  readonly checks: () => readonly ReadinessCheck[];
  /** True once shutdown started: report not ready so balancers move traffic away first. */
  readonly draining: () => boolean;
  /** Per check. Default 2 s. */
  readonly timeoutMs?: number;
}

export function registerHealthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  const timeoutMs = deps.timeoutMs ?? 2_000;
  app.get('/api/v1/ready', async (_request, reply) => {
    const results: Record<string, string> = {};
    if (deps.draining()) results.draining = 'shutting down';
    await Promise.all(
      deps.checks().map(async (c) => {
        results[c.name] = await run(c, timeoutMs);
      }),
    );
    const ready = Object.values(results).every((r) => r === 'ok');
    void reply.header('cache-control', 'no-store');
    return reply.status(ready ? 200 : 503).send({ ready, checks: results });
  });
}

async function run(c: ReadinessCheck, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      Promise.resolve().then(() => c.check()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return outcome === false ? 'failing' : 'ok';
  } catch (err) {
    // Messages of our own checks and of drivers; a connection string never reaches them.
    return (err as Error)?.message ?? 'failing';
  } finally {
    if (timer) clearTimeout(timer);
  }
}
