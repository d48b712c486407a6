/**
 * Grants over the API:
 *  - POST /api/v1/requests/:id/revoke {reason}: an approval can be revoked until it has been
 *    used; a grant with an open window while it is open (live sessions relying on it end);
 *  - POST /api/v1/access {connection, duration, reason, kinds?}: ask for just-in-time access;
 *  - GET /api/v1/access?status=&principal=: access requests, newest first; reviewers see
 *    everyone's, anyone else only their own (so a person can follow what they asked for);
 *  - POST /api/v1/requests/:id/break-glass {justification}: override a review (break-glass
 *    groups only), flagged in the audit log and announced to the notification channels.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ACTION_KINDS } from '../core/action.ts';
import { ACCESS_PROTOCOL, accessRequest } from '../core/approvals/access.ts';
import { REQUEST_STATUSES } from '../core/approvals/request.ts';
import type { Approvals } from '../core/approvals/service.ts';
import { AirlockError } from '../core/errors.ts';
import { breakGlass } from '../core/gate.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import { parseDuration } from '../core/policy/schema.ts';
import { isReviewer, requestJson, reviewerGroups } from './api.ts';

const idParams = z.object({ id: z.coerce.number().int().positive() });
const accessBody = z.strictObject({
  connection: z.string().min(1).max(63),
  duration: z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 2h'),
  reason: z.string().trim().min(1, 'say why: reviewers see it and it is audited').max(2000),
  kinds: z.array(z.enum(ACTION_KINDS)).max(ACTION_KINDS.length).optional(),
});
const accessListQuery = z.strictObject({
  status: z.enum([...REQUEST_STATUSES, 'all']).default('all'),
  principal: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
const breakGlassBody = z.strictObject({
  justification: z.string().trim().min(1, 'say what is happening and why it cannot wait').max(2000),
});
const revokeBody = z.strictObject({
  reason: z.string().trim().min(1, 'say why: the reason is recorded and sent to the caller').max(2000),
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

function bearer(request: FastifyRequest): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
}

export function registerGrantRoutes(
  app: FastifyInstance,
  deps: { policy: Policy; tokens: Authenticator; approvals: Approvals },
): void {
  const { policy, tokens, approvals } = deps;
  app.post('/api/v1/requests/:id/revoke', async (request) => {
    const by = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    const { id } = parse(idParams, request.params, 'request id');
    const { reason } = parse(revokeBody, request.body, 'body');
    return { request: requestJson(policy, await approvals.revoke(id, by, reason)) };
  });

  app.post('/api/v1/access', async (request, reply) => {
    const who = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    const body = parse(accessBody, request.body, 'body');
    const ask = accessRequest(
      policy,
      who,
      {
        connection: body.connection,
        durationMs: parseDuration(body.duration),
        reason: body.reason,
        kinds: body.kinds,
      },
      Date.now(),
    );
    const created = await approvals.create(ask);
    void reply.status(201);
    return { request: requestJson(policy, created) };
  });

  app.get('/api/v1/access', async (request) => {
    const who = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    const q = parse(accessListQuery, request.query, 'query');
    const reviewer = isReviewer(policy, who, reviewerGroups(policy));
    if (!reviewer && q.principal !== undefined && q.principal !== who.name)
      throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${who.name} may only list its own access requests`, {
        hint: 'leave out `principal`, or use a reviewer token',
      });
    const list = await approvals.list({
      protocol: ACCESS_PROTOCOL,
      ...(q.status === 'all' ? {} : { status: [q.status] }),
      ...(reviewer ? (q.principal ? { principal: q.principal } : {}) : { principal: who.name }),
      limit: q.limit,
    });
    return { requests: list.map((r) => requestJson(policy, r)) };
  });

  app.post('/api/v1/requests/:id/break-glass', async (request) => {
    const by = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    const { id } = parse(idParams, request.params, 'request id');
    const { justification } = parse(breakGlassBody, request.body, 'body');
    return { request: requestJson(policy, await breakGlass(policy, approvals, id, by, justification)) };
  });
}
