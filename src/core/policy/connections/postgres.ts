/** `type: postgres` connections: where the target database is and how Airlock logs in to it. */
import { z } from 'zod';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';
import { resolveSqlUpstream, type SqlUpstream, sqlUpstreamSchema } from './sql-upstream.ts';

export const postgresConnectionSchema = z.strictObject({
  type: z.literal('postgres'),
  upstream: sqlUpstreamSchema(5432),
  /**
   * Held DML is also run on a side connection inside a transaction that is always rolled back,
   * so reviewers see the exact rows it would touch (see src/protocols/postgres/dry-run.ts).
   */
  dry_run: z.boolean().default(false),
  ...connectionCommon,
});

export interface PostgresConnection extends ConnectionBase {
  readonly type: 'postgres';
  readonly upstream: SqlUpstream;
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
    upstream: resolveSqlUpstream(c.upstream, ctx),
    dryRun: c.dry_run,
  };
}
