/** `type: mysql` connections (MySQL and MariaDB): where the target is and how Airlock logs in to it. */
import { z } from 'zod';
import type { Secret } from '../secret.ts';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';

export const mysqlConnectionSchema = z.strictObject({
  type: z.literal('mysql'),
  upstream: z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(3306),
    database: z.string().min(1),
    user: z.string().min(1),
    /** `${env:NAME}` or `${file:path}`; omitted for an account without a password. */
    password: z.string().optional(),
    /** `off`, or `verify-full` (certificate chain and host name checked). */
    tls: z.enum(['off', 'verify-full']).default('off'),
    /** PEM file with the CA that signed the target's certificate (default: system CAs). */
    ca: z.string().optional(),
  }),
  /**
   * LOAD DATA LOCAL INFILE (a caller's file sent to the target). Off by default: the statement
   * is refused before it reaches the policy. When on, it is a `transfer` action like any other.
   */
  local_infile: z.boolean().default(false),
  ...connectionCommon,
});

export interface MysqlConnection extends ConnectionBase {
  readonly type: 'mysql';
  readonly upstream: {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
    readonly password?: Secret | undefined;
    readonly tls: 'off' | 'verify-full';
    readonly ca?: string | undefined;
  };
  readonly localInfile: boolean;
}

export function resolveMysqlConnection(
  c: z.output<typeof mysqlConnectionSchema>,
  ctx: ResolveContext,
): MysqlConnection {
  return {
    ...baseOf(ctx.name, c),
    type: 'mysql',
    upstream: {
      host: c.upstream.host,
      port: c.upstream.port,
      database: c.upstream.database,
      user: c.upstream.user,
      password: c.upstream.password === undefined ? undefined : ctx.secret(c.upstream.password),
      tls: c.upstream.tls,
      ca: c.upstream.ca === undefined ? undefined : ctx.path(c.upstream.ca),
    },
    localInfile: c.local_infile,
  };
}
