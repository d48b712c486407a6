/**
 * Routing by host name: a connection that declares `host`/`hosts` is reached by requests whose
 * Host header names it, without the `/http/NAME` prefix. curl as the caller (with --resolve, as a
 * client configured with the API's own base URL would connect) against a real local service.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parsePolicy } from '../src/core/policy/load.ts';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type HttpUpstream, startHttpUpstream } from './support/http-upstream.ts';

const run = promisify(execFile);

describe('HTTP routing by host name', () => {
  let upstream: HttpUpstream;
  let gw: HttpTestGateway;
  let port: number;

  before(async () => {
    upstream = await startHttpUpstream();
    gw = await startHttpTestGateway({
      connections: `  api:
    type: http
    host: api.example.test
    hosts: [API2.example.test]
    upstream: { url: "${upstream.url}/svc" }
    default: review
    review: { groups: [dba], hold: wait }
  other:
    type: http
    upstream: { url: "${upstream.url}/other" }
    default: allow`,
      rules: `rules:
  - name: reads are free
    connections: [api]
    kinds: [read]
    effect: allow
  - name: no deletes
    connections: [api]
    methods: [DELETE]
    effect: deny
    reason: nothing is deleted through the API`,
    });
    port = Number(new URL(gw.proxyUrl).port);
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  const curl = async (args: string[]) => {
    const { stdout } = await run('curl', [
      '-sS',
      '-w',
      '\n%{http_code}',
      '-H',
      `Authorization: Bearer ${gw.tokens.agent}`,
      ...args,
    ]);
    const at = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) };
  };

  it('a request to the API host name reaches its connection with the path as sent (curl --resolve)', async () => {
    const r = await curl([
      '--resolve',
      `api.example.test:${port}:127.0.0.1`,
      `http://api.example.test:${port}/v1/orders?limit=1`,
    ]);
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { url: string }).url, '/svc/v1/orders?limit=1');
  });

  it('the Host header alone routes, case and trailing dot aside, and each host of the list works', async () => {
    for (const host of ['API.example.test', 'api.example.test.', `api2.example.test:${port}`]) {
      const r = await curl(['-H', `Host: ${host}`, `${gw.proxyUrl}/v1/x`]);
      assert.equal(r.status, 200, host);
      assert.equal((JSON.parse(r.body) as { url: string }).url, '/svc/v1/x', host);
    }
  });

  it('the connection rules apply as under the prefix: a denied method is refused with the reason', async () => {
    const before = upstream.seen.length;
    const r = await curl(['-X', 'DELETE', '-H', 'Host: api.example.test', `${gw.proxyUrl}/v1/orders/1`]);
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.body) as { reason: string }).reason, 'nothing is deleted through the API');
    assert.equal(upstream.seen.length, before);
  });

  it('other host names still use the path prefix, and a prefix under a routed host is just a path', async () => {
    const r = await curl([`${gw.proxyUrl}/http/other/ping`]);
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { url: string }).url, '/other/ping');
    const routed = await curl(['-H', 'Host: api.example.test', `${gw.proxyUrl}/http/other/ping`]);
    assert.equal((JSON.parse(routed.body) as { url: string }).url, '/svc/http/other/ping');
    const unknown = await curl(['-H', 'Host: nope.example.test', `${gw.proxyUrl}/v1/x`]);
    assert.equal(unknown.status, 404);
  });

  it('a WebSocket upgrade is routed by host name too, and judged as a session', async () => {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let answer = '';
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
    });
    socket.write(
      [
        'GET /ws/echo HTTP/1.1',
        'Host: api.example.test',
        `Authorization: Bearer ${gw.tokens.agent}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'),
    );
    const held = await gw.pendingRequest('api', /websocket session \/ws\/echo/);
    await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    while (!answer.includes('\r\n\r\n')) await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    assert.match(answer, /^HTTP\/1\.1 101/);
    assert.equal(upstream.seen.find((r) => r.method === 'UPGRADE')?.url, '/svc/ws/echo');
  });

  it('a host name routed to two connections is refused when the policy loads', () => {
    const c = (name: string) =>
      `  ${name}:\n    type: http\n    host: api.example.test\n    upstream: { url: "http://127.0.0.1:1" }\n`;
    assert.throws(() => parsePolicy(`connections:\n${c('a')}${c('b')}`), /already routed to connection "a"/);
    assert.throws(
      () =>
        parsePolicy(
          'connections:\n  a:\n    type: http\n    host: "bad host"\n    upstream: { url: "http://h" }\n',
        ),
      /host name/,
    );
  });
});
