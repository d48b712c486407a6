/**
 * MCP through Airlock: `tools/call` round trips per second with the SDK client, through Airlock
 * (`/mcp/tools`, an allowed read, audited) vs straight to the same SDK tool server over
 * Streamable HTTP, as a ratio, and the latency Airlock adds at p50/p99. Client, gateway and tool
 * server share this one process (and its event loop), so the ratio is a lower bound.
 * Run alone: `node --import tsx bench/mcp.ts`. Environment: BENCH_MCP_SECONDS (per run, default
 * 10), BENCH_MCP_CLIENTS (concurrent sessions, default 4). Results also go to .bench/mcp.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startMcpTestGateway } from '../test/support/mcp-gateway.ts';
import { startHttpToolServer } from '../test/support/mcp-http-server.ts';

const ROOT = join(import.meta.dirname, '..');

function positive(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const SECONDS = positive('BENCH_MCP_SECONDS', 10);
const CLIENTS = Math.floor(positive('BENCH_MCP_CLIENTS', 4));

function log(msg: string): void {
  process.stderr.write(`[bench:mcp] ${msg}\n`);
}

export interface McpRun {
  readonly calls: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface McpBenchResult {
  readonly seconds: number;
  readonly clients: number;
  readonly direct: McpRun;
  readonly airlock: McpRun;
  readonly ratio: number;
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function connect(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

async function run(url: string, token: string): Promise<McpRun> {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect(url, token)));
  // Warm up: the first calls pay for connection setup and JIT.
  await Promise.all(clients.map((c) => c.callTool({ name: 'echo', arguments: { text: 'warm' } })));
  const latencies: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    clients.map(async (c, i) => {
      let n = 0;
      while (Date.now() < end) {
        const t = process.hrtime.bigint();
        const r = await c.callTool({ name: 'echo', arguments: { text: `client ${i} call ${n++}` } });
        if ((r as { isError?: boolean }).isError) throw new Error(`echo failed: ${JSON.stringify(r)}`);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    perSecond: latencies.length / elapsed,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
}

export async function benchMcp(): Promise<McpBenchResult> {
  const upstream = await startHttpToolServer();
  const gw = await startMcpTestGateway(
    upstream,
    'rules:\n  - { name: reads are free, connections: [tools], kinds: [read], effect: allow }\n',
  );
  try {
    log(`direct: ${CLIENTS} sessions for ${SECONDS}s`);
    const direct = await run(upstream.url, upstream.token);
    log(`through Airlock: ${CLIENTS} sessions for ${SECONDS}s`);
    const airlock = await run(`${gw.apiUrl}/mcp/tools`, gw.tokens.bench);
    return {
      seconds: SECONDS,
      clients: CLIENTS,
      direct,
      airlock,
      ratio: airlock.perSecond / direct.perSecond,
      addedP50Ms: airlock.p50Ms - direct.p50Ms,
      addedP99Ms: airlock.p99Ms - direct.p99Ms,
    };
  } finally {
    await gw.close();
    await upstream.close();
  }
}

export function printMcpBench(r: McpBenchResult): void {
  const f = (n: number) => n.toFixed(2);
  console.log(
    `MCP tools/call (${r.clients} sessions, ${r.seconds}s each, SDK client → SDK server over Streamable HTTP)`,
  );
  console.log(
    `  direct   ${r.direct.perSecond.toFixed(0)} calls/s  p50 ${f(r.direct.p50Ms)} ms  p99 ${f(r.direct.p99Ms)} ms`,
  );
  console.log(
    `  airlock  ${r.airlock.perSecond.toFixed(0)} calls/s  p50 ${f(r.airlock.p50Ms)} ms  p99 ${f(r.airlock.p99Ms)} ms`,
  );
  console.log(
    `  ratio ${f(r.ratio)} (target ≥ 0.8); added latency p50 ${f(r.addedP50Ms)} ms, p99 ${f(r.addedP99Ms)} ms`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchMcp();
  printMcpBench(result);
  mkdirSync(join(ROOT, '.bench'), { recursive: true });
  writeFileSync(join(ROOT, '.bench', 'mcp.json'), `${JSON.stringify(result, null, 2)}\n`);
}
