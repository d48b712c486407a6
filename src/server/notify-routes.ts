/**
 * Routes for notification channels: Slack's interactivity callback (authenticated by Slack's
 * request signature, not a token), the inbound decision endpoint for a team's own bot, and the
 * delivery log reviewers see in the console.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import type { Notifier } from '../notify/notifier.ts';
import { isReviewer } from './api.ts';

const SLACK_BODY_LIMIT = 64 * 1024;

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
    reviewer(request);
    return { deliveries: notifier.deliveries({ limit: 200 }) };
  });
}
