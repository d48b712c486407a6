/**
 * HTTP proxy throughput: a small JSON GET over keep-alive with 32 connections, straight to an
 * upstream and through Airlock (policy allows reads, audit on). The upstream and the load
 * generator run in their own processes so the gateway's event loop is measured alone.
 *
 *   node --import tsx bench/http.ts        (BENCH_SECONDS, default 10; BENCH_CONNECTIONS, default 32)
 *
 * `npm run bench` runs it as its HTTP section (benchHttp), shorter unless sized by BENCH_HTTP_SECONDS.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { startHttpTestGateway } from '../test/support/http-gateway.ts';

const UPSTREAM = `
const http = require('node:http');
const body = JSON.stringify({ id: 7, name: 'widget', price: 12.5, tags: ['a', 'b'] });
const s = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

const LOAD = `
const { Pool } = require('undici');
const [url, token, seconds, connections] = process.argv.slice(1);
const u = new URL(url);
const pool = new Pool(u.origin, { connections: Number(connections), pipelining: 1 });
const headers = token ? { authorization: 'Bearer ' + token } : {};
let done = 0, failed = 0;
const lat = [];
const end = Date.now() + Number(seconds) * 1000;
async function worker() {
  while (Date.now() < end) {
    const t = process.hrtime.bigint();
    try {
      const r = await pool.request({ path: u.pathname, method: 'GET', headers });
      await r.body.dump();
      if (r.statusCode === 200) done++; else failed++;
    } catch { failed++; }
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
}
Promise.all(Array.from({ length: Number(connections) }, worker)).then(async () => {
  lat.sort((a, b) => a - b);
  const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? 0;
  console.log(JSON.stringify({ rps: done / Number(seconds), failed, p50: p(0.5), p99: p(0.99) }));
  await pool.close();
});
`;

function child(code: string, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['-e', code, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function firstLine(p: ChildProcess): Promise<string> {
  let out = '';
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    if (out.includes('\n')) return out.split('\n')[0]!;
  }
  return out;
}

export interface LoadResult {
  rps: number;
  failed: number;
  p50: number;
  p99: number;
}

async function load(url: string, token: string, seconds: number, connections: number): Promise<LoadResult> {
  const p = child(LOAD, [url, token, String(seconds), String(connections)]);
  const line = await firstLine(p);
  await once(p, 'exit');
  return JSON.parse(line) as LoadResult;
}

export interface HttpBenchResult {
  readonly seconds: number;
  readonly connections: number;
  readonly direct: LoadResult;
  readonly airlock: LoadResult;
  /** Airlock req/s over direct req/s. */
  readonly ratio: number;
}

/** Direct and through Airlock, each warmed for a second first, then measured for `seconds`. */
export async function benchHttp(
  o: { seconds?: number; connections?: number } = {},
): Promise<HttpBenchResult> {
  const seconds = o.seconds ?? Number(process.env.BENCH_SECONDS ?? 10);
  const connections = o.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 32);
  const upstream = child(UPSTREAM);
  let gw: Awaited<ReturnType<typeof startHttpTestGateway>> | undefined;
  try {
    const port = Number(await firstLine(upstream));
    const upstreamUrl = `http://127.0.0.1:${port}`;
    gw = await startHttpTestGateway({
      connections: `  shop:
    type: http
    upstream: { url: "${upstreamUrl}" }
    default: review`,
      rules: `rules:
  - { name: reads are free, connections: [shop], kinds: [read], effect: allow }`,
    });
    const warm = Math.min(seconds, 1);
    // Warm both paths (connections, JIT) before measuring.
    await load(`${upstreamUrl}/items/7`, '', warm, connections);
    const direct = await load(`${upstreamUrl}/items/7`, '', seconds, connections);
    await load(`${gw.proxyUrl}/http/shop/items/7`, gw.tokens.bench, warm, connections);
    const airlock = await load(`${gw.proxyUrl}/http/shop/items/7`, gw.tokens.bench, seconds, connections);
    return { seconds, connections, direct, airlock, ratio: airlock.rps / direct.rps };
  } finally {
    await gw?.close();
    upstream.kill();
  }
}

export function printHttpBench(r: HttpBenchResult): void {
  const fmt = (x: LoadResult) =>
    `${x.rps.toFixed(0).padStart(7)} req/s  p50 ${x.p50.toFixed(2)} ms  p99 ${x.p99.toFixed(2)} ms  failed ${x.failed}`;
  console.log(`HTTP GET, ${r.connections} keep-alive connections, ${r.seconds}s each`);
  console.log(`  direct   ${fmt(r.direct)}`);
  console.log(`  airlock  ${fmt(r.airlock)}`);
  console.log(`  ratio    ${r.ratio.toFixed(2)} (airlock / direct)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) printHttpBench(await benchHttp());
