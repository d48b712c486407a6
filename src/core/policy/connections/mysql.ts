/** `type: mysql` connections (MySQL and MariaDB): where the target is and how Airlock logs in to it. */
import { z } from 'zod';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';
import { resolveSqlUpstream, type SqlUpstream, sqlUpstreamSchema } from './sql-upstream.ts';

export const mysqlConnectionSchema = z.strictObject({
  type: z.literal('mysql'),
  upstream: sqlUpstreamSchema(3306),
  /**
   * LOAD DATA LOCAL INFILE (a caller's file sent to the target). Off by default: the statement
   * is refused before it reaches the policy. When on, it is a `transfer` action like any other.
   */
  local_infile: z.boolean().default(false),
  ...connectionCommon,
});

export interface MysqlConnection extends ConnectionBase {
  readonly type: 'mysql';
  readonly upstream: SqlUpstream;
  readonly localInfile: boolean;
}

export function resolveMysqlConnection(
  c: z.output<typeof mysqlConnectionSchema>,
  ctx: ResolveContext,
): MysqlConnection {
  return {
    ...baseOf(ctx.name, c),
    type: 'mysql',
    upstream: resolveSqlUpstream(c.upstream, ctx),
    localInfile: c.local_infile,
  };
}
