/**
 * `type: http` connections: an HTTP service behind Airlock. Callers reach it at
 * `/http/NAME/...` on the HTTP listener; Airlock adds the credential it holds. The upstream and
 * credential blocks are shared with the `kubernetes` and `git` types, which ride the same proxy.
 */
import { z } from 'zod';
import type { Secret } from '../secret.ts';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';

export const httpUpstreamSchema = z.strictObject({
  /** Base URL; the caller's path after the connection prefix is appended to it. */
  url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
  /** PEM file with the CA that signed the upstream's certificate (default: system CAs). */
  ca: z.string().optional(),
  /** Skip certificate verification (test clusters only). */
  insecure_skip_verify: z.boolean().default(false),
});

export const httpCredentialSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }),
  z.strictObject({ type: z.literal('basic'), username: z.string(), password: z.string().min(1) }),
  z.strictObject({ type: z.literal('header'), name: z.string().min(1), value: z.string().min(1) }),
]);

const hostName = z
  .string()
  .regex(
    /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/,
    'a host name such as api.example.test',
  )
  .transform((h) => h.toLowerCase().replace(/\.$/, ''));

/** Request bodies kept for review and fingerprinting are capped; larger ones are refused. */
const DEFAULT_MAX_BODY = 16 * 1024 * 1024;
/** JSON response bodies are buffered up to this to be masked. */
const DEFAULT_MASK_MAX_BODY = 16 * 1024 * 1024;

export const httpConnectionSchema = z.strictObject({
  type: z.literal('http'),
  upstream: httpUpstreamSchema,
  credential: httpCredentialSchema.optional(),
  /**
   * Host names that reach this connection without the `/http/NAME` prefix: a request whose Host
   * header is one of them goes here with its path as sent.
   */
  host: hostName.optional(),
  hosts: z.array(hostName).default([]),
  /** Methods classified as `read`; every other method is a `write`. */
  read_methods: z.array(z.string().min(1)).default(['GET', 'HEAD', 'OPTIONS']),
  /** Largest request body (bytes) Airlock buffers to judge; larger bodies get 413. */
  max_body: z.number().int().min(0).default(DEFAULT_MAX_BODY),
  /**
   * When the policy's masking rules apply to the caller: the largest JSON response (bytes,
   * decoded) Airlock buffers to mask, and what happens to a JSON response it cannot mask (larger
   * than that, or in an encoding it cannot undo): `refuse` (502) or `pass` it unmasked.
   */
  mask_max_body: z.number().int().min(1).default(DEFAULT_MASK_MAX_BODY),
  mask_unmaskable: z.enum(['refuse', 'pass']).default('refuse'),
  /**
   * Bytes of each response body kept in the session recording, as the caller received it
   * (masked when it was masked); 0 keeps none.
   */
  record_body: z
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  ...connectionCommon,
});

export type HttpCredential =
  | { readonly type: 'bearer'; readonly token: Secret }
  | { readonly type: 'basic'; readonly username: string; readonly password: Secret }
  | { readonly type: 'header'; readonly name: string; readonly value: Secret };

export interface HttpUpstream {
  readonly url: string;
  readonly ca?: string | undefined;
  readonly insecureSkipVerify: boolean;
}

export interface HttpConnection extends ConnectionBase {
  readonly type: 'http';
  readonly upstream: HttpUpstream;
  readonly credential?: HttpCredential | undefined;
  readonly readMethods: readonly string[];
  /** Host names (lower case) routed to this connection. */
  readonly hosts: readonly string[];
  readonly maxBody: number;
  readonly maskMaxBody: number;
  readonly maskUnmaskable: 'refuse' | 'pass';
  readonly recordBody: number;
}

export function resolveHttpUpstream(
  u: z.output<typeof httpUpstreamSchema>,
  ctx: ResolveContext,
): HttpUpstream {
  return {
    url: u.url.replace(/\/+$/, ''),
    ca: u.ca === undefined ? undefined : ctx.path(u.ca),
    insecureSkipVerify: u.insecure_skip_verify,
  };
}

export function resolveHttpCredential(
  c: z.output<typeof httpCredentialSchema> | undefined,
  ctx: ResolveContext,
): HttpCredential | undefined {
  if (c === undefined) return undefined;
  switch (c.type) {
    case 'bearer':
      return { type: 'bearer', token: ctx.secret(c.token) };
    case 'basic':
      return { type: 'basic', username: c.username, password: ctx.secret(c.password) };
    case 'header':
      return { type: 'header', name: c.name, value: ctx.secret(c.value) };
  }
}

export function resolveHttpConnection(
  c: z.output<typeof httpConnectionSchema>,
  ctx: ResolveContext,
): HttpConnection {
  return {
    ...baseOf(ctx.name, c),
    type: 'http',
    upstream: resolveHttpUpstream(c.upstream, ctx),
    credential: resolveHttpCredential(c.credential, ctx),
    readMethods: c.read_methods.map((m) => m.toUpperCase()),
    hosts: [...new Set([...(c.host === undefined ? [] : [c.host]), ...c.hosts])],
    maxBody: c.max_body,
    maskMaxBody: c.mask_max_body,
    maskUnmaskable: c.mask_unmaskable,
    recordBody: c.record_body,
  };
}
