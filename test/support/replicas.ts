/**
 * A policy for several gateway replicas sharing one PostgreSQL store, in front of a private
 * target database: tokens by `${file:...}` reference (the same for every replica), the test
 * principals and rules of gateway.ts. Replicas start in this process (startGateway) or in a
 * child process (replica-process.ts) that a test can kill.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { type Gateway, startGateway } from '../../src/server/gateway.ts';
import { CONNECTION, DEFAULT_RULES, PRINCIPALS, type PrincipalName } from './gateway.ts';
import type { PrivatePostgres } from './postgres.ts';
import { type ManagedProcess, startProcess } from './processes.ts';
import type { PsqlTarget } from './psql.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface Replica {
  readonly name: string;
  readonly api: string;
  readonly pg: { readonly host: string; readonly port: number };
}

export interface ReplicaSetup {
  readonly dir: string;
  readonly policyFile: string;
  readonly storeUrl: string;
  readonly tokens: Record<PrincipalName, string>;
  /** A replica in this process. */
  start(opts?: { leaseMs?: number; reconcileMs?: number }): Promise<Gateway>;
  /** A replica in a child process; resolves once it listens. */
  startChild(opts?: { leaseMs?: number }): Promise<{ process: ManagedProcess; replica: Replica }>;
  /** psql / pg target for a principal through a replica. */
  via(replica: Replica, who?: PrincipalName): PsqlTarget;
  api<T = unknown>(
    replica: Replica,
    method: string,
    path: string,
    body?: unknown,
    as?: PrincipalName,
  ): Promise<{ status: number; body: T; text: string }>;
  remove(): void;
}

export function replicaOf(name: string, gw: Gateway): Replica {
  return { name, api: gw.api.url, pg: gw.postgres };
}

/** Writes the shared policy; `storeUrl` is a postgres:// URL of an existing database. */
export function setupReplicas(
  target: PrivatePostgres,
  storeUrl: string,
  rules = DEFAULT_RULES,
): ReplicaSetup {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-replicas-'));
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
  writeFileSync(join(dir, 'secrets', 'upstream.password'), `${target.app.password}\n`, { mode: 0o600 });
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: 127.0.0.1:0
store: ${storeUrl}

identities:
  tokens:
${identities.join('\n')}

connections:
  ${CONNECTION}:
    type: postgres
    upstream:
      host: ${target.host}
      port: ${target.port}
      database: ${target.app.database}
      user: ${target.app.user}
      password: "\${file:./secrets/upstream.password}"
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${rules}
`,
  );

  return {
    dir,
    policyFile,
    storeUrl,
    tokens,
    start: (opts = {}) => startGateway({ policy: loadPolicyFile(policyFile), ...opts }),
    async startChild(opts = {}) {
      const proc = startProcess(
        process.execPath,
        [
          '--import',
          'tsx',
          join(ROOT, 'test/support/replica-process.ts'),
          policyFile,
          ...(opts.leaseMs === undefined ? [] : [String(opts.leaseMs)]),
        ],
        { cwd: ROOT },
      );
      const ready = await proc.waitForOutput(/READY (.*)\n/, 60_000, 'stdout');
      const info = JSON.parse(ready[1]!) as { api: string; postgres: Replica['pg'] };
      return { process: proc, replica: { name: 'child', api: info.api, pg: info.postgres } };
    },
    via: (replica, who = 'agent') => ({ ...replica.pg, database: CONNECTION, token: tokens[who], user: who }),
    async api<T>(replica: Replica, method: string, path: string, body?: unknown, as?: PrincipalName) {
      const headers: Record<string, string> = {};
      if (as) headers.authorization = `Bearer ${tokens[as]}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(replica.api + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // keep the text
      }
      return { status: res.status, body: parsed as T, text };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
