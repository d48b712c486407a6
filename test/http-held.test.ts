/**
 * A request held in `wait` mode keeps its caller's connection: a hold several times longer than
 * the listener's startup timeout (which cuts off callers that do not finish their request
 * headers) and its write timeout (which bounds how long a request body may take to arrive) still
 * completes once approved, for curl and for fetch. A body sent a byte at a time is cut off.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type HttpUpstream, startHttpUpstream } from './support/http-upstream.ts';

const run = promisify(execFile);
const STARTUP_MS = 600;
const WRITE_MS = 1200;
/** Several times both timeouts. */
const HOLD_MS = 4000;

describe('HTTP requests held in wait mode', () => {
  let upstream: HttpUpstream;
  let gw: HttpTestGateway;

  before(async () => {
    upstream = await startHttpUpstream();
    gw = await startHttpTestGateway({
      connections: `  api:
    type: http
    upstream: { url: "${upstream.url}" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`,
      rules: 'rules: []',
      extra: `limits:\n  startup_timeout: ${STARTUP_MS}ms\n  write_timeout: ${WRITE_MS}ms\n`,
    });
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  const approveAfterHold = async (summary: RegExp) => {
    const held = await gw.pendingRequest('api', summary);
    await sleep(HOLD_MS);
    const r = await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    assert.equal(r.status, 200);
  };

  it('curl waits through a long hold and gets the upstream answer once approved', async () => {
    const pending = run('curl', [
      '-sS',
      '-X',
      'POST',
      '-H',
      `Authorization: Bearer ${gw.tokens.agent}`,
      '-H',
      'content-type: application/json',
      '--data',
      '{"n":1}',
      '-w',
      '\n%{http_code}',
      `${gw.proxyUrl}/http/api/v1/held-curl`,
    ]);
    await approveAfterHold(/held-curl/);
    const { stdout } = await pending;
    const [body, status] = stdout.split('\n') as [string, string];
    assert.equal(status, '200');
    assert.equal((JSON.parse(body) as { url: string }).url, '/v1/held-curl');
  });

  it('fetch waits through a long hold too', async () => {
    const pending = fetch(`${gw.proxyUrl}/http/api/v1/held-fetch`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${gw.tokens.agent}` },
      body: 'x',
    });
    await approveAfterHold(/held-fetch/);
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, '/v1/held-fetch');
  });

  it('a body sent a byte at a time is refused with 408 at the write timeout, and nothing is held', async () => {
    const socket = connect(Number(new URL(gw.proxyUrl).port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST /http/api/v1/slow HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${gw.tokens.agent}\r\ncontent-length: 1000\r\n\r\n`,
    );
    let answer = '';
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const trickle = setInterval(() => socket.writable && socket.write('a'), 100);
    await closed;
    clearInterval(trickle);
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.match(answer, /did not arrive within 1 s/);
    const pending = await gw.api<{ requests: { summary: string }[] }>(
      'GET',
      '/api/v1/requests?status=pending',
      undefined,
      'alice',
    );
    assert.ok(!pending.body.requests.some((r) => r.summary.includes('/v1/slow')));
  });
});
