/**
 * MySQL read throughput: `mysqlslap` (the MariaDB client library, a separate process) at
 * BENCH_CLIENTS clients running a point SELECT against one private MariaDB, directly, through a
 * bare TCP relay and through Airlock. Each run is bounded by a query count
 * (BENCH_MYSQL_QUERIES, default 40000) and killed if it overstays.
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
  readonly ok: boolean;
  readonly queries: number;
  readonly seconds?: number;
  readonly qps?: number;
  readonly error?: string;
}

export interface MysqlBenchResult {
  readonly tool: 'mysqlslap';
  readonly clients: number;
  readonly queries: number;
  readonly query: string;
  readonly runs: readonly MysqlBenchRun[];
  /** Airlock's queries per second over direct and over the bare relay. */
  readonly ratioToDirect?: number;
  readonly ratioToRelay?: number;
  readonly skipped?: string;
}

const QUERY = 'SELECT id, customer, total FROM orders WHERE id = 7';

export async function benchMysql(
  o: { clients?: number; queries?: number; log?: (s: string) => void } = {},
): Promise<MysqlBenchResult> {
  const clients = o.clients ?? Number(process.env.BENCH_CLIENTS ?? 8);
  const queries = o.queries ?? Number(process.env.BENCH_MYSQL_QUERIES ?? 40_000);
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
    // One warm-up pass each, then the measured runs interleaved so drift hits all targets alike.
    for (const pass of ['warm-up', 'measure'] as const) {
      for (const t of targets) {
        const n = pass === 'warm-up' ? Math.min(queries, 4000) : queries;
        log(`${pass}: ${t.id}, ${clients} clients, ${n} queries`);
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
        if (pass === 'warm-up') continue;
        const m = /Average number of seconds to run all queries: ([\d.]+)/.exec(p.stdout());
        if (exit.code !== 0 || !m) {
          runs.push({ target: t.id, ok: false, queries: n, error: p.output().slice(-500) });
          continue;
        }
        const seconds = Number(m[1]);
        runs.push({
          target: t.id,
          ok: true,
          queries: n,
          seconds,
          qps: seconds > 0 ? n / seconds : undefined,
        });
      }
    }
  } finally {
    for (const c of cleanups) await c().catch((err) => log(`cleanup: ${(err as Error).message}`));
  }
  const qps = (id: string) => runs.find((r) => r.target === id && r.ok)?.qps;
  const a = qps('airlock');
  const d = qps('direct');
  const r = qps('relay');
  return {
    tool: 'mysqlslap',
    clients,
    queries,
    query: QUERY,
    runs,
    ...(a && d ? { ratioToDirect: a / d } : {}),
    ...(a && r ? { ratioToRelay: a / r } : {}),
  };
}

export function printMysqlBench(res: MysqlBenchResult): void {
  console.log(`mysqlslap, ${res.clients} clients, ${res.queries} × "${res.query}"`);
  if (res.skipped) {
    console.log(`  skipped: ${res.skipped}`);
    return;
  }
  for (const run of res.runs)
    console.log(
      `  ${run.target.padEnd(8)} ${run.ok ? `${Math.round(run.qps ?? 0)} queries/s (${run.seconds} s)` : `failed: ${run.error}`}`,
    );
  if (res.ratioToDirect !== undefined) console.log(`  Airlock / direct: ${res.ratioToDirect.toFixed(2)}`);
  if (res.ratioToRelay !== undefined) console.log(`  Airlock / bare relay: ${res.ratioToRelay.toFixed(2)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const res = await benchMysql();
  printMysqlBench(res);
  console.log(JSON.stringify(res, null, 2));
  process.exit(res.runs.every((r) => r.ok) ? 0 : 1);
}
