/**
 * Connection slots on the HTTP listener: each caller connection (however many keep-alive
 * requests it carries) takes a slot of its principal and of the gateway; past either limit the
 * caller gets 429 (its own limit) or 503 (the gateway's) with the reason, audited as
 * `limit.connections`, and slots come back when connections close. undici clients (one
 * keep-alive connection each) and curl as callers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { Client } from 'undici';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type HttpUpstream, startHttpUpstream } from './support/http-upstream.ts';

const run = promisify(execFile);

describe('HTTP connection slots', () => {
  let upstream: HttpUpstream;
  let gw: HttpTestGateway;
  const clients: Client[] = [];

  before(async () => {
    upstream = await startHttpUpstream();
    gw = await startHttpTestGateway({
      connections: `  api:
    type: http
    upstream: { url: "${upstream.url}" }
    default: allow`,
      rules: 'rules: []',
      extra: 'limits:\n  max_connections: 3\n  max_connections_per_principal: 2\n',
    });
  });

  after(async () => {
    for (const c of clients) await c.destroy().catch(() => {});
    await gw?.close();
    await upstream?.close();
  });

  const open = () => {
    const c = new Client(gw.proxyUrl, { pipelining: 1, keepAliveTimeout: 60_000 });
    clients.push(c);
    return c;
  };
  const get = async (c: Client, who: 'agent' | 'bob' | 'eve', path = '/ping') => {
    const res = await c.request({
      method: 'GET',
      path: `/http/api${path}`,
      headers: { authorization: `Bearer ${gw.tokens[who]}` },
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> };
  };
  const auditRows = (): string[] => {
    const db = new Database(join(gw.dir, 'data', 'airlock.db'), { readonly: true });
    try {
      return (
        db.prepare("SELECT data FROM audit WHERE type = 'limit.connections' ORDER BY seq").all() as {
          data: string;
        }[]
      ).map((r) => r.data);
    } finally {
      db.close();
    }
  };
  const eventually = async (what: string, check: () => boolean) => {
    const deadline = Date.now() + 30_000;
    while (!check()) {
      assert.ok(Date.now() < deadline, `${what} did not happen`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  };

  it('a keep-alive connection is one slot however many requests it carries', async () => {
    const a1 = open();
    for (let i = 0; i < 5; i++) assert.equal((await get(a1, 'agent')).status, 200);
    const a2 = open();
    assert.equal((await get(a2, 'agent')).status, 200);
  });

  it("past the principal's limit: 429 with the reason, audited, others unaffected", async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-w',
      '\n%{http_code}',
      '-H',
      `Authorization: Bearer ${gw.tokens.agent}`,
      `${gw.proxyUrl}/http/api/ping`,
    ]);
    const at = stdout.lastIndexOf('\n');
    assert.equal(stdout.slice(at + 1), '429');
    const body = JSON.parse(stdout.slice(0, at)) as { code: string; message: string; hint: string };
    assert.equal(body.code, 'AIRLOCK_E_LIMIT_CONNECTIONS');
    assert.match(body.message, /agent already has 2 open connections \(the limit per principal is 2\)/);
    assert.match(body.hint, /close idle connections/);
    await eventually('a limit.connections audit event for agent over http', () =>
      auditRows().some((d) => d.includes('"principal":"agent"') && d.includes('"protocol":"http"')),
    );
    assert.equal((await get(open(), 'bob')).status, 200);
  });

  it("past the gateway's limit: 503", async () => {
    const r = await get(open(), 'eve');
    assert.equal(r.status, 503);
    assert.match(r.body.message!, /reached its limit of 3 open connections/);
  });

  it('slots come back when connections close', async () => {
    await clients[0]!.close();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await get(open(), 'agent');
      if (r.status === 200) break;
      assert.ok(Date.now() < deadline, `the slot was not given back: ${r.status}`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  });
});
