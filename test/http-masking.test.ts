/**
 * JSON responses on plain HTTP connections masked per the policy's masking rules, against a
 * real local HTTP service that answers plain, gzip, brotli, oversized and non-JSON bodies; curl
 * and fetch as callers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';

const run = promisify(execFile);

const CUSTOMER = {
  id: 7,
  name: 'Jane',
  email: 'jane.doe@example.com',
  ssn: '123-45-6789',
  cards: [{ number: '4111 1111 1111 1111', holder: 'J DOE' }],
  notes: 'call back on +44 20 7946 0958',
};

describe('HTTP response masking', () => {
  let upstream: Server;
  let upstreamUrl: string;
  let gw: HttpTestGateway;
  const acceptEncodings: (string | undefined)[] = [];

  before(async () => {
    upstream = createServer((req, res) => {
      acceptEncodings.push(req.headers['accept-encoding']);
      const json = Buffer.from(JSON.stringify(CUSTOMER));
      switch (req.url) {
        case '/customer':
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length });
          res.end(json);
          return;
        // Upstreams that compress whatever the client asked for.
        case '/customer.gz': {
          const z = gzipSync(json);
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-encoding': 'gzip',
            'content-length': z.length,
          });
          res.end(z);
          return;
        }
        case '/customer.br': {
          const z = brotliCompressSync(json);
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'br' });
          res.end(z);
          return;
        }
        case '/customer.zst':
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'zstd' });
          res.end(json);
          return;
        case '/big': {
          const rows = Array.from({ length: 3000 }, (_, i) => ({ i, email: `user${i}@example.com` }));
          res.writeHead(200, { 'content-type': 'application/json' });
          // Chunked, in pieces, as a large listing would come.
          const text = JSON.stringify(rows);
          for (let at = 0; at < text.length; at += 8192) res.write(text.slice(at, at + 8192));
          res.end();
          return;
        }
        case '/bomb': {
          // Small on the wire, far past the bound once decoded.
          const z = gzipSync(Buffer.from(`{"pad":"${'a'.repeat(5_000_000)}"}`));
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
          res.end(z);
          return;
        }
        case '/events':
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          res.write(`${JSON.stringify({ email: 'a.b@example.com' })}\n`);
          res.end(`${JSON.stringify({ email: 'c.d@example.com' })}\n`);
          return;
        case '/text':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('plain jane.doe@example.com');
          return;
        case '/broken':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"email": "jane.doe@example.com"');
          return;
        default:
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end('{"error":"not found"}');
      }
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gw = await startHttpTestGateway({
      connections: `  crm:
    type: http
    upstream: { url: "${upstreamUrl}" }
    mask_max_body: 100000
    default: allow
  crm-lenient:
    type: http
    upstream: { url: "${upstreamUrl}" }
    mask_max_body: 100000
    mask_unmaskable: pass
    default: allow`,
      rules: 'rules: []',
      extra: `masking:
  - connections: ["crm*"]
    json_paths: ["$.cards[*].number"]
    columns: [ssn]
    strategy: redact
    exempt: { groups: [dba] }
  - connections: ["crm*"]
    detectors: [email, phone]
    strategy: partial
    exempt: { groups: [dba] }`,
    });
  });

  after(async () => {
    await gw?.close();
    await new Promise<void>((resolve) => {
      upstream?.closeAllConnections();
      upstream?.close(() => resolve());
    });
  });

  const get = (path: string, who: 'agent' | 'alice' = 'agent', conn = 'crm') =>
    fetch(`${gw.proxyUrl}/http/${conn}${path}`, { headers: { authorization: `Bearer ${gw.tokens[who]}` } });

  const masked = (body: typeof CUSTOMER) => {
    assert.equal(body.name, 'Jane');
    assert.equal(body.email, 'j*******@example.com');
    assert.equal(body.ssn, '[redacted value]');
    assert.equal(body.cards[0]!.number, '[redacted value]');
    assert.equal(body.cards[0]!.holder, 'J DOE');
    assert.doesNotMatch(body.notes, /7946/);
  };

  it('masks a JSON response by path, field name and detector, and fixes Content-Length (curl)', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-i',
      '--compressed',
      '-H',
      `Authorization: Bearer ${gw.tokens.agent}`,
      `${gw.proxyUrl}/http/crm/customer`,
    ]);
    const [head, body] = stdout.split('\r\n\r\n') as [string, string];
    assert.match(head, /^HTTP\/1\.1 200/);
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
    assert.equal(length, Buffer.byteLength(body));
    masked(JSON.parse(body));
    assert.equal(acceptEncodings.at(-1), 'identity', 'Airlock asks the upstream for an uncompressed body');
  });

  it('decodes gzip and brotli bodies the upstream sends anyway, and sends them masked, uncompressed', async () => {
    for (const path of ['/customer.gz', '/customer.br']) {
      const res = await get(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-encoding'), null, path);
      masked((await res.json()) as typeof CUSTOMER);
    }
  });

  it('an exempt principal sees the values', async () => {
    const body = (await (await get('/customer', 'alice')).json()) as typeof CUSTOMER;
    assert.deepEqual(body, CUSTOMER);
  });

  it('masks line-delimited JSON a line at a time', async () => {
    const text = await (await get('/events')).text();
    assert.equal(text, '{"email":"a**@example.com"}\n{"email":"c**@example.com"}\n');
  });

  it('fails closed on what it cannot mask, unless the connection says to pass it', async () => {
    for (const path of ['/big', '/bomb', '/customer.zst', '/broken']) {
      const res = await get(path);
      assert.equal(res.status, 502, path);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, 'AIRLOCK_E_UPSTREAM_UNAVAILABLE', path);
      assert.match(body.message, /could not be masked/, path);
      assert.doesNotMatch(JSON.stringify(body), /example\.com/, path);
    }
    const big = await get('/big', 'agent', 'crm-lenient');
    assert.equal(big.status, 200);
    const rows = (await big.json()) as { email: string }[];
    assert.equal(rows.length, 3000);
    assert.equal(rows[0]!.email, 'user0@example.com', 'passed unmasked, as the connection allows');
    // Malformed JSON is never passed unmasked: it is not too large, it is unreadable.
    assert.equal((await get('/broken', 'agent', 'crm-lenient')).status, 502);
  });

  it('passes other content types unchanged', async () => {
    assert.equal(await (await get('/text')).text(), 'plain jane.doe@example.com');
  });
});
