/**
 * `type: kubernetes` connections: a Kubernetes API server behind Airlock. Callers use a
 * kubeconfig whose server is `http://AIRLOCK/kubernetes/NAME` (`airlock kubeconfig NAME`).
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

export const kubernetesConnectionSchema = z.strictObject({
  type: z.literal('kubernetes'),
  upstream: httpUpstreamSchema,
  /** How Airlock authenticates to the API server (a service account token, usually). */
  credential: httpCredentialSchema.optional(),
  /** Largest request body (bytes) Airlock buffers to judge; larger bodies get 413. */
  max_body: z
    .number()
    .int()
    .min(0)
    .default(8 * 1024 * 1024),
  /** Replace the values of Secrets (`data`, `stringData`) in responses. */
  mask_secrets: z.boolean().default(true),
  ...connectionCommon,
});

export interface KubernetesConnection extends ConnectionBase {
  readonly type: 'kubernetes';
  readonly upstream: HttpUpstream;
  readonly credential?: HttpCredential | undefined;
  readonly maxBody: number;
  readonly maskSecrets: boolean;
}

export function resolveKubernetesConnection(
  c: z.output<typeof kubernetesConnectionSchema>,
  ctx: ResolveContext,
): KubernetesConnection {
  return {
    ...baseOf(ctx.name, c),
    type: 'kubernetes',
    upstream: resolveHttpUpstream(c.upstream, ctx),
    credential: resolveHttpCredential(c.credential, ctx),
    maxBody: c.max_body,
    maskSecrets: c.mask_secrets,
  };
}
