/**
 * The control-plane REST API, under /api/v1. Callers authenticate with
 * `Authorization: Bearer <token>`. Reviewers (principals in a group that the policy names as
 * reviewers anywhere) may list and decide requests; anyone else may only read their own
 * requests, so an agent can poll the status of what it asked for.
 */

import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Principal } from '../core/action.ts';
import type { ApprovalRequest, RequestFilter } from '../core/approvals/request.ts';
import { REQUEST_STATUSES } from '../core/approvals/request.ts';
import { type VerifyResult, verifyChain } from '../core/audit/verify.ts';
import { AirlockError, isAirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import { parseDuration } from '../core/policy/schema.ts';
import type { Store } from '../core/store.ts';
import { type RequestPayload, requestPayload } from '../notify/summary.ts';
import { requestPage } from './page.ts';
import { policyTest } from './policy-test.ts';

/** What the API needs from the approvals service. */
export interface ApprovalsApi {
  get(id: number): Promise<ApprovalRequest | undefined>;
  list(filter?: RequestFilter): Promise<ApprovalRequest[]>;
  approve(
    id: number,
    reviewer: Principal,
    opts?: { note?: string; windowMs?: number },
  ): Promise<ApprovalRequest>;
  deny(id: number, reviewer: Principal, reason: string): Promise<ApprovalRequest>;
}

export interface ApiOptions {
  readonly policy: Policy;
  readonly store: Store;
  readonly approvals: ApprovalsApi;
  readonly tokens: Authenticator;
  /** Where callers reach the PostgreSQL listener, or undefined when it is off. */
  /** Where each protocol listener runs, for telling callers where to connect. */
  readonly listeners: () => { readonly [protocol: string]: { host: string; port: number } | undefined };
  readonly logger?: Logger | undefined;
  /** Verification with checkpoint keys and anchors (the gateway's); default: the chain alone. */
  readonly auditVerify?: (() => Promise<VerifyResult>) | undefined;
  /**
   * A request (headers and body) must arrive within this; default twice the policy's startup
   * timeout (30 s by default). Only receiving counts: a held MCP tool call may wait far longer.
   */
  readonly requestTimeoutMs?: number | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Every group the policy names as a reviewer group. */
export function reviewerGroups(policy: Policy): Set<string> {
  const groups = new Set<string>(policy.defaultReview.groups);
  for (const rule of policy.rules) for (const g of rule.review?.groups ?? []) groups.add(g);
  for (const c of policy.connections.values()) for (const g of c.review?.groups ?? []) groups.add(g);
  return groups;
}

export function isReviewer(policy: Policy, principal: Principal, groups = reviewerGroups(policy)): boolean {
  return principal.groups.some((g) => groups.has(g));
}

/**
 * Whether `principal` may override a review (policy `break_glass.groups`) and how long the
 * justification must be, so a client can offer the override only to those the API accepts.
 */
export function breakGlassFor(policy: Policy, principal: Principal): { minJustification: number } | null {
  const bg = policy.breakGlass;
  if (!bg || !principal.groups.some((g) => bg.groups.includes(g))) return null;
  return { minJustification: bg.minJustification };
}

/**
 * The public JSON shape of a request: the same shape webhook receivers get, so one function
 * defines it. Attributes are left out: they are protocol internals.
 */
export function requestJson(policy: Policy, r: ApprovalRequest): RequestPayload {
  return requestPayload(policy.publicUrl, r, { attributes: true });
}

const idParams = z.object({ id: z.coerce.number().int().positive() });
const instant = z
  .string()
  .min(1)
  .transform((s) => (/^\d+$/.test(s) ? Number(s) : Date.parse(s)))
  .refine((n) => Number.isFinite(n), 'an ISO 8601 time such as 2026-11-21T09:00:00Z, or epoch milliseconds');
const listQuery = z.strictObject({
  /** `decided`: every status but pending. */
  status: z.enum([...REQUEST_STATUSES, 'all', 'decided']).default('pending'),
  since: instant.optional(),
  until: instant.optional(),
  connection: z.string().min(1).optional(),
  principal: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z.coerce.number().int().positive().optional(),
});
const approveBody = z.strictObject({
  note: z.string().max(2000).optional(),
  window: z
    .string()
    .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 15m')
    .optional(),
});
const denyBody = z.strictObject({
  reason: z.string().trim().min(1, 'say why: the reason is sent back to the caller').max(2000),
});
const auditQuery = z.strictObject({
  from: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const policyTestBody = z
  .strictObject({
    as: z.string().min(1),
    connection: z.string().min(1),
    sql: z.string().min(1).max(1_000_000).optional(),
    /** The shell command line, for an SSH connection (`sql` is accepted there too). */
    command: z.string().min(1).max(1_000_000).optional(),
  })
  .refine((b) => (b.sql === undefined) !== (b.command === undefined), {
    message: 'give exactly one of `sql` (SQL connections) or `command` (SSH connections)',
  });

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const detail = r.error.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
  throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `invalid ${what}: ${detail}`, {
    hint: 'see the API reference in the README',
  });
}

/** Store calls: anything that is not already an AirlockError means the store failed. */
async function viaStore<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isAirlockError(err)) throw err;
    throw new AirlockError('AIRLOCK_E_STORE_UNAVAILABLE', 'the Airlock store could not be reached', {
      hint: 'check the store (disk space, file permissions, database reachability) and retry',
      cause: err,
    });
  }
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m)
    throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'the Authorization header is not "Bearer <token>"', {
      hint: 'send "Authorization: Bearer <your Airlock token>" (the CLI reads AIRLOCK_TOKEN)',
    });
  return m[1];
}

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const { policy, approvals, store, tokens } = opts;
  const groups = reviewerGroups(policy);
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger as FastifyBaseLogger } : { logger: false }),
    // Per-request lines would repeat every poll of a waiting agent; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 2 * 1024 * 1024,
    // A caller that stops halfway through a body would otherwise hold its socket for ever.
    requestTimeout: opts.requestTimeoutMs ?? 2 * (policy.limits?.startupTimeoutMs ?? 15_000),
  });

  app.setErrorHandler((err: unknown, request, reply) => {
    let e: AirlockError;
    if (isAirlockError(err)) e = err;
    else if (
      typeof err === 'object' &&
      err !== null &&
      'statusCode' in err &&
      (err as { statusCode: number }).statusCode < 500
    )
      e = new AirlockError(
        'AIRLOCK_E_BAD_REQUEST',
        String((err as { message?: unknown }).message ?? 'bad request'),
        { hint: 'send a JSON body' },
      );
    else {
      request.log.error({ err }, 'internal error in the API');
      e = new AirlockError('AIRLOCK_E_INTERNAL', 'an internal error occurred', {
        hint: 'see the gateway log for details',
      });
    }
    if (e.status >= 500 && e.code !== 'AIRLOCK_E_INTERNAL')
      request.log.warn({ code: e.code, err: e.cause }, e.message);
    void reply.status(e.status).send({ error: e.toJSON() });
  });

  app.setNotFoundHandler((request, reply) => {
    const e = new AirlockError(
      'AIRLOCK_E_BAD_REQUEST',
      `no such endpoint: ${request.method} ${request.url.split('?')[0]}`,
      {
        hint: 'the API lives under /api/v1 (see the README)',
        status: 404,
      },
    );
    void reply.status(404).send({ error: e.toJSON() });
  });

  const authenticate = async (request: FastifyRequest): Promise<Principal> => {
    const principal = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    request.principal = principal;
    return principal;
  };

  const requireReviewer = async (request: FastifyRequest): Promise<Principal> => {
    const principal = await authenticate(request);
    if (!isReviewer(policy, principal, groups))
      throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${principal.name} is not a reviewer`, {
        hint: `only members of ${[...groups].map((g) => `"${g}"`).join(', ')} may review requests`,
      });
    return principal;
  };

  const findRequest = async (id: number): Promise<ApprovalRequest> => {
    const r = await viaStore(() => approvals.get(id));
    if (!r)
      throw new AirlockError('AIRLOCK_E_REQUEST_NOT_FOUND', `there is no request ${id}`, {
        hint: 'list requests with `airlock requests --status all`',
      });
    return r;
  };

  app.get('/api/v1/health', async () => ({ ok: true }));

  app.get('/api/v1/whoami', async (request) => {
    const p = await authenticate(request);
    return {
      name: p.name,
      kind: p.kind,
      groups: [...p.groups],
      reviewer: isReviewer(policy, p, groups),
      breakGlass: breakGlassFor(policy, p),
    };
  });

  app.get('/api/v1/requests', async (request) => {
    const q = parse(listQuery, request.query, 'query');
    // A requester may list its own requests (principal=<itself>), as it may read each of them:
    // `airlock exec` finds the request its held statement made this way.
    const me = await authenticate(request);
    if (q.principal !== me.name) await requireReviewer(request);
    const filter: RequestFilter = {
      ...(q.status === 'all'
        ? {}
        : q.status === 'decided'
          ? { status: REQUEST_STATUSES.filter((s) => s !== 'pending') }
          : { status: [q.status] }),
      ...(q.since !== undefined ? { since: q.since } : {}),
      ...(q.until !== undefined ? { until: q.until } : {}),
      ...(q.connection ? { connection: q.connection } : {}),
      ...(q.principal ? { principal: q.principal } : {}),
      ...(q.before ? { beforeId: q.before } : {}),
      limit: q.limit,
    };
    const list = await viaStore(() => approvals.list(filter));
    return { requests: list.map((r) => requestJson(policy, r)) };
  });

  app.get('/api/v1/requests/:id', async (request) => {
    const principal = await authenticate(request);
    const { id } = parse(idParams, request.params, 'request id');
    const reviewer = isReviewer(policy, principal, groups);
    if (!reviewer) {
      const r = await viaStore(() => approvals.get(id));
      // Same answer for "not yours" and "does not exist": ids are sequential, so a
      // non-reviewer must not learn from the API which requests other people made.
      if (!r || r.principal.name !== principal.name)
        throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${principal.name} may only read its own requests`, {
          hint: 'ask a reviewer, or use a reviewer token',
        });
      return { request: requestJson(policy, r) };
    }
    return { request: requestJson(policy, await findRequest(id)) };
  });

  app.post('/api/v1/requests/:id/approve', async (request) => {
    const reviewer = await requireReviewer(request);
    const { id } = parse(idParams, request.params, 'request id');
    const body = parse(approveBody, request.body, 'body');
    await findRequest(id);
    const windowMs = body.window === undefined ? undefined : parseDuration(body.window);
    const r = await viaStore(() =>
      approvals.approve(id, reviewer, {
        ...(body.note !== undefined ? { note: body.note } : {}),
        ...(windowMs !== undefined ? { windowMs } : {}),
      }),
    );
    return { request: requestJson(policy, r) };
  });

  app.post('/api/v1/requests/:id/deny', async (request) => {
    const reviewer = await requireReviewer(request);
    const { id } = parse(idParams, request.params, 'request id');
    const body = parse(denyBody, request.body, 'body');
    await findRequest(id);
    const r = await viaStore(() => approvals.deny(id, reviewer, body.reason));
    return { request: requestJson(policy, r) };
  });

  app.get('/api/v1/connections', async (request) => {
    await authenticate(request);
    const pg = opts.listeners().postgres;
    return {
      connections: [...policy.connections.values()].map((c) => ({
        name: c.name,
        type: c.type,
        description: c.description ?? null,
        ...(c.type === 'postgres' && pg
          ? { postgres: { host: pg.host, port: pg.port, database: c.name } }
          : {}),
        ...(c.type === 'mysql' && opts.listeners().mysql
          ? {
              mysql: {
                host: opts.listeners().mysql!.host,
                port: opts.listeners().mysql!.port,
                database: c.name,
              },
            }
          : {}),
        ...((c.type === 'http' || c.type === 'kubernetes' || c.type === 'git') && opts.listeners().http
          ? {
              http: {
                url: `${policy.tls ? 'https' : 'http'}://${opts.listeners().http!.host}:${opts.listeners().http!.port}/${c.type}/${c.name}`,
              },
            }
          : {}),
      })),
    };
  });

  app.get('/api/v1/audit/verify', async (request) => {
    await requireReviewer(request);
    return viaStore(() => (opts.auditVerify ? opts.auditVerify() : verifyChain(store)));
  });

  app.get('/api/v1/audit', async (request) => {
    await requireReviewer(request);
    const q = parse(auditQuery, request.query, 'query');
    const records = await viaStore(() => store.readAudit(q.from, q.limit));
    return { records };
  });

  app.post('/api/v1/policy/test', async (request) => {
    await requireReviewer(request);
    const body = parse(policyTestBody, request.body, 'body');
    return policyTest(policy, tokens, body);
  });

  app.get('/requests/:id', async (request, reply: FastifyReply) => {
    const { id } = parse(idParams, request.params, 'request id');
    let viewer: Principal | undefined;
    try {
      viewer = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    } catch {
      viewer = undefined;
    }
    const r = await viaStore(() => approvals.get(id));
    const full =
      r !== undefined &&
      viewer !== undefined &&
      (isReviewer(policy, viewer, groups) || viewer.name === r.principal.name);
    void reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
      .status(r ? 200 : 404)
      .send(requestPage(id, r && requestJson(policy, r), full));
  });

  return app;
}
