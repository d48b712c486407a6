/**
 * A policy for several gateway replicas sharing one PostgreSQL store, in front of a private
 * target database: tokens by `${file:...}` reference (the same for every replica), the test
 * principals and rules of gateway.ts. Replicas start in this process (startGateway) or in a
 * child process (replica-process.ts) that a test can kill.
 */
import { join } from 'node:path';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { type Gateway, startGateway } from '../../src/server/gateway.ts';
import { CONNECTION, DEFAULT_RULES, postgresConnection } from './gateway.ts';
import { apiCaller, makePolicyDir, PRINCIPALS, type PrincipalName } from './policy-dir.ts';
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
  const files = makePolicyDir('airlock-replicas-', PRINCIPALS);
  const { dir, policyFile, tokens } = files;
  files.secret('upstream.password', `${target.app.password}\n`);
  files.writePolicy(
    { listen: ['postgres'], store: storeUrl },
    `connections:
${postgresConnection(target)}
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${rules}`,
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
    api: (replica, method, path, body, as) => apiCaller(replica.api, tokens)(method, path, body, as),
    remove: files.remove,
  };
}
