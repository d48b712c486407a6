/**
 * An Airlock gateway in front of a test's private PostgreSQL: writes a policy file (tokens by
 * `${file:...}` reference, the upstream password by reference too) into a temporary directory,
 * starts the gateway on ephemeral ports, and gives the test URLs, tokens and an API helper.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { startGateway } from '../../src/server/gateway.ts';
import type { PrivatePostgres } from './postgres.ts';
import type { PsqlTarget } from './psql.ts';
import { findLeaks, leaksIn } from './secret-scan.ts';

/** Principals every test gateway knows. */
export const PRINCIPALS = {
  /** The AI agent whose writes are held. */
  agent: { kind: 'agent', groups: ['agents'] },
  /** Reviewers. */
  alice: { kind: 'human', groups: ['dba'] },
  bob: { kind: 'human', groups: ['dba'] },
  /** A DBA who also issues writes: must never approve their own. */
  carol: { kind: 'human', groups: ['dba'] },
  /** A human outside the reviewer group. */
  eve: { kind: 'human', groups: ['support'] },
  /** For the benchmark: reads and writes allowed. */
  bench: { kind: 'service', groups: ['bench'] },
} as const;
export type PrincipalName = keyof typeof PRINCIPALS;

/** The connection name callers put where a database name goes. */
export const CONNECTION = 'app';

export const DEFAULT_RULES = `
rules:
  - name: reads are free
    connections: [${CONNECTION}]
    kinds: [read]
    effect: allow
  # Review beats allow, so the review rules below name the principal kinds they hold; the
  # bench service is none of them.
  - name: the benchmark may write
    connections: [${CONNECTION}]
    principals: [bench]
    kinds: [write]
    effect: allow
  - name: no drops outside migrations
    statements: [DropStmt, TruncateStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
  - name: agent notes expire quickly
    connections: [${CONNECTION}]
    principals: [agent]
    tables: [audit_notes]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 2s, hold: wait }
  - name: customer changes are approved per statement
    connections: [${CONNECTION}]
    principal_kinds: [agent, human]
    tables: [customers]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: retry, window: 10m }
  - name: writes need a DBA
    connections: [${CONNECTION}]
    principal_kinds: [agent, human]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
`;

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

export interface ApiResponse<T> {
  readonly status: number;
  readonly body: T;
  readonly text: string;
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
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gw-'));
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const tokens = {} as Record<PrincipalName, string>;
  const identities: string[] = [];
  for (const [name, p] of Object.entries(PRINCIPALS) as [
    PrincipalName,
    (typeof PRINCIPALS)[PrincipalName],
  ][]) {
    tokens[name] = `alk_test_${name}_${randomBytes(24).toString('base64url')}`;
    writeFileSync(join(dir, 'secrets', `${name}.token`), `${tokens[name]}\n`, { mode: 0o600 });
    identities.push(
      `    - { name: ${name}, token: "\${file:./secrets/${name}.token}", kind: ${p.kind}, groups: [${p.groups.join(', ')}] }`,
    );
  }
  writeFileSync(join(dir, 'secrets', 'upstream.password'), `${upstream.app.password}\n`, { mode: 0o600 });
  const storeFile = join(dir, 'data', 'airlock.db');
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: 127.0.0.1:0
store: sqlite:./data/airlock.db

identities:
  tokens:
${identities.join('\n')}
${opts.identities ?? ''}

connections:
  ${CONNECTION}:
    type: postgres
    upstream:
      host: ${upstream.host}
      port: ${upstream.port}
      database: ${upstream.app.database}
      user: ${upstream.app.user}
      password: "\${file:./secrets/upstream.password}"
    default: ${opts.connectionDefault ?? 'review'}
${opts.connection ?? ''}
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${opts.rules ?? DEFAULT_RULES}
${opts.extra ?? ''}
`,
  );
  const policy = loadPolicyFile(policyFile);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    // Everything the gateway logs, at debug level, is scanned for secrets when the test closes it.
    gateway = await startGateway({
      policy,
      logger: pino({ level: 'debug' }, pino.destination({ dest: join(dir, 'gateway.log'), sync: true })),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const apiUrl = gateway.api.url.replace(/\/$/, '');
  const secrets: Record<string, string> = {
    ...Object.fromEntries(Object.entries(tokens).map(([n, t]) => [`${n}'s token`, t])),
    'the upstream password': upstream.app.password,
  };
  const pgAddr = { host: gateway.postgres.host, port: gateway.postgres.port };

  const api = async <T>(method: string, path: string, body?: unknown, as?: PrincipalName | string) => {
    const token = as === undefined ? undefined : as in tokens ? tokens[as as PrincipalName] : as;
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(apiUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const leaked = leaksIn(text, secrets);
    if (leaked.length > 0)
      throw new Error(`${method} ${path} answered with a secret in it: ${leaked.join(', ')}`);
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, text };
  };

  let closed = false;
  return {
    dir,
    policyFile,
    storeFile,
    apiUrl,
    pg: pgAddr,
    tokens,
    gateway,
    target: (who, database = CONNECTION) => ({ ...pgAddr, database, token: tokens[who], user: who }),
    api,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await gateway.close();
        const leaks = findLeaks(dir, secrets, (path) => path === join(dir, 'secrets') || path === policyFile);
        if (leaks.length > 0)
          throw new Error(
            `secrets leaked into the gateway's files: ${leaks.map((l) => `${l.secret} in ${l.where}`).join('; ')}`,
          );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
