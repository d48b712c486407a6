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
  /**
   * `kubectl exec`/`attach`/`port-forward` over SPDY (kubectl before 1.30, or with WebSocket
   * turned off): Airlock cannot decode those streams. `refuse` tells the caller to use a kubectl
   * that speaks WebSocket; `unrecorded` judges the request as usual and, once allowed, passes the
   * stream through without recording what is typed or printed in it.
   */
  spdy: z.enum(['refuse', 'unrecorded']).default('refuse'),
  ...connectionCommon,
});

export interface KubernetesConnection extends ConnectionBase {
  readonly type: 'kubernetes';
  readonly upstream: HttpUpstream;
  readonly credential?: HttpCredential | undefined;
  readonly maxBody: number;
  readonly maskSecrets: boolean;
  readonly spdy: 'refuse' | 'unrecorded';
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
    spdy: c.spdy,
  };
}
