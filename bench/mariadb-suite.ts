/**
 * A subset of MariaDB's own test suite (Debian package `mariadb-test`) against a private MariaDB,
 * once directly and once through Airlock, with `mariadb-test-run --extern` (an already running
 * server). Prints pass/fail/skipped per run and per test, so differences stand out.
 *
 * Through Airlock the suite logs in as the connection `test` (whose target database is `test`)
 * with an Airlock token as the password; a policy that allows everything keeps the comparison
 * about the wire, not about rules. Tests that need the server's own socket, root, or the
 * server's configuration as the suite starts it fail (or are skipped) both ways.
 *
 * Run alone: `node --import tsx bench/mariadb-suite.ts [main.alias main.bool ...]`
 * (BENCH_SUITE_TESTS also sets the list). Not part of `npm run bench`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMariadb, startMysqlTestGateway } from '../test/support/mariadb.ts';

const SUITE = '/usr/share/mysql/mysql-test';
const DEFAULT_TESTS =
  'main.alias main.null main.case main.having main.func_if main.bool main.comments main.limit main.func_equal main.varbinary';

export interface SuiteRun {
  readonly target: 'direct' | 'airlock';
  readonly pass: number;
  readonly fail: number;
  readonly skipped: number;
  readonly tests: Record<string, string>;
}

async function runSuite(
  target: SuiteRun['target'],
  tests: readonly string[],
  login: { port: number; user: string; password: string },
): Promise<SuiteRun> {
  const dir = mkdtempSync(join(tmpdir(), `airlock-suite-${target}-`));
  // Asynchronous: the gateway under test runs in this process and must keep answering.
  const child = spawn(
    'perl',
    [
      './mariadb-test-run',
      '--extern',
      'host=127.0.0.1',
      '--extern',
      `port=${login.port}`,
      '--extern',
      `user=${login.user}`,
      '--extern',
      `password=${login.password}`,
      `--vardir=${join(dir, 'var')}`,
      '--force',
      '--max-test-fail=0',
      '--parallel=1',
      '--testcase-timeout=5',
      '--nowarnings',
      ...tests,
    ],
    { cwd: SUITE, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  await new Promise((resolve) => child.on('close', resolve));
  rmSync(dir, { recursive: true, force: true });
  // The suite's full report (diffs of failed tests), for reading the reasons.
  if (process.env.BENCH_SUITE_LOG) writeFileSync(`${process.env.BENCH_SUITE_LOG}.${target}.log`, out);
  const results: Record<string, string> = {};
  for (const m of out.matchAll(/^(\S+)\s+(?:w\d+\s+)?\[ (pass|fail|skipped|disabled) \]/gm))
    results[m[1]!] = m[2]!;
  const count = (w: string) => Object.values(results).filter((x) => x === w).length;
  if (Object.keys(results).length === 0)
    throw new Error(`mariadb-test-run gave no results:\n${out.slice(-3000)}`);
  return { target, pass: count('pass'), fail: count('fail'), skipped: count('skipped'), tests: results };
}

export async function benchMariadbSuite(tests: readonly string[]): Promise<SuiteRun[] | string> {
  if (!existsSync(join(SUITE, 'mariadb-test-run'))) return 'mariadb-test is not installed';
  // The suite's own server settings, where they change results (its include/default_mysqld.cnf).
  const target = await startMariadb({
    extraArgs: [
      '--character-set-server=latin1',
      '--collation-server=latin1_swedish_ci',
      '--max-heap-table-size=1M',
      '--sort-buffer-size=256K',
      '--log-bin-trust-function-creators=1',
    ],
  });
  try {
    const admin = await target.connect({ multipleStatements: true });
    await admin.query(
      "CREATE DATABASE test; CREATE USER 'suite'@'%' IDENTIFIED BY 'suite_pw_1'; GRANT ALL ON *.* TO 'suite'@'%' WITH GRANT OPTION;",
    );
    // The `mtr` schema the suite's own bootstrap creates (mtr.add_suppression and the checks),
    // its `||` statement ends read the way the server's client splits statements.
    await admin.query('CREATE DATABASE mtr');
    await admin.changeUser({ database: 'mtr' });
    for (const file of ['mtr_warnings.sql', 'mtr_check.sql']) {
      const text = readFileSync(join(SUITE, 'include', file), 'utf8').replace(/^delimiter \|\|;$/m, '');
      for (const statement of text.split(/\|\|\s*$/m)) {
        const sql = statement.replace(/^\s*--.*$/gm, '').trim();
        if (sql !== '' && !/^use mtr$/i.test(sql)) await admin.query(sql);
      }
    }
    await admin.end();
    const gw = await startMysqlTestGateway(target, {
      rules: 'rules: []',
      connectionExtra: `  test:
    type: mysql
    upstream:
      host: 127.0.0.1
      port: ${target.port}
      database: test
      user: suite
      password: "suite_pw_1"
    default: allow
`,
    });
    try {
      const direct = await runSuite('direct', tests, {
        port: target.port,
        user: 'suite',
        password: 'suite_pw_1',
      });
      // Without a database name the user name picks the connection: `test`.
      const airlock = await runSuite('airlock', tests, {
        port: gw.mysql.port,
        user: 'test',
        password: gw.tokens.bench,
      });
      return [direct, airlock];
    } finally {
      await gw.close();
    }
  } finally {
    await target.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const tests = args.length > 0 ? args : (process.env.BENCH_SUITE_TESTS ?? DEFAULT_TESTS).split(/\s+/);
  const res = await benchMariadbSuite(tests.filter(Boolean));
  if (typeof res === 'string') {
    console.log(`skipped: ${res}`);
  } else {
    for (const r of res)
      console.log(`${r.target.padEnd(8)} pass ${r.pass}, fail ${r.fail}, skipped ${r.skipped}`);
    const [direct, airlock] = res as [SuiteRun, SuiteRun];
    for (const t of Object.keys(direct.tests))
      console.log(
        `  ${t.padEnd(28)} direct ${direct.tests[t]!.padEnd(8)} airlock ${airlock.tests[t] ?? 'missing'}${direct.tests[t] === airlock.tests[t] ? '' : '   <- differs'}`,
      );
  }
}
