/**
 * The real `airlock serve` process in front of a private PostgreSQL, on fixed free ports, with
 * tokens and the upstream password in files: for tests and the soak run that kill, restart or
 * measure the gateway process itself.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RULES } from './gateway.ts';
import { apiCaller } from './policy-dir.ts';
import { freePort } from './ports.ts';
import type { PrivatePostgres } from './postgres.ts';
import { type ManagedProcess, startProcess } from './processes.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export type ServedPrincipal = 'bench' | 'agent' | 'alice';

export interface ServedGateway {
  readonly dir: string;
  readonly apiPort: number;
  readonly pgPort: number;
  /** Ports of the listeners asked for in `more.listen`. */
  readonly ports: Readonly<Record<string, number>>;
  readonly tokens: Record<ServedPrincipal, string>;
  /** Starts (or restarts) the process and waits until it listens. */
  start(): Promise<ManagedProcess>;
  readonly process: ManagedProcess | undefined;
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  target(who: ServedPrincipal): { host: string; port: number; database: string; token: string; user: string };
  /** Resident memory (bytes) and open file descriptors of the running process (Linux /proc). */
  usage(): { rss: number; fds: number };
  close(): Promise<void>;
}

/** More protocols for the same process (the soak run). */
export interface ServeMore {
  /** Listeners to open on free loopback ports, besides the API and PostgreSQL. */
  readonly listen?: readonly ('mysql' | 'ssh' | 'http')[];
  /** YAML under `connections:` (two-space indent) for more connections. */
  readonly connections?: string;
  /** Rule items (`  - ...`) appended to the default rules. */
  readonly rules?: string;
  /** Files written to secrets/NAME (mode 0600), for `${file:./secrets/NAME}` references. */
  readonly secrets?: Readonly<Record<string, string>>;
}

export async function serveGateway(
  upstream: PrivatePostgres,
  extra = '',
  more: ServeMore = {},
): Promise<ServedGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-served-'));
  mkdirSync(join(dir, 'secrets'));
  const tokens = {
    bench: `alk_test_bench_${randomBytes(18).toString('base64url')}`,
    agent: `alk_test_agent_${randomBytes(18).toString('base64url')}`,
    alice: `alk_test_alice_${randomBytes(18).toString('base64url')}`,
  };
  for (const [n, t] of Object.entries(tokens)) writeFileSync(join(dir, 'secrets', `${n}.token`), t);
  writeFileSync(join(dir, 'secrets', 'upstream.password'), upstream.app.password);
  const apiPort = await freePort();
  const pgPort = await freePort();
  const ports: Record<string, number> = {};
  for (const l of more.listen ?? []) ports[l] = await freePort();
  for (const [n, v] of Object.entries(more.secrets ?? {}))
    writeFileSync(join(dir, 'secrets', n), v, { mode: 0o600 });
  const listen = [
    `api: 127.0.0.1:${apiPort}`,
    `postgres: 127.0.0.1:${pgPort}`,
    ...Object.entries(ports).map(([l, p]) => `${l}: 127.0.0.1:${p}`),
  ].join(', ');
  const config = join(dir, 'airlock.yaml');
  writeFileSync(
    config,
    `listen: { ${listen} }
store: sqlite:./data/airlock.db
identities:
  tokens:
    - { name: bench, token: "\${file:./secrets/bench.token}", kind: service, groups: [bench] }
    - { name: agent, token: "\${file:./secrets/agent.token}", kind: agent, groups: [agents] }
    - { name: alice, token: "\${file:./secrets/alice.token}", kind: human, groups: [dba] }
connections:
  app:
    type: postgres
    upstream: { host: 127.0.0.1, port: ${upstream.port}, database: app, user: app_rw, password: "\${file:./secrets/upstream.password}" }
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${more.connections ?? ''}
${DEFAULT_RULES.trimEnd()}
${more.rules ?? ''}
${extra}
`,
  );
  let proc: ManagedProcess | undefined;
  const all: ManagedProcess[] = [];
  return {
    dir,
    apiPort,
    pgPort,
    ports,
    tokens,
    get process() {
      return proc;
    },
    async start() {
      const p = startProcess(process.execPath, [join(ROOT, 'bin/airlock.js'), 'serve', '--config', config], {
        cwd: dir,
      });
      all.push(p);
      await p.waitForOutput(/PostgreSQL 127\.0\.0\.1/, 60_000);
      proc = p;
      return p;
    },
    async api<T>(method: string, path: string, body?: unknown): Promise<T> {
      const res = await apiCaller(`http://127.0.0.1:${apiPort}`, tokens)<T>(method, path, body, 'alice');
      if (res.status < 200 || res.status > 299)
        throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
      return res.body;
    },
    target: (who) => ({ host: '127.0.0.1', port: pgPort, database: 'app', token: tokens[who], user: who }),
    usage() {
      const pid = proc?.child.pid;
      if (!pid) return { rss: 0, fds: 0 };
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
      return { rss, fds: readdirSync(`/proc/${pid}/fd`).length };
    },
    async close() {
      for (const p of all) if (!p.hasExited()) await p.stop('SIGTERM', 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
