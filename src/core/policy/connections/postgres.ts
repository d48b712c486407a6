/** `type: postgres` connections: where the target database is and how Airlock logs in to it. */
import { z } from 'zod';
import type { Secret } from '../secret.ts';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';

export const postgresConnectionSchema = z.strictObject({
  type: z.literal('postgres'),
  upstream: z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1),
    user: z.string().min(1),
    /** `${env:NAME}` or `${file:path}`; omitted for trust authentication. */
    password: z.string().optional(),
    /** `off`, or `verify-full` (certificate chain and host name checked). */
    tls: z.enum(['off', 'verify-full']).default('off'),
    /** PEM file with the CA that signed the target's certificate (default: system CAs). */
    ca: z.string().optional(),
  }),
  /**
   * Held DML is also run on a side connection inside a transaction that is always rolled back,
   * so reviewers see the exact rows it would touch (see src/protocols/postgres/dry-run.ts).
   */
  dry_run: z.boolean().default(false),
  ...connectionCommon,
});

export interface PostgresConnection extends ConnectionBase {
  readonly type: 'postgres';
  readonly upstream: {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
    readonly password?: Secret | undefined;
    readonly tls: 'off' | 'verify-full';
    readonly ca?: string | undefined;
  };
  /** Held DML gets an exact row count from a rolled-back run. */
  readonly dryRun?: boolean | undefined;
}

export function resolvePostgresConnection(
  c: z.output<typeof postgresConnectionSchema>,
  ctx: ResolveContext,
): PostgresConnection {
  return {
    ...baseOf(ctx.name, c),
    type: 'postgres',
    upstream: {
      host: c.upstream.host,
      port: c.upstream.port,
      database: c.upstream.database,
      user: c.upstream.user,
      password: c.upstream.password === undefined ? undefined : ctx.secret(c.upstream.password),
      tls: c.upstream.tls,
      ca: c.upstream.ca === undefined ? undefined : ctx.path(c.upstream.ca),
    },
    dryRun: c.dry_run,
  };
}
