/**
 * API tokens over the API: POST /api/v1/tokens creates one and answers with the token (the
 * only time it is shown), GET lists them (without hashes), DELETE /api/v1/tokens/:id revokes.
 * Creating and revoking are audited, by token id and name, never the token.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { PRINCIPAL_KINDS, type Principal } from '../core/action.ts';
import type { AuditLog } from '../core/audit/log.ts';
import { AirlockError } from '../core/errors.ts';
import type { ApiTokens, ApiTokenView } from '../core/identity/api-tokens.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import { parseDuration } from '../core/policy/schema.ts';

const createBody = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  kind: z.enum(PRINCIPAL_KINDS).optional(),
  groups: z.array(z.string().min(1).max(63)).max(50).optional(),
  connections: z.array(z.string().min(1).max(63)).max(100).optional(),
  description: z.string().max(500).optional(),
  expires: z
    .string()
    .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 30d')
    .optional(),
});
const idParams = z.object({ id: z.string().regex(/^tok_[A-Za-z0-9_-]{1,40}$/, 'a token id such as tok_…') });

export function tokenJson(t: ApiTokenView) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: t.id,
    name: t.name,
    kind: t.kind,
    groups: [...t.groups],
    connections: t.connections ? [...t.connections] : null,
    description: t.description ?? null,
    createdBy: t.createdBy,
    createdAt: iso(t.createdAt),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
    revokedBy: t.revokedBy ?? null,
  };
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const detail = r.error.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
  throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `invalid ${what}: ${detail}`, {
    hint: 'see `airlock tokens create --help`',
  });
}

function bearer(request: FastifyRequest): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return m?.[1];
}

export function registerTokenRoutes(
  app: FastifyInstance,
  deps: { policy: Policy; tokens: Authenticator; apiTokens: ApiTokens; audit: AuditLog },
): void {
  const { policy, tokens, apiTokens, audit } = deps;
  const who = (request: FastifyRequest): Promise<Principal> =>
    tokens.authenticate(bearer(request), { source: request.ip, protocol: 'api' });

  app.post('/api/v1/tokens', async (request, reply) => {
    const creator = await who(request);
    const body = parse(createBody, request.body, 'body');
    for (const c of body.connections ?? [])
      if (!policy.connections.has(c))
        throw new AirlockError('AIRLOCK_E_CONNECTION_UNKNOWN', `there is no connection "${c}"`, {
          hint: `connections: ${[...policy.connections.keys()].join(', ') || '(none)'}`,
        });
    const { token, record } = await apiTokens.create(creator, {
      name: body.name,
      kind: body.kind,
      groups: body.groups,
      connections: body.connections,
      description: body.description,
      ttlMs: body.expires === undefined ? undefined : parseDuration(body.expires),
    });
    await audit.append('token.created', {
      tokenId: record.id,
      name: record.name,
      kind: record.kind,
      groups: [...record.groups],
      ...(record.connections ? { connections: [...record.connections] } : {}),
      ...(record.expiresAt === undefined ? {} : { expiresAt: record.expiresAt }),
      by: creator.name,
    });
    void reply.status(201).header('cache-control', 'no-store');
    return { token, record: tokenJson(record) };
  });

  app.get('/api/v1/tokens', async (request) => {
    const viewer = await who(request);
    return { tokens: (await apiTokens.list(viewer)).map(tokenJson) };
  });

  app.delete('/api/v1/tokens/:id', async (request) => {
    const viewer = await who(request);
    const { id } = parse(idParams, request.params, 'token id');
    const record = await apiTokens.revoke(viewer, id);
    await audit.append('token.revoked', { tokenId: record.id, name: record.name, by: viewer.name });
    return { token: tokenJson(record) };
  });
}
