/**
 * Gateway memory per idle PostgreSQL connection: a child process opens N connections through
 * Airlock (the pg driver, signed in, then idle) so that only the gateway's side is measured in
 * this process, before and after, with garbage collected. The figure counts everything a session
 * holds: the caller's socket, the session state, and the socket to the target.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startProcess } from '../test/support/processes.ts';

export interface IdleResult {
  readonly connections: number;
  /** heapUsed + external + arrayBuffers growth per connection. */
  readonly heapBytesPerConnection: number;
  /** Resident set growth per connection (includes allocator slack). */
  readonly rssBytesPerConnection: number;
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function measure(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external + m.arrayBuffers, rss: m.rss };
}

const CHILD = `
const pg = require('pg');
const [host, port, database, user, password, n] = process.argv.slice(1);
(async () => {
  const clients = [];
  // A few sign-ins at a time: thousands one after another would take minutes of round trips.
  for (let i = 0; i < Number(n); i += 16) {
    const batch = [];
    for (let j = i; j < Math.min(Number(n), i + 16); j++) {
      const c = new pg.Client({ host, port: Number(port), database, user, password });
      c.on('error', () => {});
      batch.push(c.connect().then(() => c));
    }
    clients.push(...(await Promise.all(batch)));
  }
  await Promise.all(clients.map((c) => c.query('SELECT 1')));
  console.log('ready');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

export async function benchIdle(
  target: { host: string; port: number; database: string; user: string; password: string },
  n: number,
): Promise<IdleResult> {
  const before = measure();
  const child = startProcess(
    process.execPath,
    ['-e', CHILD, target.host, String(target.port), target.database, target.user, target.password, String(n)],
    { cwd: process.cwd() },
  );
  try {
    // Every connection has signed in and answered a query by now.
    // Each connection is a sign-in to Airlock and a new backend process on the target.
    await child.waitForOutput(/ready/, Math.max(120_000, n * 100), 'stdout');
    // Let the sessions settle into idle (login buffers released).
    await new Promise((r) => setTimeout(r, 1000));
    const after = measure();
    return {
      connections: n,
      heapBytesPerConnection: Math.round((after.heap - before.heap) / n),
      rssBytesPerConnection: Math.round((after.rss - before.rss) / n),
    };
  } finally {
    child.endInput();
    await child.stop('SIGTERM', 10_000);
  }
}
