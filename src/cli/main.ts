/**
 * The `airlock` command. Server commands (serve, demo) run the gateway in this process; client
 * commands (requests, approve, deny, exec, audit verify) talk to a running one through the API,
 * configured by AIRLOCK_URL and AIRLOCK_TOKEN.
 */
import { Command, CommanderError, Option } from 'commander';
import { AirlockError, isAirlockError } from '../core/errors.ts';
import { TokenRegistry } from '../core/identity/tokens.ts';
import { loadPolicyFile } from '../core/policy/load.ts';
import { parseDuration } from '../core/policy/schema.ts';
import { initClassifier } from '../protocols/postgres/classify.ts';
import type { requestJson } from '../server/api.ts';
import { type PolicyTestResult, policyTest } from '../server/policy-test.ts';
import { registerAuditCommands } from './audit.ts';
import { apiClient } from './client.ts';
import { runExec } from './exec.ts';
import { registerGrantCommands } from './grants.ts';
import { registerKubeconfigCommand } from './kubeconfig.ts';
import { createLogger } from './logger.ts';
import { registerLoginCommands } from './login.ts';
import { registerReplayCommand } from './replay.ts';
import { formatTable } from './table.ts';
import { registerTokensCommand } from './tokens.ts';

type RequestView = ReturnType<typeof requestJson>;

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

/** Exit code 2: the command worked and found something wrong (a broken audit chain). */
class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `"${value}" is not a port number`);
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `"${value}" is not a number of seconds`, {
      hint: 'write e.g. --drain 30 (0 stops at once)',
    });
  return n;
}

function ago(iso: string | null): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function oneLine(text: string, max = 60): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** Waits for SIGINT/SIGTERM, then runs `close` once and exits. */
function untilSignal(close: () => Promise<void>): Promise<never> {
  return new Promise(() => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        err(`received ${signal} again; exiting now`);
        process.exit(130);
      }
      stopping = true;
      err('stopping...');
      close().then(
        () => process.exit(0),
        (e) => {
          err(`error while stopping: ${(e as Error).message}`);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function printPolicyTest(r: PolicyTestResult): void {
  out(`decision: ${r.effect}`);
  out(`rule:     ${r.rule.name}`);
  out(`why:      ${r.why}`);
  out(`kind:     ${r.kind}`);
  if (r.reason) out(`reason:   ${r.reason}`);
  if (r.review)
    out(
      `review:   ${r.review.approvals} approval(s) from ${r.review.groups.join(', ')}; hold: ${r.review.hold}`,
    );
  if (r.error) out(`note:     ${r.error}`);
  if (r.parts.length > 1 || (r.parts.length === 1 && r.parts[0]!.text.trim() !== '')) {
    out('');
    out(
      formatTable(
        ['#', 'decision', 'kind', 'statement', 'rule', 'text'],
        r.parts.map((p, i) => [i + 1, p.effect, p.kind, p.statement ?? '', p.rule, oneLine(p.text, 50)]),
      ),
    );
  }
}

export function buildProgram(): Command {
  const program = new Command('airlock')
    .description(
      'Hold risky commands from agents and pipelines until a person approves exactly that command.',
    )
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('run the gateway with a policy file')
    .requiredOption('-c, --config <file>', 'policy file', 'airlock.yaml')
    .addOption(
      new Option(
        '--drain <seconds>',
        'on SIGTERM/SIGINT, report not ready (GET /api/v1/ready) and wait up to this long for open connections to end',
      )
        .default(30)
        .argParser(seconds),
    )
    .action(async (o: { config: string; drain: number }) => {
      const logger = createLogger('info');
      const policy = loadPolicyFile(o.config);
      // Loaded on demand: client commands stay quick to start.
      const { startGateway } = await import('../server/gateway.ts');
      const gw = await startGateway({ policy, logger });
      err(
        `airlock: API ${gw.api.url || '(off)'}${gw.postgres.port ? `, PostgreSQL ${gw.postgres.host}:${gw.postgres.port}` : ''}`,
      );
      await untilSignal(() => gw.close({ drainMs: o.drain * 1000 }));
    });

  program
    .command('demo')
    .description('run everything embedded: a demo database, a sample policy, an agent and a reviewer token')
    .option('--data-dir <dir>', 'where the demo keeps its state', './airlock-data')
    .addOption(new Option('--api-port <port>', 'API port (0 = any free port)').default(7070).argParser(port))
    .addOption(
      new Option('--pg-port <port>', 'PostgreSQL gateway port (0 = any free port)')
        .default(15432)
        .argParser(port),
    )
    .action(async (o: { dataDir: string; apiPort: number; pgPort: number }) => {
      const logger = createLogger('info');
      const { demoHowTo, startDemo } = await import('../demo/run.ts');
      const demo = await startDemo({ dataDir: o.dataDir, apiPort: o.apiPort, pgPort: o.pgPort, logger });
      out(demoHowTo(demo.info, o.dataDir));
      await untilSignal(() => demo.close());
    });

  program
    .command('requests')
    .description('list approval requests')
    .addOption(
      new Option('--status <status>', 'which requests')
        .choices(['pending', 'approved', 'denied', 'expired', 'cancelled', 'executed', 'all'])
        .default('pending'),
    )
    .option('--connection <name>', 'only this connection')
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action(async (o: { status: string; connection?: string; limit: string; json?: boolean }) => {
      const q = new URLSearchParams({ status: o.status, limit: o.limit });
      if (o.connection) q.set('connection', o.connection);
      const res = await apiClient().request<{ requests: RequestView[] }>('GET', `/api/v1/requests?${q}`);
      if (o.json) {
        out(JSON.stringify(res.requests, null, 2));
        return;
      }
      if (res.requests.length === 0) {
        out(o.status === 'pending' ? 'no pending requests' : 'no requests');
        return;
      }
      out(
        formatTable(
          ['id', 'status', 'connection', 'who', 'kind', 'created', 'statement'],
          res.requests.map((r) => [
            r.id,
            r.status,
            r.connection,
            r.principal.name,
            r.kind,
            ago(r.createdAt),
            oneLine(r.summary),
          ]),
        ),
      );
    });

  program
    .command('approve')
    .description('approve a request')
    .argument('<id>', 'request number')
    .option('--reason <text>', 'a note recorded with the approval')
    .option(
      '--window <duration>',
      'let the same statement by the same caller through for this long (e.g. 15m)',
    )
    .action(async (id: string, o: { reason?: string; window?: string }) => {
      if (o.window !== undefined) {
        try {
          parseDuration(o.window);
        } catch {
          throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `--window "${o.window}" is not a duration`, {
            hint: 'write e.g. 30s, 15m or 2h',
          });
        }
      }
      const body = { ...(o.reason ? { note: o.reason } : {}), ...(o.window ? { window: o.window } : {}) };
      const res = await apiClient().request<{ request: RequestView }>(
        'POST',
        `/api/v1/requests/${encodeURIComponent(id)}/approve`,
        body,
      );
      const r = res.request;
      if (r.status === 'pending')
        out(
          `request ${r.id}: your approval is recorded; ${r.approvals.length} of ${r.review.approvals} so far`,
        );
      else out(`request ${r.id} ${r.status}: ${oneLine(r.summary, 100)}`);
    });

  program
    .command('deny')
    .description('deny a request; the reason is sent to the caller')
    .argument('<id>', 'request number')
    .requiredOption('--reason <text>', 'why (sent back to the caller)')
    .action(async (id: string, o: { reason: string }) => {
      const res = await apiClient().request<{ request: RequestView }>(
        'POST',
        `/api/v1/requests/${encodeURIComponent(id)}/deny`,
        { reason: o.reason },
      );
      out(`request ${res.request.id} denied: ${res.request.reason ?? o.reason}`);
    });

  program
    .command('exec')
    .description('run SQL through the gateway (waits for approval when the policy says so)')
    .argument('<connection>', 'connection name')
    .argument('<sql...>', 'the SQL, after --')
    .option('--json', 'print rows as a JSON array')
    .option('--host <host>', 'gateway PostgreSQL or MySQL listener host (default: asked from the API)')
    .addOption(
      new Option(
        '--port <port>',
        'its port (default with --host: 15432, or 13306 on a MySQL connection)',
      ).argParser(port),
    )
    .action(
      async (connection: string, sql: string[], o: { json?: boolean; host?: string; port?: number }) => {
        await runExec({
          connection,
          sql: sql.join(' '),
          json: o.json === true,
          host: o.host,
          port: o.port,
          token: process.env.AIRLOCK_TOKEN,
          client: apiClient(),
          out,
          err,
        });
      },
    );

  registerAuditCommands(program, { out, err });
  registerReplayCommand(program, { out, err });

  const policy = program.command('policy').description('the policy file');
  policy
    .command('test')
    .description(
      'show what the policy decides for SQL, or a shell command line on an SSH connection, without running anything',
    )
    .requiredOption('-c, --config <file>', 'policy file')
    .requiredOption('--as <principal>', 'identity name from the policy')
    .requiredOption('--connection <name>', 'connection name')
    .argument('<sql>', 'the SQL (on an SSH connection: the command line)')
    .option('--json', 'print JSON')
    .action(async (sql: string, o: { config: string; as: string; connection: string; json?: boolean }) => {
      const p = loadPolicyFile(o.config);
      await initClassifier();
      const result = policyTest(p, new TokenRegistry(p.tokens), { as: o.as, connection: o.connection, sql });
      if (o.json) out(JSON.stringify(result, null, 2));
      else printPolicyTest(result);
    });

  registerTokensCommand(program);
  registerGrantCommands(program);
  registerLoginCommands(program);
  registerKubeconfigCommand(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (e) {
    if (e instanceof ExitCode) return e.code;
    if (e instanceof CommanderError) return e.exitCode;
    if (isAirlockError(e)) {
      err(`error: ${e.message}`);
      if (e.hint) err(`hint: ${e.hint}`);
      return 1;
    }
    err(`error: ${(e as Error)?.message ?? String(e)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv);
