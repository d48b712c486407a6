/**
 * HTTP proxy throughput: a small JSON GET over keep-alive with 32 connections, straight to an
 * upstream, through a bare Node reverse proxy (bench/http-relay.ts: the cost of one extra HTTP
 * hop through Node) and through Airlock (policy allows reads, audit and recording on). The
 * upstream and the load generator run in their own processes; the bare proxy and Airlock run in
 * this one, one at a time. Runs alternate (direct, bare proxy, Airlock) for BENCH_HTTP_ROUNDS
 * rounds (default 3) and are compared by their medians.
 *
 *   node --import tsx bench/http.ts        (BENCH_SECONDS, default 10; BENCH_CONNECTIONS, default 32)
 *
 * `npm run bench` runs it as its HTTP section (benchHttp), shorter unless sized by BENCH_HTTP_SECONDS.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { startHttpTestGateway } from '../test/support/http-gateway.ts';
import { startHttpRelay } from './http-relay.ts';

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
  readonly rounds: number;
  /** The median round of each (by req/s). */
  readonly direct: LoadResult;
  readonly relay: LoadResult;
  readonly airlock: LoadResult;
  /** Airlock req/s over direct req/s (medians). */
  readonly ratio: number;
  /** Airlock req/s over the bare proxy's req/s (medians). */
  readonly ratioToRelay: number;
  /** The bare proxy's req/s over direct req/s (medians): what one Node hop costs here. */
  readonly relayToDirect: number;
}

function median(runs: LoadResult[]): LoadResult {
  const sorted = [...runs].sort((a, b) => a.rps - b.rps);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Direct, bare proxy and Airlock, each warmed first, then measured in alternating rounds. */
export async function benchHttp(
  o: { seconds?: number; connections?: number; rounds?: number } = {},
): Promise<HttpBenchResult> {
  const seconds = o.seconds ?? Number(process.env.BENCH_SECONDS ?? 10);
  const connections = o.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 32);
  const rounds = Math.max(1, o.rounds ?? Number(process.env.BENCH_HTTP_ROUNDS ?? 3));
  const upstream = child(UPSTREAM);
  let gw: Awaited<ReturnType<typeof startHttpTestGateway>> | undefined;
  let relay: Awaited<ReturnType<typeof startHttpRelay>> | undefined;
  try {
    const port = Number(await firstLine(upstream));
    const upstreamUrl = `http://127.0.0.1:${port}`;
    relay = await startHttpRelay(upstreamUrl);
    gw = await startHttpTestGateway({
      connections: `  shop:
    type: http
    upstream: { url: "${upstreamUrl}" }
    default: review`,
      rules: `rules:
  - { name: reads are free, connections: [shop], kinds: [read], effect: allow }`,
    });
    const targets = [
      { url: `${upstreamUrl}/items/7`, token: '' },
      { url: `${relay.url}/items/7`, token: '' },
      { url: `${gw.proxyUrl}/http/shop/items/7`, token: gw.tokens.bench },
    ];
    const warm = Math.min(seconds, 1);
    // Warm every path (connections, JIT) before measuring.
    for (const t of targets) await load(t.url, t.token, warm, connections);
    const runs: LoadResult[][] = [[], [], []];
    for (let r = 0; r < rounds; r++)
      for (const [i, t] of targets.entries()) runs[i]!.push(await load(t.url, t.token, seconds, connections));
    const [direct, bare, airlock] = runs.map(median) as [LoadResult, LoadResult, LoadResult];
    return {
      seconds,
      connections,
      rounds,
      direct,
      relay: bare,
      airlock,
      ratio: airlock.rps / direct.rps,
      ratioToRelay: airlock.rps / bare.rps,
      relayToDirect: bare.rps / direct.rps,
    };
  } finally {
    await gw?.close();
    await relay?.close();
    upstream.kill();
  }
}

export function printHttpBench(r: HttpBenchResult): void {
  const fmt = (x: LoadResult) =>
    `${x.rps.toFixed(0).padStart(7)} req/s  p50 ${x.p50.toFixed(2)} ms  p99 ${x.p99.toFixed(2)} ms  failed ${x.failed}`;
  console.log(
    `HTTP GET, ${r.connections} keep-alive connections, ${r.seconds}s per run, median of ${r.rounds} rounds`,
  );
  console.log(`  direct      ${fmt(r.direct)}`);
  console.log(`  bare proxy  ${fmt(r.relay)}`);
  console.log(`  airlock     ${fmt(r.airlock)}`);
  console.log(`  airlock / direct      ${r.ratio.toFixed(2)} (target ≥ 0.8)`);
  console.log(`  airlock / bare proxy  ${r.ratioToRelay.toFixed(2)}`);
  console.log(
    `  bare proxy / direct   ${r.relayToDirect.toFixed(2)} (one extra hop through Node on this machine)`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) printHttpBench(await benchHttp());
