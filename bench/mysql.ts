/**
 * MySQL read throughput: `mysqlslap` (the MariaDB client library, a separate process) at
 * BENCH_CLIENTS clients running a point SELECT against one private MariaDB, directly, through a
 * bare TCP relay and through Airlock. Each run is bounded by a query count
 * (BENCH_MYSQL_QUERIES, default 40000) and killed if it overstays. The three targets are measured
 * in BENCH_MYSQL_ROUNDS interleaved rounds (default 3) and compared by their medians, since
 * neighbours on a small machine move single runs a lot. The relay and Airlock run in this process,
 * so its CPU time per query (threads included) is reported too: a figure the neighbours move less.
 *
 * Run alone: `node --import tsx bench/mysql.ts`; `npm run bench` runs it too.
 */
import {
  findMariadbTool,
  MYSQL_CONNECTION,
  startMariadb,
  startMysqlTestGateway,
} from '../test/support/mariadb.ts';
import { startProcess } from '../test/support/processes.ts';
import { startRelay } from './relay.ts';

export interface MysqlBenchRun {
  readonly target: 'direct' | 'relay' | 'airlock';
  readonly round: number;
  readonly ok: boolean;
  readonly queries: number;
  readonly seconds?: number;
  readonly qps?: number;
  /** This process's CPU time (user + system, all threads) per query, in microseconds. */
  readonly cpuUsPerQuery?: number;
  readonly error?: string;
}

export interface MysqlBenchResult {
  readonly tool: 'mysqlslap';
  readonly clients: number;
  readonly queries: number;
  readonly query: string;
  readonly runs: readonly MysqlBenchRun[];
  /** Median queries per second of each target over the rounds. */
  readonly medianQps?: { direct?: number; relay?: number; airlock?: number };
  /** Median CPU time per query of the relay and of Airlock (microseconds). */
  readonly cpuUsPerQuery?: { relay?: number; airlock?: number };
  /** Airlock's median queries per second over direct and over the bare relay. */
  readonly ratioToDirect?: number;
  readonly ratioToRelay?: number;
  readonly skipped?: string;
}

const QUERY = 'SELECT id, customer, total FROM orders WHERE id = 7';

export async function benchMysql(
  o: { clients?: number; queries?: number; rounds?: number; log?: (s: string) => void } = {},
): Promise<MysqlBenchResult> {
  const clients = o.clients ?? Number(process.env.BENCH_CLIENTS ?? 8);
  const queries = o.queries ?? Number(process.env.BENCH_MYSQL_QUERIES ?? 40_000);
  const rounds = Math.max(1, o.rounds ?? Number(process.env.BENCH_MYSQL_ROUNDS ?? 3));
  const log = o.log ?? ((s: string) => console.error(`[bench:mysql] ${s}`));
  const slap = findMariadbTool('mysqlslap') ?? findMariadbTool('mariadb-slap');
  if (!slap || !findMariadbTool('mariadbd'))
    return {
      tool: 'mysqlslap',
      clients,
      queries,
      query: QUERY,
      runs: [],
      skipped: 'mariadb-server / mysqlslap not installed',
    };
  const target = await startMariadb();
  const cleanups: (() => Promise<void>)[] = [() => target.stop()];
  const runs: MysqlBenchRun[] = [];
  try {
    const relay = await startRelay({ host: '127.0.0.1', port: target.port });
    cleanups.unshift(() => relay.close());
    const gw = await startMysqlTestGateway(target);
    cleanups.unshift(() => gw.close());
    const targets = [
      {
        id: 'direct' as const,
        port: target.port,
        user: target.app.user,
        password: target.app.password,
        db: target.app.database,
      },
      {
        id: 'relay' as const,
        port: relay.port,
        user: target.app.user,
        password: target.app.password,
        db: target.app.database,
      },
      // mysqlslap's first connection names no database, so the user name picks the connection.
      {
        id: 'airlock' as const,
        port: gw.mysql.port,
        user: MYSQL_CONNECTION,
        password: gw.tokens.bench,
        db: MYSQL_CONNECTION,
      },
    ];
    // One warm-up pass each, then the measured rounds interleaved so drift hits all targets alike.
    const passes = ['warm-up', ...Array.from({ length: rounds }, (_, i) => i + 1)] as const;
    for (const pass of passes) {
      for (const t of targets) {
        const n = pass === 'warm-up' ? Math.min(queries, 4000) : queries;
        log(`${pass === 'warm-up' ? pass : `round ${pass}`}: ${t.id}, ${clients} clients, ${n} queries`);
        const cpu0 = process.cpuUsage();
        const p = startProcess(slap, [
          '--no-defaults',
          '-h',
          '127.0.0.1',
          '-P',
          String(t.port),
          '-u',
          t.user,
          `-p${t.password}`,
          `--create-schema=${t.db}`,
          '--no-drop',
          `--query=${QUERY}`,
          `--concurrency=${clients}`,
          `--number-of-queries=${n}`,
          '--iterations=1',
        ]);
        const exit = await p.waitForExit(300_000).catch(async (err: Error) => {
          await p.stop('SIGKILL');
          return { code: -1, signal: null, error: err.message };
        });
        const cpu = process.cpuUsage(cpu0);
        if (pass === 'warm-up') continue;
        const m = /Average number of seconds to run all queries: ([\d.]+)/.exec(p.stdout());
        if (exit.code !== 0 || !m) {
          runs.push({ target: t.id, round: pass, ok: false, queries: n, error: p.output().slice(-500) });
          continue;
        }
        const seconds = Number(m[1]);
        runs.push({
          target: t.id,
          round: pass,
          ok: true,
          queries: n,
          seconds,
          qps: seconds > 0 ? n / seconds : undefined,
          cpuUsPerQuery: (cpu.user + cpu.system) / n,
        });
      }
    }
  } finally {
    for (const c of cleanups) await c().catch((err) => log(`cleanup: ${(err as Error).message}`));
  }
  const of = (id: string, pick: (r: MysqlBenchRun) => number | undefined) =>
    median(runs.filter((r) => r.target === id && r.ok).map(pick));
  const a = of('airlock', (r) => r.qps);
  const d = of('direct', (r) => r.qps);
  const r = of('relay', (x) => x.qps);
  return {
    tool: 'mysqlslap',
    clients,
    queries,
    query: QUERY,
    runs,
    medianQps: { direct: d, relay: r, airlock: a },
    cpuUsPerQuery: {
      relay: of('relay', (x) => x.cpuUsPerQuery),
      airlock: of('airlock', (x) => x.cpuUsPerQuery),
    },
    ...(a && d ? { ratioToDirect: a / d } : {}),
    ...(a && r ? { ratioToRelay: a / r } : {}),
  };
}

function median(values: readonly (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined).sort((x, y) => x - y);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1]! + v[mid]!) / 2;
}

export function printMysqlBench(res: MysqlBenchResult): void {
  console.log(`mysqlslap, ${res.clients} clients, ${res.queries} × "${res.query}"`);
  if (res.skipped) {
    console.log(`  skipped: ${res.skipped}`);
    return;
  }
  for (const run of res.runs)
    console.log(
      `  round ${run.round} ${run.target.padEnd(8)} ${run.ok ? `${Math.round(run.qps ?? 0)} queries/s (${run.seconds} s)${run.target === 'direct' ? '' : `, ${run.cpuUsPerQuery?.toFixed(0)} µs CPU/query`}` : `failed: ${run.error}`}`,
    );
  const m = res.medianQps;
  if (m)
    console.log(
      `  medians: direct ${Math.round(m.direct ?? 0)}, relay ${Math.round(m.relay ?? 0)}, Airlock ${Math.round(m.airlock ?? 0)} queries/s`,
    );
  const cpu = res.cpuUsPerQuery;
  if (cpu?.relay !== undefined && cpu.airlock !== undefined)
    console.log(`  CPU per query: relay ${cpu.relay.toFixed(0)} µs, Airlock ${cpu.airlock.toFixed(0)} µs`);
  if (res.ratioToDirect !== undefined) console.log(`  Airlock / direct: ${res.ratioToDirect.toFixed(2)}`);
  if (res.ratioToRelay !== undefined) console.log(`  Airlock / bare relay: ${res.ratioToRelay.toFixed(2)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const res = await benchMysql();
  printMysqlBench(res);
  console.log(JSON.stringify(res, null, 2));
  process.exit(res.runs.every((r) => r.ok) ? 0 : 1);
}
