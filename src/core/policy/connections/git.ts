/**
 * `type: git` connections: Git repositories served over smart HTTP. Callers clone
 * `http://AIRLOCK/git/NAME/REPO`; Airlock forwards to `upstream.url/REPO`.
 */
import { z } from 'zod';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';
import {
  type HttpCredential,
  type HttpUpstream,
  httpCredentialSchema,
  httpUpstreamSchema,
  resolveHttpCredential,
  resolveHttpUpstream,
} from './http.ts';

export const gitConnectionSchema = z.strictObject({
  type: z.literal('git'),
  upstream: httpUpstreamSchema,
  credential: httpCredentialSchema.optional(),
  /** Largest push (bytes) Airlock accepts; a push is inspected in full before it is judged. */
  max_push: z
    .number()
    .int()
    .min(0)
    .default(512 * 1024 * 1024),
  ...connectionCommon,
});

export interface GitConnection extends ConnectionBase {
  readonly type: 'git';
  readonly upstream: HttpUpstream;
  readonly credential?: HttpCredential | undefined;
  readonly maxPush: number;
}

export function resolveGitConnection(
  c: z.output<typeof gitConnectionSchema>,
  ctx: ResolveContext,
): GitConnection {
  return {
    ...baseOf(ctx.name, c),
    type: 'git',
    upstream: resolveHttpUpstream(c.upstream, ctx),
    credential: resolveHttpCredential(c.credential, ctx),
    maxPush: c.max_push,
  };
}
