/**
 * Response bodies in HTTP session recordings: kept up to the connection's record_body bound,
 * masked exactly as the caller received them, decoded when they came compressed, and without
 * any credential — neither the one Airlock holds nor the caller's token — even when the
 * upstream echoes them back. A real local service answers; fetch and curl are the callers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';

const run = promisify(execFile);
const UPSTREAM_TOKEN = 'held-upstream-token-5678';

describe('HTTP response bodies in recordings', () => {
  let upstream: Server;
  let gw: HttpTestGateway;

  before(async () => {
    upstream = createServer((req, res) => {
      switch (req.url) {
        case '/customer':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ marker: 'rec-customer', email: 'jane.doe@example.com' }));
          return;
        // An upstream that echoes the request headers back (as debugging endpoints do).
        case '/echo':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ marker: 'rec-echo', headers: req.headers }));
          return;
        case '/long':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`rec-long ${'x'.repeat(5000)}`);
          return;
        case '/gz':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
          res.end(gzipSync('rec-gzip hello'));
          return;
        default:
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(Buffer.from([0, 1, 2, 3]));
      }
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gw = await startHttpTestGateway({
      secrets: { 'api.token': `${UPSTREAM_TOKEN}\n` },
      connections: `  api:
    type: http
    upstream: { url: "${url}" }
    credential: { type: bearer, token: "\${file:./secrets/api.token}" }
    record_body: 1024
    default: allow
    review: { groups: [dba] }`,
      rules: 'rules: []',
      extra: `masking:
  - connections: [api]
    detectors: [email]
    strategy: redact`,
    });
  });

  after(async () => {
    await gw?.close();
    await new Promise<void>((resolve) => {
      upstream?.closeAllConnections();
      upstream?.close(() => resolve());
    });
  });

  /** Every recorded exchange event of closed sessions on `api`. */
  const exchanges = async (): Promise<Record<string, unknown>[]> => {
    const list = await gw.api<{ recordings: { id: string; status: string }[] }>(
      'GET',
      '/api/v1/recordings?connection=api',
      undefined,
      'alice',
    );
    const out: Record<string, unknown>[] = [];
    if (!list.body.recordings) throw new Error(JSON.stringify(list));
    for (const r of list.body.recordings.filter((x) => x.status === 'closed')) {
      const content = await fetch(`${gw.apiUrl}/api/v1/recordings/${r.id}/content`, {
        headers: { authorization: `Bearer ${gw.tokens.alice}` },
      }).then((x) => x.text());
      for (const line of content.split('\n').filter(Boolean)) {
        const e = JSON.parse(line) as Record<string, unknown>;
        if (e.type === 'exchange') out.push({ ...e, raw: line });
      }
    }
    return out;
  };
  const recorded = async (marker: string) => {
    for (;;) {
      const e = (await exchanges()).find((x) => String(x.raw).includes(marker));
      if (e) return e;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  it('records each response body as the caller saw it, masked, and bounded', async () => {
    const get = (path: string) =>
      fetch(`${gw.proxyUrl}/http/api${path}`, {
        headers: { authorization: `Bearer ${gw.tokens.agent}`, connection: 'close' },
      }).then((r) => r.text());
    const seen = await get('/customer');
    assert.match(seen, /\[redacted email\]/);
    await get('/long');
    await get('/bin');
    const customer = (await recorded('rec-customer')).response as Record<string, unknown>;
    assert.equal(customer.body, seen, 'the recording holds what the caller received');
    assert.doesNotMatch(String((await recorded('rec-customer')).raw), /jane\.doe/);
    const long = (await recorded('rec-long')).response as Record<string, unknown>;
    assert.equal(long.bytes, 5009);
    assert.equal(String(long.body).length, 1024);
    assert.equal(long.truncated, true);
    const bin = (await exchanges()).find((e) => e.target === '/bin')!.response as Record<string, unknown>;
    assert.equal(bin.bytes, 4);
    assert.match(String(bin.body_omitted), /not text/);
  });

  it('a compressed body is recorded decoded (curl --compressed)', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '--compressed',
      '-H',
      `Authorization: Bearer ${gw.tokens.agent}`,
      `${gw.proxyUrl}/http/api/gz`,
    ]);
    assert.equal(stdout, 'rec-gzip hello');
    const e = await recorded('rec-gzip');
    assert.equal((e.response as Record<string, unknown>).body, 'rec-gzip hello');
  });

  it('credentials an upstream echoes back never reach the recording', async () => {
    const res = await fetch(`${gw.proxyUrl}/http/api/echo`, {
      headers: {
        authorization: `Bearer ${gw.tokens.agent}`,
        'x-debug': gw.tokens.agent,
        connection: 'close',
      },
    });
    const seen = await res.text();
    assert.ok(seen.includes(UPSTREAM_TOKEN), 'the upstream echoed the credential to the caller');
    const e = await recorded('rec-echo');
    assert.doesNotMatch(String(e.raw), new RegExp(`${UPSTREAM_TOKEN}|${gw.tokens.agent}`));
    assert.match(String((e.response as Record<string, unknown>).body), /\[credential\]/);
  });
});
