/**
 * HTTP proxy throughput: a small JSON GET over keep-alive with 32 connections, straight to an
 * upstream and through Airlock (policy allows reads, audit on). The upstream and the load
 * generator run in their own processes so the gateway's event loop is measured alone.
 *
 *   node --import tsx bench/http.ts        (BENCH_SECONDS, default 10; BENCH_CONNECTIONS, default 32)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { startHttpTestGateway } from '../test/support/http-gateway.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

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

interface LoadResult {
  rps: number;
  failed: number;
  p50: number;
  p99: number;
}

async function load(url: string, token: string): Promise<LoadResult> {
  const p = child(LOAD, [url, token, String(SECONDS), String(CONNECTIONS)]);
  const line = await firstLine(p);
  await once(p, 'exit');
  return JSON.parse(line) as LoadResult;
}

const upstream = child(UPSTREAM);
const port = Number(await firstLine(upstream));
const upstreamUrl = `http://127.0.0.1:${port}`;
const gw = await startHttpTestGateway({
  connections: `  shop:
    type: http
    upstream: { url: "${upstreamUrl}" }
    default: review`,
  rules: `rules:
  - { name: reads are free, connections: [shop], kinds: [read], effect: allow }`,
});
try {
  // Warm both paths (connections, JIT) before measuring.
  await load(`${upstreamUrl}/items/7`, '');
  const direct = await load(`${upstreamUrl}/items/7`, '');
  await load(`${gw.proxyUrl}/http/shop/items/7`, gw.tokens.bench);
  const airlock = await load(`${gw.proxyUrl}/http/shop/items/7`, gw.tokens.bench);
  const fmt = (r: LoadResult) =>
    `${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  failed ${r.failed}`;
  console.log(`HTTP GET, ${CONNECTIONS} keep-alive connections, ${SECONDS}s each`);
  console.log(`  direct   ${fmt(direct)}`);
  console.log(`  airlock  ${fmt(airlock)}`);
  console.log(`  ratio    ${(airlock.rps / direct.rps).toFixed(2)} (airlock / direct)`);
} finally {
  await gw.close();
  upstream.kill();
}
