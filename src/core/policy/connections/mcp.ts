/**
 * `type: mcp` connections: an upstream MCP tool server, reached over Streamable HTTP (a URL and
 * a credential by reference) or over stdio (a command Airlock launches for each caller session,
 * its environment holding the secrets), and what Airlock knows about its tools.
 */
import { z } from 'zod';
import { ACTION_KINDS, type ActionKind } from '../../action.ts';
import type { Secret } from '../secret.ts';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';

const httpUpstream = z.strictObject({
  /** The tool server's Streamable HTTP endpoint. */
  url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
  /** Sent as `Authorization: Bearer`; `${env:NAME}` or `${file:path}`. */
  token: z.string().min(1).optional(),
  /** Extra request headers (API keys); values by reference like `token`. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'an HTTP header name'), z.string()).default({}),
});

const stdioUpstream = z.strictObject({
  /** The program to run; found on PATH when not a path. */
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  /** Added to a minimal inherited environment (PATH, HOME, ...); values may be references. */
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string())
    .default({}),
  /** Working directory, relative to the policy file. */
  cwd: z.string().optional(),
});

/**
 * What Airlock knows about a tool, by name or `*` pattern: its kind, and for tools that run SQL,
 * the argument that holds the statement (classified like a PostgreSQL query).
 */
const toolSpec = z.union([
  z.enum(ACTION_KINDS),
  z.strictObject({
    kind: z.enum(ACTION_KINDS).optional(),
    /** Name of the argument whose value is SQL; the statement's own classification decides the kind. */
    sql: z.string().min(1).optional(),
  }),
]);

export const mcpConnectionSchema = z.strictObject({
  type: z.literal('mcp'),
  upstream: z.union([httpUpstream, stdioUpstream]),
  /** Tool name or pattern → kind (or `{ kind, sql }`). Tools not named here are `unknown`. */
  tools: z.record(z.string().min(1), toolSpec).default({}),
  /**
   * `trust`: a tool's own `readOnlyHint` annotation makes it `read` (and `readOnlyHint: false` makes
   * it `write`). Off by default: annotations are claims by the tool server, not facts.
   */
  annotations: z.enum(['trust', 'ignore']).default('ignore'),
  /**
   * Tools (names or patterns) whose calls, once policy allows them, are also confirmed by the
   * person at the agent's client (MCP elicitation). Never instead of a review: a held call waits
   * for its reviewers as always. A client that cannot ask gets the call refused.
   */
  confirm: z.array(z.string().min(1)).default([]),
  ...connectionCommon,
});

export interface McpToolSpec {
  readonly pattern: string;
  readonly kind?: ActionKind | undefined;
  readonly sql?: string | undefined;
}

export type McpUpstream =
  | {
      readonly transport: 'http';
      readonly url: string;
      readonly token?: Secret | undefined;
      readonly headers: ReadonlyMap<string, Secret>;
    }
  | {
      readonly transport: 'stdio';
      readonly command: string;
      readonly args: readonly string[];
      readonly env: ReadonlyMap<string, Secret>;
      readonly cwd: string;
    };

export interface McpConnection extends ConnectionBase {
  readonly type: 'mcp';
  readonly upstream: McpUpstream;
  /** In file order; an exact name is preferred over a pattern when looking a tool up. */
  readonly tools: readonly McpToolSpec[];
  readonly trustAnnotations: boolean;
  /** Tool patterns confirmed at the agent's client after policy allows them. */
  readonly confirm: readonly string[];
}

export function resolveMcpConnection(
  c: z.output<typeof mcpConnectionSchema>,
  ctx: ResolveContext,
): McpConnection {
  const up = c.upstream;
  const upstream: McpUpstream =
    'url' in up
      ? {
          transport: 'http',
          url: up.url,
          token: up.token === undefined ? undefined : ctx.secret(up.token),
          headers: new Map(Object.entries(up.headers).map(([k, v]) => [k, ctx.secret(v)])),
        }
      : {
          transport: 'stdio',
          command: up.command,
          args: up.args,
          env: new Map(Object.entries(up.env).map(([k, v]) => [k, ctx.secret(v)])),
          cwd: ctx.path(up.cwd ?? '.'),
        };
  return {
    ...baseOf(ctx.name, c),
    type: 'mcp',
    upstream,
    tools: Object.entries(c.tools).map(([pattern, spec]) =>
      typeof spec === 'string' ? { pattern, kind: spec } : { pattern, kind: spec.kind, sql: spec.sql },
    ),
    trustAnnotations: c.annotations === 'trust',
    confirm: c.confirm,
  };
}
