/**
 * Every connection type the policy file knows. A protocol adds its type here: a schema (the
 * block users write under `connections.NAME`), the resolved shape, and a resolver.
 */
import { z } from 'zod';
import type { ResolveContext } from './common.ts';
import { type GitConnection, gitConnectionSchema, resolveGitConnection } from './git.ts';
import { type HttpConnection, httpConnectionSchema, resolveHttpConnection } from './http.ts';
import {
  type KubernetesConnection,
  kubernetesConnectionSchema,
  resolveKubernetesConnection,
} from './kubernetes.ts';
import { type McpConnection, mcpConnectionSchema, resolveMcpConnection } from './mcp.ts';
import { type MysqlConnection, mysqlConnectionSchema, resolveMysqlConnection } from './mysql.ts';
import { type PostgresConnection, postgresConnectionSchema, resolvePostgresConnection } from './postgres.ts';
import { resolveSshConnection, type SshConnection, sshConnectionSchema } from './ssh.ts';

export const connectionSchema = z.discriminatedUnion('type', [
  postgresConnectionSchema,
  httpConnectionSchema,
  kubernetesConnectionSchema,
  gitConnectionSchema,
  mcpConnectionSchema,
  sshConnectionSchema,
  mysqlConnectionSchema,
]);
export type ConnectionConfig = z.output<typeof connectionSchema>;

export type PolicyConnection =
  | PostgresConnection
  | HttpConnection
  | KubernetesConnection
  | GitConnection
  | McpConnection
  | SshConnection
  | MysqlConnection;
export type ConnectionType = PolicyConnection['type'];

export function resolveConnection(c: ConnectionConfig, ctx: ResolveContext): PolicyConnection {
  switch (c.type) {
    case 'postgres':
      return resolvePostgresConnection(c, ctx);
    case 'http':
      return resolveHttpConnection(c, ctx);
    case 'kubernetes':
      return resolveKubernetesConnection(c, ctx);
    case 'git':
      return resolveGitConnection(c, ctx);
    case 'mcp':
      return resolveMcpConnection(c, ctx);
    case 'ssh':
      return resolveSshConnection(c, ctx);
    case 'mysql':
      return resolveMysqlConnection(c, ctx);
  }
}
