/**
 * An Airlock gateway in front of a test's private PostgreSQL: writes a policy file (tokens by
 * `${file:...}` reference, the upstream password by reference too) into a temporary directory,
 * starts the gateway on ephemeral ports, and gives the test URLs, tokens and an API helper.
 */
import assert from 'node:assert/strict';
import type { startGateway } from '../../src/server/gateway.ts';
import { type ApiResponse, apiUrlOf, makePolicyDir, PRINCIPALS, type PrincipalName } from './policy-dir.ts';
import type { PrivatePostgres } from './postgres.ts';
import type { PsqlTarget } from './psql.ts';

export { type ApiResponse, PRINCIPALS, type PrincipalName };

/** The connection name callers put where a database name goes. */
export const CONNECTION = 'app';

/** The rules of the test gateways, for the connection named `connection`. */
export function defaultRules(connection: string): string {
  return `
rules:
  - name: reads are free
    connections: [${connection}]
    kinds: [read]
    effect: allow
  # Review beats allow, so the review rules below name the principal kinds they hold; the
  # bench service is none of them.
  - name: the benchmark may write
    connections: [${connection}]
    principals: [bench]
    kinds: [write]
    effect: allow
  - name: no drops outside migrations
    statements: [DropStmt, TruncateStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
  - name: agent notes expire quickly
    connections: [${connection}]
    principals: [agent]
    tables: [audit_notes]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 2s, hold: wait }
  - name: customer changes are approved per statement
    connections: [${connection}]
    principal_kinds: [agent, human]
    tables: [customers]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: retry, window: 10m }
  - name: writes need a DBA
    connections: [${connection}]
    principal_kinds: [agent, human]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
`;
}

export const DEFAULT_RULES = defaultRules(CONNECTION);

/**
 * The `app` connection (YAML under `connections:`, up to its `default:`) to the private
 * PostgreSQL as its app account, the password from secrets/upstream.password.
 */
export function postgresConnection(
  upstream: PrivatePostgres,
  otherwise: 'allow' | 'review' | 'deny' = 'review',
): string {
  return `  ${CONNECTION}:
    type: postgres
    upstream:
      host: ${upstream.host}
      port: ${upstream.port}
      database: ${upstream.app.database}
      user: ${upstream.app.user}
      password: "\${file:./secrets/upstream.password}"
    default: ${otherwise}`;
}

export interface TestGateway {
  readonly dir: string;
  readonly policyFile: string;
  readonly storeFile: string;
  readonly apiUrl: string;
  readonly pg: { readonly host: string; readonly port: number };
  readonly tokens: Record<PrincipalName, string>;
  /** The running gateway as startGateway returned it. */
  readonly gateway: Awaited<ReturnType<typeof startGateway>>;
  /** psql / pg target for a principal. */
  target(who: PrincipalName, database?: string): PsqlTarget;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    as?: PrincipalName | string,
  ): Promise<ApiResponse<T>>;
  close(): Promise<void>;
}

export interface StartTestGatewayOptions {
  /** Replaces DEFAULT_RULES (a YAML `rules:` block). */
  rules?: string;
  /** Extra top-level YAML appended to the policy. */
  extra?: string;
  /** Connection default for unmatched actions. */
  connectionDefault?: 'allow' | 'review' | 'deny';
  /** Extra YAML inside the \`app\` connection (indented four spaces), e.g. \`dry_run: true\`. */
  connection?: string;
  /** Extra YAML inside `identities:` (indented two spaces), e.g. an `oidc:` list. */
  identities?: string;
}

export async function startTestGateway(
  upstream: PrivatePostgres,
  opts: StartTestGatewayOptions = {},
): Promise<TestGateway> {
  const files = makePolicyDir('airlock-gw-', PRINCIPALS);
  files.secret('upstream.password', `${upstream.app.password}\n`, 'the upstream password');
  files.writePolicy(
    { listen: ['postgres'], identities: opts.identities },
    `connections:
${postgresConnection(upstream, opts.connectionDefault)}
${opts.connection ?? ''}
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${opts.rules ?? DEFAULT_RULES}
${opts.extra ?? ''}`,
  );
  // Everything the gateway logs, at debug level, is scanned for secrets when the test closes it.
  const gateway = await files.start({ debugLog: true });
  const pgAddr = { host: gateway.postgres.host, port: gateway.postgres.port };
  const { dir, policyFile, storeFile, tokens } = files;
  return {
    dir,
    policyFile,
    storeFile,
    apiUrl: apiUrlOf(gateway),
    pg: pgAddr,
    tokens,
    gateway,
    target: (who, database = CONNECTION) => ({ ...pgAddr, database, token: tokens[who], user: who }),
    api: files.api(gateway, true),
    close: () => files.close(gateway, true),
  };
}

/** `identities:` lines that make eve's group (support) token admins: she issues people's tokens. */
export const SUPPORT_ISSUES_TOKENS = '  token_admins: [support]\n';

/**
 * Rules for just-in-time access and break-glass: reads free, customer changes on a retry hold,
 * other writes and schema changes waiting for a DBA; time-boxed access to `app` after a DBA's
 * approval; on-call may break glass with a written justification.
 */
export const ACCESS_RULES = `
rules:
  - name: reads are free
    kinds: [read]
    effect: allow
  - name: customers are changed on a retry hold
    tables: [customers]
    kinds: [write, schema]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: retry, window: 10m }
  - name: other writes wait for a DBA
    kinds: [write, schema]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }

access:
  - connections: [${CONNECTION}]
    kinds: [read, write]
    max: 1h
    review: { groups: [dba], approvals: 1, expires: 10m }

break_glass:
  groups: [oncall]
  min_justification: 15
`;

/** A token for a new person in `groups`, issued through the API by eve (see SUPPORT_ISSUES_TOKENS). */
export async function issuePersonToken(
  gw: TestGateway,
  name: string,
  groups: readonly string[],
): Promise<string> {
  const res = await gw.api<{ token: string }>(
    'POST',
    '/api/v1/tokens',
    { name, kind: 'human', groups },
    'eve',
  );
  assert.equal(res.status, 201, res.text);
  return res.body.token;
}
