/**
 * `npm run bench`: pgbench through Airlock, against a direct connection, a bare TCP relay and
 * (when installed) pgbouncer, all in one run against one private PostgreSQL. Prints TPS ratios
 * and the latency Airlock adds at p50/p99; writes the same to .bench/results.json.
 *
 * `--scale` runs bench/scale.ts instead (replicas on a PostgreSQL store).
 *
 * Then, each in its own bounded section: review latency, audit speed, MySQL (when mariadb is
 * installed) and SSH through Airlock vs straight to sshd (when sshd is installed; BENCH_SSH=0
 * skips it, BENCH_SSH_RUNS / BENCH_SSH_MB size it, BENCH_SSH_SECONDS bounds it, default 300),
 * HTTP requests per second through Airlock vs straight to the upstream (bench/http.ts;
 * BENCH_HTTP=0 skips it, BENCH_HTTP_SECONDS per run, default 5), and a git clone of a 50 MB
 * repository through Airlock vs straight from git http-backend (bench/git.ts; BENCH_GIT=0 skips
 * it, BENCH_GIT_MB / BENCH_GIT_RUNS size it, BENCH_GIT_SECONDS bounds it, default 300).
 *
 * Environment: BENCH_SECONDS (per run, default 10), BENCH_SCALE (pgbench -s, default 10),
 * BENCH_CLIENTS (default 8), BENCH_ONLY (e.g. "direct,airlock"), BENCH_MODES (e.g. "select").
 * Every run is bounded: pgbench gets -T and is killed if it overstays; the whole run has a
 * watchdog.
 */
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { TestGateway } from '../test/support/gateway.ts';
import { freePort } from '../test/support/ports.ts';
import { findTool, type PrivatePostgres, startPostgres } from '../test/support/postgres.ts';
import { type ManagedProcess, startProcess, stopAll } from '../test/support/processes.ts';
import { SSHD } from '../test/support/sshd.ts';
import { benchAudit, printAuditBench } from './audit.ts';
import { benchIdle, type IdleResult } from './idle.ts';
import { benchMysql, printMysqlBench } from './mysql.ts';
import { benchNotifyLatency } from './notify-latency.ts';
import { type Relay, startRelay } from './relay.ts';
import type { SshBenchResult } from './ssh.ts';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = positive('BENCH_SECONDS', 10);
const SCALE = positive('BENCH_SCALE', 10);
const CLIENTS = positive('BENCH_CLIENTS', 8);
const JOBS = Math.min(2, CLIENTS);
const ONLY = listEnv('BENCH_ONLY');
const ONLY_MODES = listEnv('BENCH_MODES');
/**
 * Idle connections opened through Airlock to measure gateway memory per connection (0: skip).
 * 5,000 by default, the count the memory target is stated for (about two minutes: each is a
 * sign-in and a backend process on the target).
 */
const IDLE = process.env.BENCH_IDLE === '0' ? 0 : Math.floor(positive('BENCH_IDLE', 5000));
/** The SSH section's time budget; past it the section is stopped and reported as such. */
const SSH_SECONDS = process.env.BENCH_SSH === '0' ? 0 : positive('BENCH_SSH_SECONDS', 300);
/** Seconds of each HTTP load run (0: skip the section). */
const HTTP_SECONDS = process.env.BENCH_HTTP === '0' ? 0 : positive('BENCH_HTTP_SECONDS', 5);
/** The git clone section's time budget (0: skip it). */
const GIT_SECONDS = process.env.BENCH_GIT === '0' ? 0 : positive('BENCH_GIT_SECONDS', 300);
const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

interface Mode {
  readonly id: string;
  readonly label: string;
  readonly args: readonly string[];
}
const MODES: readonly Mode[] = [
  { id: 'select', label: '-S (simple)', args: ['-S'] },
  { id: 'select-extended', label: '-S -M extended', args: ['-S', '-M', 'extended'] },
  { id: 'tpcb-n', label: '-N (writes)', args: ['-N'] },
];

interface Target {
  readonly id: 'direct' | 'pgbouncer' | 'relay' | 'airlock';
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

interface Result {
  readonly target: Target['id'];
  readonly mode: string;
  readonly ok: boolean;
  readonly tps?: number;
  readonly transactions?: number;
  readonly failed?: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly meanMs?: number;
  readonly error?: string;
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

function listEnv(name: string): Set<string> | undefined {
  const raw = process.env[name];
  return raw
    ? new Set(
        raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
    : undefined;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

async function pgbench(pgbenchBin: string, target: Target, mode: Mode, logDir: string): Promise<Result> {
  const prefix = join(logDir, `${target.id}-${mode.id}`);
  const args = [
    '-n', // no VACUUM before the run: it is not part of what we measure (and is an admin action)
    ...mode.args,
    '-c',
    String(CLIENTS),
    '-j',
    String(JOBS),
    '-T',
    String(SECONDS),
    '-l',
    `--log-prefix=${prefix}`,
    '-h',
    target.host,
    '-p',
    String(target.port),
    '-U',
    target.user,
    target.database,
  ];
  const p: ManagedProcess = startProcess(pgbenchBin, args, {
    cwd: logDir,
    env: { ...process.env, PGPASSWORD: target.password, PGCONNECT_TIMEOUT: '20', PGSSLMODE: 'disable' },
  });
  p.endInput();
  let exit: Awaited<ManagedProcess['exited']>;
  try {
    // pgbench stops at -T; anything beyond a generous margin means a stuck connection.
    exit = await p.waitForExit((SECONDS + 60) * 1000);
  } catch {
    await p.stop('SIGKILL');
    return {
      target: target.id,
      mode: mode.id,
      ok: false,
      error: `pgbench did not finish within ${SECONDS + 60} s`,
    };
  }
  const out = p.stdout();
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1];
  const transactions = /number of transactions actually processed: (\d+)/.exec(out)?.[1];
  const failed = /number of failed transactions: (\d+)/.exec(out)?.[1];
  const mean = /latency average = ([\d.]+) ms/.exec(out)?.[1];
  if (exit.code !== 0 || tps === undefined) {
    return {
      target: target.id,
      mode: mode.id,
      ok: false,
      error: `pgbench exited ${exit.code ?? exit.signal}: ${p.stderr().trim().split('\n').slice(-3).join(' | ')}`,
    };
  }
  // Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us; the
  // third column is the transaction's latency in microseconds.
  const latencies: number[] = [];
  const base = `${target.id}-${mode.id}.`;
  for (const f of readdirSync(logDir).filter((f) => f.startsWith(base))) {
    for (const line of readFileSync(join(logDir, f), 'utf8').split('\n')) {
      const us = Number(line.split(' ')[2]);
      if (Number.isFinite(us) && line.length > 0) latencies.push(us / 1000);
    }
    rmSync(join(logDir, f), { force: true });
  }
  const sorted = Float64Array.from(latencies).sort();
  return {
    target: target.id,
    mode: mode.id,
    ok: true,
    tps: Number(tps),
    transactions: Number(transactions ?? latencies.length),
    failed: Number(failed ?? 0),
    meanMs: Number(mean),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}

function findPgbouncer(): string | undefined {
  for (const dir of [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/local/sbin',
    '/usr/bin',
  ])
    if (dir && existsSync(join(dir, 'pgbouncer'))) return join(dir, 'pgbouncer');
  return undefined;
}

/** pgbouncer in session mode (the fair comparison: one server connection per client, like Airlock). */
async function startPgbouncer(
  bin: string,
  upstream: PrivatePostgres,
): Promise<{ target: Target; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pgbouncer-'));
  const port = await freePort();
  const { user, password, database } = upstream.app;
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    `[databases]
${database} = host=${upstream.host} port=${upstream.port} dbname=${database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${join(dir, 'userlist.txt')}
pool_mode = session
max_client_conn = 200
default_pool_size = ${CLIENTS + 4}
ignore_startup_parameters = extra_float_digits
`,
  );
  writeFileSync(join(dir, 'userlist.txt'), `"${user}" "${password}"\n`, { mode: 0o600 });
  // pgbouncer, like PostgreSQL, refuses to run as root.
  const runAs = upstream.runAs;
  if (runAs) for (const f of [dir, ini, join(dir, 'userlist.txt')]) chownSync(f, runAs.uid, runAs.gid);
  const proc = startProcess(bin, [ini], runAs ? { uid: runAs.uid, gid: runAs.gid, cwd: dir } : { cwd: dir });
  try {
    await proc.waitForOutput(/process up|listening on/i, 20_000);
  } catch (err) {
    await proc.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    target: { id: 'pgbouncer', host: '127.0.0.1', port, database, user, password },
    async stop() {
      await proc.stop('SIGINT', 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const BENCH_RULES = `
rules:
  - name: the benchmark principal may read and write
    connections: [app]
    principals: [bench]
    effect: allow
  - name: no drops outside migrations
    statements: [DropStmt, TruncateStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
limits:
  # The idle-connection section opens BENCH_IDLE connections as this one principal.
  max_connections_per_principal: ${Math.max(500, IDLE + 100)}
`;

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

function printTable(results: readonly Result[]): void {
  const find = (t: string, m: string) => results.find((r) => r.target === t && r.mode === m && r.ok);
  const header = [
    'target',
    'mode',
    'TPS',
    'vs direct',
    'vs pgbouncer',
    'p50 ms',
    'p99 ms',
    '+p50 ms',
    '+p99 ms',
  ];
  const rows: string[][] = [];
  for (const mode of MODES) {
    const direct = find('direct', mode.id);
    const bouncer = find('pgbouncer', mode.id);
    for (const r of results.filter((r) => r.mode === mode.id)) {
      if (!r.ok) {
        rows.push([r.target, mode.label, 'failed', r.error ?? '', '', '', '', '', '']);
        continue;
      }
      rows.push([
        r.target,
        mode.label,
        fmt(r.tps, 0),
        direct?.tps ? `${fmt(r.tps! / direct.tps, 2)}×` : '—',
        bouncer?.tps ? `${fmt(r.tps! / bouncer.tps, 2)}×` : '—',
        fmt(r.p50Ms, 3),
        fmt(r.p99Ms, 3),
        direct ? fmt(r.p50Ms! - direct.p50Ms!, 3) : '—',
        direct ? fmt(r.p99Ms! - direct.p99Ms!, 3) : '—',
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<void> {
  const pgbenchBin = findTool('pgbench');
  if (!pgbenchBin)
    throw new Error('pgbench was not found: install PostgreSQL (Debian: apt-get install postgresql)');
  const wanted = (id: string) => !ONLY || ONLY.has(id);
  const modes = MODES.filter(
    (m) => !ONLY_MODES || ONLY_MODES.has(m.id) || [...ONLY_MODES].some((o) => m.id.startsWith(o)),
  );

  const started = Date.now();
  log(`starting a private PostgreSQL`);
  const upstream = await startPostgres({ settings: { max_connections: Math.max(200, IDLE + 60) } });
  const cleanups: (() => Promise<void>)[] = [() => upstream.stop()];
  const workDir = mkdtempSync(join(tmpdir(), 'airlock-bench-'));
  cleanups.unshift(async () => rmSync(workDir, { recursive: true, force: true }));
  const results: Result[] = [];
  let idle: IdleResult | undefined;
  try {
    log(`pgbench -i -s ${SCALE}`);
    const init = startProcess(
      pgbenchBin,
      [
        '-i',
        '-s',
        String(SCALE),
        '-q',
        '-h',
        upstream.host,
        '-p',
        String(upstream.port),
        '-U',
        upstream.app.user,
        upstream.app.database,
      ],
      { env: { ...process.env, PGPASSWORD: upstream.app.password } },
    );
    init.endInput();
    const initExit = await init.waitForExit(600_000);
    if (initExit.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr()}`);

    const targets: Target[] = [];
    const app = upstream.app;
    if (wanted('direct'))
      targets.push({
        id: 'direct',
        host: upstream.host,
        port: upstream.port,
        database: app.database,
        user: app.user,
        password: app.password,
      });

    const bouncerBin = findPgbouncer();
    if (wanted('pgbouncer')) {
      if (bouncerBin) {
        try {
          const b = await startPgbouncer(bouncerBin, upstream);
          cleanups.unshift(() => b.stop());
          targets.push(b.target);
        } catch (err) {
          log(`pgbouncer did not start, skipping it: ${(err as Error).message.split('\n')[0]}`);
        }
      } else log('pgbouncer is not installed; skipping it (Debian: apt-get install pgbouncer)');
    }

    if (wanted('relay')) {
      const relay: Relay = await startRelay(upstream);
      cleanups.unshift(() => relay.close());
      targets.push({
        id: 'relay',
        host: '127.0.0.1',
        port: relay.port,
        database: app.database,
        user: app.user,
        password: app.password,
      });
    }

    if (wanted('airlock')) {
      // Loaded only when wanted, so the baselines run even where the gateway does not load.
      const { startTestGateway } = await import('../test/support/gateway.ts');
      const gw: TestGateway = await startTestGateway(upstream, { rules: BENCH_RULES });
      cleanups.unshift(() => gw.close());
      targets.push({ id: 'airlock', ...gw.target('bench'), user: 'bench', password: gw.tokens.bench });
    }

    for (const mode of modes) {
      for (const target of targets) {
        log(`${target.id} ${mode.label}: ${SECONDS} s at ${CLIENTS} clients`);
        const r = await pgbench(pgbenchBin, target, mode, workDir);
        if (!r.ok) log(`  failed: ${r.error}`);
        else log(`  ${fmt(r.tps, 0)} tps, p50 ${fmt(r.p50Ms, 3)} ms, p99 ${fmt(r.p99Ms, 3)} ms`);
        results.push(r);
      }
    }

    const airlock = targets.find((t) => t.id === 'airlock');
    if (airlock && IDLE > 0) {
      log(`${IDLE} idle connections through Airlock`);
      idle = await benchIdle(airlock, IDLE);
    }
  } finally {
    for (const c of cleanups) await c().catch((err) => log(`cleanup: ${(err as Error).message}`));
  }

  // Review latency (issue 3): held → webhook received, approval → held statement released.
  const review = await benchNotifyLatency(200);
  // Audit appends (with and without signed checkpoints), verify and export speed.
  const audit = await benchAudit();
  // MySQL point reads: mysqlslap direct, through a bare relay and through Airlock.
  const mysql = await benchMysql({ clients: CLIENTS, log });
  // SSH: connections and bulk output, through Airlock vs straight to sshd.
  const ssh = await sshSection();
  // HTTP: small JSON GETs over 32 keep-alive connections, through Airlock vs direct.
  const http = await boundedSection('HTTP', HTTP_SECONDS === 0 ? 0 : HTTP_SECONDS * 12 + 120, async () => {
    const { benchHttp } = await import('./http.ts');
    return benchHttp({ seconds: HTTP_SECONDS, connections: 32 });
  });
  // Git: clone of a 50 MB repository through Airlock vs straight from git http-backend.
  const git = await boundedSection(
    'git',
    existsSync(GIT_HTTP_BACKEND) ? GIT_SECONDS : 0,
    async () => {
      const { benchGitClone } = await import('./git.ts');
      return benchGitClone({ log });
    },
    existsSync(GIT_HTTP_BACKEND) ? 'BENCH_GIT=0' : `${GIT_HTTP_BACKEND} not installed`,
  );

  console.log('');
  console.log(`pgbench, ${CLIENTS} clients / ${JOBS} threads, ${SECONDS} s per run, scale ${SCALE}`);
  printTable(results);
  console.log('');
  printAuditBench(audit);
  console.log('');
  printMysqlBench(mysql);
  if ('skipped' in ssh) console.log(`\nssh: skipped: ${ssh.skipped}`);
  if ('failed' in ssh) console.log(`\nssh: FAILED: ${ssh.failed}`);
  console.log('');
  if ('skipped' in http) console.log(`http: skipped: ${http.skipped}`);
  else if ('failed' in http) console.log(`http: FAILED: ${http.failed}`);
  else (await import('./http.ts')).printHttpBench(http);
  console.log('');
  if ('skipped' in git) console.log(`git: skipped: ${git.skipped}`);
  else if ('failed' in git) console.log(`git: FAILED: ${git.failed}`);
  else (await import('./git.ts')).printGitBench(git);
  if (idle)
    console.log(
      `\nidle connections through Airlock: ${idle.connections}, gateway memory per connection ${fmt(idle.heapBytesPerConnection / 1024, 1)} KB (heap and buffers), ${fmt(idle.rssBytesPerConnection / 1024, 1)} KB (resident set)`,
    );
  mkdirSync(join(ROOT, '.bench'), { recursive: true });
  const file = join(ROOT, '.bench', 'results.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        at: new Date().toISOString(),
        seconds: SECONDS,
        scale: SCALE,
        clients: CLIENTS,
        jobs: JOBS,
        node: process.version,
        durationSeconds: Math.round((Date.now() - started) / 1000),
        results,
        review,
        audit,
        mysql,
        ssh,
        http,
        git,
        idle,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nresults written to ${file}`);
  if (results.some((r) => !r.ok) || mysql.runs.some((r) => !r.ok)) process.exitCode = 1;
}

/**
 * bench/ssh.ts in a bounded section: skipped when sshd is not installed; sized by the
 * environment (default: the 200 connections and 200 MB the SSH targets are stated for, about two
 * minutes); stopped at its time budget.
 */
async function sshSection(): Promise<
  SshBenchResult | { readonly skipped: string } | { readonly failed: string }
> {
  if (SSH_SECONDS === 0) return { skipped: 'BENCH_SSH=0' };
  if (!existsSync(SSHD)) {
    log(`${SSHD} is not installed; skipping SSH (Debian: apt-get install openssh-server)`);
    return { skipped: `${SSHD} not installed` };
  }
  process.env.BENCH_SSH_RUNS ??= '200';
  process.env.BENCH_SSH_MB ??= '200';
  const { benchSsh } = await import('./ssh.ts');
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<'overdue'>((resolve) => {
    timer = setTimeout(() => resolve('overdue'), SSH_SECONDS * 1000);
  });
  const run = benchSsh();
  try {
    const r = await Promise.race([run, overdue]);
    if (r !== 'overdue') return r;
    log(`the SSH section exceeded its ${SSH_SECONDS} s budget; stopping it`);
    // Stopping sshd makes the runs in flight fail, so benchSsh cleans up after itself.
    await stopAll();
    await run.catch(() => {});
    return { skipped: `did not finish within ${SSH_SECONDS} s (BENCH_SSH_SECONDS)` };
  } catch (err) {
    const failed = (err as Error).message.split('\n')[0] ?? String(err);
    log(`SSH section failed: ${failed}`);
    process.exitCode = 1;
    return { failed };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs one section within `seconds` (0 skips it): past its budget it is reported as not
 * finished and the run goes on; a failure is reported and fails the run.
 */
async function boundedSection<T extends object>(
  name: string,
  seconds: number,
  run: () => Promise<T>,
  skipReason = `BENCH_${name.toUpperCase()}=0`,
): Promise<T | { readonly skipped: string } | { readonly failed: string }> {
  if (seconds === 0) return { skipped: skipReason };
  log(`${name} section (at most ${seconds} s)`);
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<'overdue'>((resolve) => {
    timer = setTimeout(() => resolve('overdue'), seconds * 1000);
  });
  const running = run();
  try {
    const r = await Promise.race([running, overdue]);
    if (r !== 'overdue') return r;
    log(`the ${name} section exceeded its ${seconds} s budget`);
    running.catch(() => {});
    return { skipped: `did not finish within ${seconds} s` };
  } catch (err) {
    const failed = (err as Error).message.split('\n')[0] ?? String(err);
    log(`${name} section failed: ${failed}`);
    process.exitCode = 1;
    return { failed };
  } finally {
    clearTimeout(timer);
  }
}

// The whole run stops by itself even if something hangs.
const budgetMs =
  (MODES.length * 4 * (SECONDS + 60) +
    900 +
    IDLE / 10 +
    SSH_SECONDS +
    HTTP_SECONDS * 12 +
    120 +
    GIT_SECONDS) *
  1000;
const watchdog = setTimeout(() => {
  log(`the benchmark exceeded its ${Math.round(budgetMs / 1000)} s budget; stopping`);
  void stopAll().finally(() => process.exit(2));
}, budgetMs);
watchdog.unref();

// `npm run bench -- --scale` (npm passes `npm run bench --scale` as npm_config_scale): several
// replicas on a PostgreSQL store instead, see bench/scale.ts.
const scaleMode = process.argv.includes('--scale') || process.env.npm_config_scale === 'true';

try {
  if (scaleMode) await (await import('./scale.ts')).benchScale();
  else await main();
} catch (err) {
  log((err as Error).stack ?? String(err));
  process.exitCode = 1;
} finally {
  await stopAll();
}
