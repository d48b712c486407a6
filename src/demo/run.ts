/**
 * `airlock demo`: everything embedded, nothing else to install. A PGlite database stands in for
 * production, a sample policy holds writes for a DBA, and two tokens (an agent, a reviewer)
 * are kept in DIR/demo.json so they stay the same across restarts of the same data directory.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { generateToken } from '../core/identity/tokens.ts';
import { parsePolicy } from '../core/policy/load.ts';
import type { Policy } from '../core/policy/policy.ts';
import { type Gateway, startGateway } from '../server/gateway.ts';
import { openDemoDatabase } from './database.ts';
import { startPgliteServer } from './pglite-server.ts';

export const DEMO_CONNECTION = 'demo';

export interface DemoOptions {
  readonly dataDir: string;
  readonly apiPort: number;
  readonly pgPort: number;
  readonly logger: Logger;
}

export interface DemoInfo {
  readonly api: string;
  readonly postgres: { readonly host: string; readonly port: number; readonly database: string };
  readonly tokens: { readonly agent: string; readonly reviewer: string };
}

export interface RunningDemo {
  readonly info: DemoInfo;
  readonly gateway: Gateway;
  close(): Promise<void>;
}

/** Tokens from an earlier run of this data directory, if demo.json holds valid ones. */
function previousTokens(file: string): { agent: string; reviewer: string } | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const json = JSON.parse(readFileSync(file, 'utf8')) as Partial<DemoInfo>;
    const t = json.tokens;
    if (typeof t?.agent === 'string' && typeof t.reviewer === 'string' && t.agent && t.reviewer)
      return { agent: t.agent, reviewer: t.reviewer };
  } catch {
    // A damaged demo.json is replaced with fresh tokens.
  }
  return undefined;
}

/** The sample policy. Tokens are literals here: the demo keeps them in its own 0600 file. */
export function demoPolicy(
  dir: string,
  o: { apiPort: number; pgPort: number; upstreamPort: number; tokens: { agent: string; reviewer: string } },
): Policy {
  const yaml = `
listen:
  api: 127.0.0.1:${o.apiPort}
  postgres: 127.0.0.1:${o.pgPort}
store: sqlite:./airlock.db

identities:
  tokens:
    - { name: agent, token: ${JSON.stringify(o.tokens.agent)}, kind: agent, groups: [agents] }
    - { name: reviewer, token: ${JSON.stringify(o.tokens.reviewer)}, kind: human, groups: [dba] }

defaults:
  review: { groups: [dba], approvals: 1, expires: 15m, hold: wait }

connections:
  ${DEMO_CONNECTION}:
    type: postgres
    description: the embedded demo database (PGlite) with customers and orders
    upstream: { host: 127.0.0.1, port: ${o.upstreamPort}, database: postgres, user: postgres }
    default: review
    review: { groups: [dba], approvals: 1, expires: 15m, hold: wait }

rules:
  - name: reads are free
    connections: [${DEMO_CONNECTION}]
    kinds: [read]
    effect: allow
  - name: writes need a DBA
    connections: [${DEMO_CONNECTION}]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 15m, hold: wait }
  - name: no drops outside migrations
    statements: [DropStmt, TruncateStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
`;
  return parsePolicy(yaml, join(dir, 'airlock.yaml'), dir);
}

export async function startDemo(opts: DemoOptions): Promise<RunningDemo> {
  const dir = resolve(opts.dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const infoFile = join(dir, 'demo.json');
  const tokens = previousTokens(infoFile) ?? { agent: generateToken(), reviewer: generateToken() };

  const db = await openDemoDatabase(join(dir, 'pgdata'));
  const closers: (() => Promise<void>)[] = [() => db.close()];
  const closeAll = async () => {
    for (const fn of closers.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        opts.logger.warn({ err }, 'error while stopping the demo');
      }
    }
  };
  try {
    const target = await startPgliteServer(db, { host: '127.0.0.1', port: 0 });
    closers.push(() => target.close());
    opts.logger.debug({ port: target.port }, 'demo database listening');

    const policy = demoPolicy(dir, {
      apiPort: opts.apiPort,
      pgPort: opts.pgPort,
      upstreamPort: target.port,
      tokens,
    });
    const gateway = await startGateway({ policy, logger: opts.logger });
    closers.push(() => gateway.close());

    const info: DemoInfo = {
      api: gateway.api.url,
      postgres: { host: gateway.postgres.host, port: gateway.postgres.port, database: DEMO_CONNECTION },
      tokens,
    };
    writeFileSync(infoFile, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    // writeFileSync keeps the mode of an existing file; make sure it is private.
    chmodSync(infoFile, 0o600);

    let closing: Promise<void> | undefined;
    return {
      info,
      gateway,
      close() {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The how-to printed when the demo starts. */
export function demoHowTo(info: DemoInfo, dataDir: string): string {
  const pg = info.postgres;
  const env = `AIRLOCK_URL=${info.api} AIRLOCK_TOKEN=${info.tokens.reviewer}`;
  return `
Airlock demo is running.

  API and request pages   ${info.api}
  PostgreSQL gateway      ${pg.host}:${pg.port}   (database "${pg.database}")
  settings and tokens     ${join(resolve(dataDir), 'demo.json')}

1. Connect as the AI agent (its Airlock token is the password):

   PGPASSWORD=${info.tokens.agent} psql "host=${pg.host} port=${pg.port} dbname=${pg.database} user=agent"

2. Try:   SELECT * FROM orders LIMIT 5;        runs at once (reads are allowed)
   then:  DELETE FROM orders WHERE id = 7;     waits for a DBA to approve it
   and:   DROP TABLE orders;                   is denied, with the reason

3. In another terminal, as the reviewer:

   ${env} npx airlock requests
   ${env} npx airlock approve N
   ${env} npx airlock deny N --reason "not today"

   or open the request URL the agent's psql shows (${info.api}/requests/N).

Press Ctrl-C to stop.
`;
}
