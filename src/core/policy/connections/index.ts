/**
 * Every connection type the policy file knows. A protocol adds its type here: a schema (the
 * block users write under `connections.NAME`), the resolved shape, and a resolver.
 */
import { z } from 'zod';
import type { ResolveContext } from './common.ts';
import { type PostgresConnection, postgresConnectionSchema, resolvePostgresConnection } from './postgres.ts';

export const connectionSchema = z.discriminatedUnion('type', [postgresConnectionSchema]);
export type ConnectionConfig = z.output<typeof connectionSchema>;

export type PolicyConnection = PostgresConnection;
export type ConnectionType = PolicyConnection['type'];

export function resolveConnection(c: ConnectionConfig, ctx: ResolveContext): PolicyConnection {
  switch (c.type) {
    case 'postgres':
      return resolvePostgresConnection(c, ctx);
  }
}
