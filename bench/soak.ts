/**
 * `npm run soak`: mixed traffic through the real `airlock serve` process for a bounded time
 * (AIRLOCK_SOAK_SECONDS, default 600) on every protocol at once — PostgreSQL, MySQL (a private
 * mariadbd), SSH (a private sshd), HTTP (a local service) and MCP (an SDK tool server) — with
 * services reading and writing freely, agents whose writes are held, and a reviewer approving
 * most and denying every fifth. At the end, per protocol, every request the clients sent must be
 * accounted for in the audit log, the chain must verify, and the gateway's memory and open file
 * descriptors must be flat (last quarter against the first, after warm-up). Writes
 * .bench/soak.json; exits non-zero on a failed check. Stops by itself.
 *
 * AIRLOCK_SOAK_CLIENTS service clients per protocol (default 2), one agent each. A protocol
 * whose peer is not installed (mariadbd, sshd) is left out and reported as such.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import mysql from 'mysql2/promise';
import type pg from 'pg';
import ssh2 from 'ssh2';
import { ownSignalFetch } from '../src/protocols/mcp/own-signal-fetch.ts';
import { startHttpUpstream } from '../test/support/http-upstream.ts';
import { mariadbAvailable, type PrivateMariadb, startMariadb } from '../test/support/mariadb.ts';
import { startHttpToolServer } from '../test/support/mcp-http-server.ts';
import { startPostgres } from '../test/support/postgres.ts';
import { stopAll } from '../test/support/processes.ts';
import { pgThrough } from '../test/support/psql.ts';
import { type ServedPrincipal, serveGateway } from '../test/support/served-gateway.ts';
import { type PrivateSshd, SSHD, startSshd } from '../test/support/sshd.ts';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = Number(process.env.AIRLOCK_SOAK_SECONDS ?? 600);
const SERVICES = Number(process.env.AIRLOCK_SOAK_CLIENTS ?? 2);
const SAMPLE_MS = Math.max(1000, Math.min(10_000, (SECONDS * 1000) / 40));

type Protocol = 'postgres' | 'mysql' | 'ssh' | 'http' | 'mcp';
/** The connection each protocol's traffic goes to. */
const CONNECTION: Record<Protocol, string> = {
  postgres: 'app',
  mysql: 'shop',
  ssh: 'web',
  http: 'api',
  mcp: 'tools',
};

interface Counts {
  /** Allowed by a rule: reads, and the services' writes. */
  reads: number;
  writes: number;
  /** Sent by the agent: each one held for review. */
  held: number;
  /** Held ones that ran after approval, and ones refused after a denial. */
  ranAfterApproval: number;
  refused: number;
  errors: number;
  lastError?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

async function main(): Promise<number> {
  const watchdog = setTimeout(
    () => {
      console.error('soak: watchdog fired; stopping');
      process.exit(2);
    },
    (SECONDS + 420) * 1000,
  );
  watchdog.unref();
  const work = mkdtempSync(join(tmpdir(), 'airlock-soak-'));
  const skipped: Partial<Record<Protocol, string>> = {};
  if (mariadbAvailable()) skipped.mysql = mariadbAvailable();
  const { existsSync } = await import('node:fs');
  if (!existsSync(SSHD)) skipped.ssh = `${SSHD} is not installed`;

  const upstream = await startPostgres();
  const maria: PrivateMariadb | undefined = skipped.mysql ? undefined : await startMariadb();
  const sshd: PrivateSshd | undefined = skipped.ssh ? undefined : await startSshd();
  const service = await startHttpUpstream();
  const tools = await startHttpToolServer();

  const connections: string[] = [
    `  api:
    type: http
    upstream: { url: "${service.url}/svc" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`,
    `  tools:
    type: mcp
    upstream: { url: ${tools.url}, token: "\${file:./secrets/tools.token}" }
    tools: { echo: read, write_file: write }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`,
  ];
  const secrets: Record<string, string> = { 'tools.token': tools.token };
  if (maria) {
    secrets['mysql.password'] = maria.app.password;
    connections.push(`  shop:
    type: mysql
    upstream: { host: 127.0.0.1, port: ${maria.port}, database: app, user: app_rw, password: "\${file:./secrets/mysql.password}" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`);
  }
  if (sshd) {
    secrets['host.key'] = sshd.clientKey;
    connections.push(`  web:
    type: ssh
    upstream: { host: 127.0.0.1, port: ${sshd.port}, user: ${sshd.user}, private_key: "\${file:./secrets/host.key}", host_key: "${sshd.hostKeyFingerprint}" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`);
  }
  const others = ['api', 'tools', ...(maria ? ['shop'] : []), ...(sshd ? ['web'] : [])];
  const served = await serveGateway(upstream, '', {
    listen: ['http', ...(maria ? (['mysql'] as const) : []), ...(sshd ? (['ssh'] as const) : [])],
    connections: connections.join('\n'),
    secrets,
    rules: `  - name: soak reads are free
    connections: [${others.join(', ')}]
    kinds: [read]
    effect: allow
  - name: soak services may write
    connections: [${others.join(', ')}]
    principals: [bench]
    kinds: [write]
    effect: allow
  - name: soak harmless commands
    connections: [${others.join(', ')}]
    commands: ["echo *"]
    effect: allow`,
  });

  const protocols: Protocol[] = (['postgres', 'mysql', 'ssh', 'http', 'mcp'] as const).filter(
    (p) => !skipped[p],
  );
  const counts = Object.fromEntries(
    protocols.map((p) => [p, { reads: 0, writes: 0, held: 0, ranAfterApproval: 0, refused: 0, errors: 0 }]),
  ) as Record<Protocol, Counts>;
  const decisions = { approved: 0, denied: 0 };
  const samples: { at: number; rss: number; fds: number }[] = [];
  let ok = true;
  const fail = (p: Protocol, err: unknown) => {
    counts[p].errors++;
    counts[p].lastError = String((err as Error)?.message ?? err).slice(0, 300);
  };

  try {
    await served.start();
    const deadline = Date.now() + SECONDS * 1000;
    const running = () => Date.now() < deadline;
    /** Statements held for approval carry a unique text: each one is its own request. */
    const wasDenied = (text: string) => /denied|refused/i.test(text);

    // ---- PostgreSQL -----------------------------------------------------------------------
    const pgClient = async (who: ServedPrincipal, n: number) => {
      const c: pg.Client = await pgThrough(served.target(who));
      c.on('error', () => {});
      let i = 0;
      while (running()) {
        i++;
        const k = counts.postgres;
        try {
          if (who === 'agent') {
            k.held++;
            await c.query(`UPDATE orders SET total = total WHERE id = ${(i % 50) + 1} AND ${i} = ${i}`);
            k.ranAfterApproval++;
          } else if (i % 4 === 0) {
            await c.query('UPDATE orders SET total = total + 0 WHERE id = $1', [(i % 50) + 1]);
            k.writes++;
          } else {
            await c.query('SELECT id, total FROM orders WHERE id = $1', [((i + n) % 50) + 1]);
            k.reads++;
          }
        } catch (err) {
          if (who === 'agent' && wasDenied((err as Error).message)) k.refused++;
          else fail('postgres', err);
        }
      }
      await c.end();
    };

    // ---- MySQL ----------------------------------------------------------------------------
    const mysqlClient = async (who: ServedPrincipal, n: number) => {
      const c = await mysql.createConnection({
        host: '127.0.0.1',
        port: served.ports.mysql!,
        user: who,
        password: served.tokens[who],
        database: 'shop',
      });
      c.on('error', () => {});
      let i = 0;
      while (running()) {
        i++;
        const k = counts.mysql;
        try {
          if (who === 'agent') {
            k.held++;
            await c.query(`UPDATE orders SET total = total WHERE id = ${(i % 50) + 1} AND ${i} = ${i}`);
            k.ranAfterApproval++;
          } else if (i % 4 === 0) {
            await c.query(`UPDATE orders SET total = total + 0 WHERE id = ${(i % 50) + 1}`);
            k.writes++;
          } else {
            await c.query(`SELECT id, total FROM orders WHERE id = ${((i + n) % 50) + 1}`);
            k.reads++;
          }
        } catch (err) {
          if (who === 'agent' && wasDenied((err as Error).message)) k.refused++;
          else fail('mysql', err);
        }
      }
      await c.end();
    };

    // ---- SSH ------------------------------------------------------------------------------
    const heldDir = join(work, 'ssh');
    mkdirSync(heldDir);
    const exec = (c: ssh2.Client, command: string) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
        c.exec(command, (err, stream) => {
          if (err) return reject(err);
          let out = '';
          let errText = '';
          stream.on('data', (d: Buffer) => {
            out += d.toString();
          });
          stream.stderr.on('data', (d: Buffer) => {
            errText += d.toString();
          });
          stream.on('close', (code: number | null) => resolve({ code, out, err: errText }));
        });
      });
    const sshClient = async (who: ServedPrincipal, n: number) => {
      const c = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', reject);
        c.connect({
          host: '127.0.0.1',
          port: served.ports.ssh!,
          username: 'web',
          password: served.tokens[who],
          readyTimeout: 60_000,
        });
      });
      c.on('error', () => {});
      let i = 0;
      while (running()) {
        i++;
        const k = counts.ssh;
        try {
          if (who === 'agent') {
            k.held++;
            const r = await exec(c, `touch ${heldDir}/held-${i}`);
            if (r.code === 0) k.ranAfterApproval++;
            else if (wasDenied(r.err)) k.refused++;
            else fail('ssh', `touch exited ${r.code}: ${r.err}`);
          } else {
            const r = await exec(c, `echo soak ${n} ${i}`);
            if (r.code === 0 && r.out.trim() === `soak ${n} ${i}`) k.reads++;
            else fail('ssh', `echo exited ${r.code}: ${r.out} ${r.err}`);
          }
        } catch (err) {
          fail('ssh', err);
        }
      }
      c.end();
    };

    // ---- HTTP -----------------------------------------------------------------------------
    const httpBase = `http://127.0.0.1:${served.ports.http}/http/api`;
    const httpClient = async (who: ServedPrincipal, n: number) => {
      const headers = { authorization: `Bearer ${served.tokens[who]}`, 'content-type': 'application/json' };
      let i = 0;
      while (running()) {
        i++;
        const k = counts.http;
        try {
          if (who === 'agent') {
            k.held++;
            const res = await fetch(`${httpBase}/v1/orders`, {
              method: 'POST',
              headers,
              body: JSON.stringify({ held: i }),
              signal: AbortSignal.timeout(120_000),
            });
            const text = await res.text();
            if (res.status === 200) k.ranAfterApproval++;
            else if (res.status === 403 && wasDenied(text)) k.refused++;
            else fail('http', `POST ${res.status}: ${text}`);
          } else {
            const write = i % 4 === 0;
            const res = await fetch(
              write ? `${httpBase}/v1/orders` : `${httpBase}/v1/orders/${((i + n) % 50) + 1}`,
              {
                method: write ? 'POST' : 'GET',
                headers,
                body: write ? JSON.stringify({ n, i }) : undefined,
                signal: AbortSignal.timeout(60_000),
              },
            );
            await res.arrayBuffer();
            if (res.status !== 200) fail('http', `${write ? 'POST' : 'GET'} ${res.status}`);
            else if (write) k.writes++;
            else k.reads++;
          }
        } catch (err) {
          fail('http', err);
        }
      }
    };

    // ---- MCP ------------------------------------------------------------------------------
    const mcpClient = async (who: ServedPrincipal, n: number) => {
      const client = new McpClient({ name: `soak-${who}-${n}`, version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(
        new URL(`http://127.0.0.1:${served.apiPort}/mcp/tools`),
        {
          requestInit: { headers: { authorization: `Bearer ${served.tokens[who]}` } },
          // One signal per request (the SDK shares one per session; fetch would pile listeners on it).
          fetch: ownSignalFetch,
        },
      );
      await client.connect(transport);
      let i = 0;
      while (running()) {
        i++;
        const k = counts.mcp;
        try {
          if (who === 'agent') {
            k.held++;
            const r = (await client.callTool(
              { name: 'write_file', arguments: { path: `/tmp/soak/${i}`, content: `held ${i}` } },
              undefined,
              { timeout: 120_000 },
            )) as { isError?: boolean; content: { text?: string }[] };
            const text = r.content.map((c) => c.text ?? '').join(' ');
            if (!r.isError) k.ranAfterApproval++;
            else if (wasDenied(text)) k.refused++;
            else fail('mcp', text);
          } else {
            const r = (await client.callTool({ name: 'echo', arguments: { text: `soak ${n} ${i}` } })) as {
              isError?: boolean;
              content: { text?: string }[];
            };
            if (!r.isError && r.content[0]?.text?.includes(`soak ${n} ${i}`)) k.reads++;
            else fail('mcp', JSON.stringify(r).slice(0, 200));
          }
        } catch (err) {
          if (who === 'agent' && wasDenied(String((err as Error).message))) k.refused++;
          else fail('mcp', err);
        }
      }
      await transport.terminateSession().catch(() => {});
      await client.close();
    };

    // The reviewer goes on until every client has stopped: an agent's last held request, sent
    // just before the deadline, is decided rather than left waiting for its expiry.
    let clientsDone = false;
    const reviewer = async () => {
      while (!clientsDone) {
        try {
          const { requests } = await served.api<{ requests: { id: number }[] }>(
            'GET',
            '/api/v1/requests?status=pending&limit=100',
          );
          for (const r of requests) {
            try {
              if (r.id % 5 === 0) {
                await served.api('POST', `/api/v1/requests/${r.id}/deny`, {
                  reason: 'soak: every fifth is denied',
                });
                decisions.denied++;
              } else {
                await served.api('POST', `/api/v1/requests/${r.id}/approve`, {});
                decisions.approved++;
              }
            } catch {
              // Decided meanwhile (expired, or the agent's connection ended): ignore.
            }
          }
        } catch {
          // The API was busy: try again.
        }
        await sleep(50);
      }
    };

    const sampler = async () => {
      while (running()) {
        samples.push({ at: Date.now(), ...served.usage() });
        await sleep(SAMPLE_MS);
      }
      samples.push({ at: Date.now(), ...served.usage() });
    };

    const clientsOf: Record<Protocol, (who: ServedPrincipal, n: number) => Promise<void>> = {
      postgres: pgClient,
      mysql: mysqlClient,
      ssh: sshClient,
      http: httpClient,
      mcp: mcpClient,
    };
    const guarded = (p: Protocol, who: ServedPrincipal, n: number) =>
      clientsOf[p](who, n).catch((err) => fail(p, err));
    const progress = setInterval(
      () => {
        const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
        console.log(
          `soak: ${left}s left; ${protocols.map((p) => `${p} ${counts[p].reads + counts[p].writes}+${counts[p].held}`).join(', ')}`,
        );
      },
      Math.max(10_000, SAMPLE_MS * 4),
    );
    const reviewing = reviewer();
    await Promise.all([
      ...protocols.flatMap((p) => [
        ...Array.from({ length: SERVICES }, (_, n) => guarded(p, 'bench', n)),
        guarded(p, 'agent', SERVICES),
      ]),
      sampler(),
    ]);
    clientsDone = true;
    clearInterval(progress);
    await reviewing;
    // Let the batched read records land.
    await sleep(2000);

    const verify = await served.api<{ ok: boolean; records?: number }>('GET', '/api/v1/audit/verify');
    /** Audit records by type, per connection. */
    const byConnection = new Map<string, Map<string, number>>();
    const types = new Map<string, number>();
    for (let from = 1; ; from += 1000) {
      const page = await served.api<{ records: { type: string; data?: { connection?: string } }[] }>(
        'GET',
        `/api/v1/audit?from=${from}&limit=1000`,
      );
      for (const r of page.records) {
        types.set(r.type, (types.get(r.type) ?? 0) + 1);
        const c = r.data?.connection ?? '-';
        const m = byConnection.get(c) ?? new Map<string, number>();
        m.set(r.type, (m.get(r.type) ?? 0) + 1);
        byConnection.set(c, m);
      }
      if (page.records.length < 1000) break;
    }

    const quarter = Math.max(1, Math.floor(samples.length / 4));
    // The first sample is taken before the load starts; compare after warm-up.
    const first = samples.slice(1, 1 + quarter);
    const last = samples.slice(-quarter);
    const avg = (xs: { rss: number; fds: number }[], k: 'rss' | 'fds') =>
      xs.reduce((s, x) => s + x[k], 0) / Math.max(1, xs.length);
    const rssGrowth = avg(last, 'rss') / Math.max(1, avg(first, 'rss'));
    const fdGrowth = avg(last, 'fds') - avg(first, 'fds');

    // Node's own warnings (a listener leak, an unhandled rejection) in the gateway's output.
    const warnings = (served.process?.output() ?? '')
      .split('\n')
      .filter((l) => /Warning:|UnhandledPromiseRejection/.test(l));
    const perProtocol: Record<string, unknown> = {};
    const checks: Record<string, boolean> = {
      chainVerifies: verify.ok === true,
      memoryFlat: rssGrowth <= 1.25,
      fdsFlat: fdGrowth <= 5,
      decisionsHappened: decisions.approved > 0 && decisions.denied > 0,
      gatewayPrintedNoWarnings: warnings.length === 0,
    };
    for (const p of protocols) {
      const k = counts[p];
      const audit = byConnection.get(CONNECTION[p]) ?? new Map<string, number>();
      const allowed = audit.get('action.allowed') ?? 0;
      const created = audit.get('request.created') ?? 0;
      perProtocol[p] = { ...k, audit: Object.fromEntries(audit) };
      // Every statement, command, request or tool call let through by a rule has its record;
      // every held one has its request (the agent's last one may still be waiting at the end).
      checks[`${p}: every allowed request audited`] = allowed >= k.reads + k.writes;
      checks[`${p}: every held request has a request record`] = created >= k.held - 1;
      checks[`${p}: every held request ran or was refused`] = k.ranAfterApproval + k.refused >= k.held - 1;
      // What ran after approval was forwarded under its request, and recorded as such.
      checks[`${p}: every approved request that ran audited`] =
        (audit.get('action.forwarded') ?? 0) >= k.ranAfterApproval;
      checks[`${p}: traffic flowed`] = k.reads > 0 && k.held > 0;
      checks[`${p}: no unexpected errors`] = k.errors === 0;
    }
    ok = Object.values(checks).every(Boolean);
    const result = {
      seconds: SECONDS,
      servicesPerProtocol: SERVICES,
      skipped,
      decisions,
      warnings: warnings.slice(0, 20),
      protocols: perProtocol,
      audit: Object.fromEntries(types),
      memory: {
        firstMiB: +(avg(first, 'rss') / 2 ** 20).toFixed(1),
        lastMiB: +(avg(last, 'rss') / 2 ** 20).toFixed(1),
        growth: +rssGrowth.toFixed(3),
      },
      fds: { first: +avg(first, 'fds').toFixed(1), last: +avg(last, 'fds').toFixed(1) },
      samples: samples.map((s) => ({
        t: Math.round((s.at - samples[0]!.at) / 1000),
        rssMiB: +(s.rss / 2 ** 20).toFixed(1),
        fds: s.fds,
      })),
      checks,
    };
    mkdirSync(join(ROOT, '.bench'), { recursive: true });
    writeFileSync(join(ROOT, '.bench', 'soak.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(`soak ${SECONDS}s, ${SERVICES} service clients and 1 agent per protocol`);
    for (const p of protocols) {
      const k = counts[p];
      const a = byConnection.get(CONNECTION[p]) ?? new Map<string, number>();
      console.log(
        `  ${p.padEnd(8)} ${k.reads} reads, ${k.writes} writes, ${k.held} held (${k.ranAfterApproval} ran, ${k.refused} refused), ` +
          `${k.errors} errors${k.lastError ? ` (last: ${k.lastError})` : ''}; audit: ${a.get('action.allowed') ?? 0} allowed, ` +
          `${a.get('request.created') ?? 0} requests, ${a.get('action.forwarded') ?? 0} forwarded after approval`,
      );
    }
    for (const [p, why] of Object.entries(skipped)) console.log(`  ${p.padEnd(8)} skipped: ${why}`);
    console.log(
      `reviewer: ${decisions.approved} approved, ${decisions.denied} denied; chain ${verify.ok ? 'verifies' : 'BROKEN'}; ` +
        `memory ${result.memory.firstMiB} → ${result.memory.lastMiB} MiB (x${result.memory.growth}), ` +
        `fds ${result.fds.first} → ${result.fds.last}`,
    );
    for (const [name, pass] of Object.entries(checks)) console.log(`${pass ? 'ok  ' : 'FAIL'} ${name}`);
  } finally {
    await served.close();
    await tools.close();
    await service.close();
    await sshd?.stop();
    await maria?.stop();
    await upstream.stop();
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
  return ok ? 0 : 1;
}

process.exit(await main());
