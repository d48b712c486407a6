/**
 * Revoking approvals over the API: POST /api/v1/requests/:id/revoke {reason}. An approval can
 * be revoked until it has been used; a grant with an open window can be revoked while it is
 * open, and live sessions that relied on it are ended at once.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Approvals } from '../core/approvals/service.ts';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import { requestJson } from './api.ts';

const idParams = z.object({ id: z.coerce.number().int().positive() });
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
}
