/**
 * Routes for notification channels: Slack's interactivity callback (authenticated by Slack's
 * request signature, not a token), the inbound decision endpoint for a team's own bot, and the
 * delivery log reviewers see in the console.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import type { Notifier } from '../notify/notifier.ts';
import { isReviewer } from './api.ts';

const SLACK_BODY_LIMIT = 64 * 1024;

const deliveriesQuery = z.strictObject({
  request: z.coerce.number().int().positive().optional(),
  status: z
    .string()
    .transform((s) => s.split(',').filter(Boolean))
    .pipe(z.array(z.enum(['sending', 'retrying', 'delivered', 'failed'])).min(1))
    .optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

export function registerNotifyRoutes(
  app: FastifyInstance,
  deps: { notifier: Notifier; tokens: Authenticator; policy: Policy },
): void {
  const { notifier, tokens, policy } = deps;
  const bearer = (request: FastifyRequest): string | undefined => {
    const h = request.headers.authorization;
    return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
  };
  const reviewer = async (request: FastifyRequest) => {
    const principal = await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });
    if (!isReviewer(policy, principal))
      throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${principal.name} is not a reviewer`, {
        hint: 'use a token of a principal in a reviewer group',
      });
    return principal;
  };

  // Slack signs the exact bytes it sent, so the body must reach the verifier unparsed.
  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: SLACK_BODY_LIMIT },
      (_req, body, done) => done(null, body),
    );
    scope.post('/api/v1/slack/actions', async (request, reply) => {
      const r = await notifier.handleSlackAction(String(request.body ?? ''), request.headers);
      return reply.code(r.status).send(r.body);
    });
  });

  app.post('/api/v1/notify/decisions', async (request, reply) => {
    const r = await notifier.handleInboundDecision(await reviewer(request), request.body);
    return reply.code(r.status).send(r.body);
  });

  app.get('/api/v1/notify/deliveries', async (request) => {
    await reviewer(request);
    const q = deliveriesQuery.safeParse(request.query ?? {});
    if (!q.success)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'invalid deliveries query', {
        hint: 'use ?request=ID, ?status=failed,retrying and ?limit=1..1000',
      });
    return {
      deliveries: notifier.deliveries({
        ...(q.data.request === undefined ? {} : { requestId: q.data.request }),
        ...(q.data.status === undefined ? {} : { status: q.data.status }),
        limit: q.data.limit,
      }),
    };
  });
}
