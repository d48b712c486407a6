/**
 * The `upstream` block of the SQL connection types (`postgres`, `mysql`): where the target
 * database is and the account Airlock logs in with. Only the default port differs.
 */
import { z } from 'zod';
import type { Secret } from '../secret.ts';
import type { ResolveContext } from './common.ts';

export function sqlUpstreamSchema(defaultPort: number) {
  return z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(defaultPort),
    database: z.string().min(1),
    user: z.string().min(1),
    /** `${env:NAME}` or `${file:path}`; omitted for an account without one (PostgreSQL trust). */
    password: z.string().optional(),
    /** `off`, or `verify-full` (certificate chain and host name checked). */
    tls: z.enum(['off', 'verify-full']).default('off'),
    /** PEM file with the CA that signed the target's certificate (default: system CAs). */
    ca: z.string().optional(),
  });
}

export interface SqlUpstream {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password?: Secret | undefined;
  readonly tls: 'off' | 'verify-full';
  readonly ca?: string | undefined;
}

export function resolveSqlUpstream(
  u: z.output<ReturnType<typeof sqlUpstreamSchema>>,
  ctx: ResolveContext,
): SqlUpstream {
  return {
    host: u.host,
    port: u.port,
    database: u.database,
    user: u.user,
    password: u.password === undefined ? undefined : ctx.secret(u.password),
    tls: u.tls,
    ca: u.ca === undefined ? undefined : ctx.path(u.ca),
  };
}
