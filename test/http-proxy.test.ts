/**
 * HTTP connections through Airlock against a real local HTTP service, with undici's fetch and
 * request as the client: credential injection, kind by method, path and JSON-field rules,
 * both hold modes, denial reasons, streaming and body limits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, request, WebSocket } from 'undici';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type HttpUpstream, startHttpUpstream } from './support/http-upstream.ts';

const UPSTREAM_TOKEN = 'upstream-secret-token-1234';

describe('HTTP connections', () => {
  let upstream: HttpUpstream;
  let gw: HttpTestGateway;
  let base: string;

  before(async () => {
    upstream = await startHttpUpstream();
    gw = await startHttpTestGateway({
      secrets: { 'api.token': `${UPSTREAM_TOKEN}\n` },
      connections: `  api:
    type: http
    upstream: { url: "${upstream.url}/svc" }
    credential: { type: bearer, token: "\${file:./secrets/api.token}" }
    max_body: 65536
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`,
      rules: `rules:
  - name: reads are free
    connections: [api]
    kinds: [read]
    effect: allow
  - name: no deleting orders
    connections: [api]
    methods: [DELETE]
    paths: [/v1/orders/*]
    effect: deny
    reason: orders are archived, never deleted
  - name: refunds are approved per request
    connections: [api]
    paths: [/v1/refunds]
    effect: review
    review: { groups: [dba], hold: retry, window: 10m }
  - name: agents do not deploy to production
    connections: [api]
    principals: [agent]
    arguments: { env: prod }
    effect: deny
    reason: production deploys go through the release train`,
    });
    base = `${gw.proxyUrl}/http/api`;
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  const auth = (who: 'agent' | 'bench' = 'agent') => ({ authorization: `Bearer ${gw.tokens[who]}` });

  it('forwards an allowed GET with the held credential, never the caller token', async () => {
    const res = await fetch(`${base}/v1/orders?limit=2`, { headers: auth() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-upstream'), 'yes');
    const body = (await res.json()) as { url: string };
    assert.equal(body.url, '/svc/v1/orders?limit=2');
    const seen = upstream.seen.at(-1)!;
    assert.equal(seen.headers.authorization, `Bearer ${UPSTREAM_TOKEN}`);
    assert.ok(!JSON.stringify(seen.headers).includes(gw.tokens.agent));
  });

  it('refuses callers without a valid token', async () => {
    const none = await fetch(`${base}/v1/orders`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { code: string }).code, 'AIRLOCK_E_TOKEN_MISSING');
    const bad = await fetch(`${base}/v1/orders`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(bad.status, 401);
    assert.equal(((await bad.json()) as { code: string }).code, 'AIRLOCK_E_TOKEN_INVALID');
  });

  it('names the connections when the path names none', async () => {
    const res = await fetch(`${gw.proxyUrl}/http/nosuch/x`, { headers: auth() });
    assert.equal(res.status, 404);
    assert.match(((await res.json()) as { hint: string }).hint, /api/);
  });

  it('denies by method and path with the reason, and the upstream never sees it', async () => {
    const before = upstream.seen.length;
    const res = await fetch(`${base}/v1/orders/7`, { method: 'DELETE', headers: auth() });
    assert.equal(res.status, 403);
    const body = (await res.json()) as { code: string; reason: string };
    assert.equal(body.code, 'AIRLOCK_E_DENIED');
    assert.equal(body.reason, 'orders are archived, never deleted');
    assert.equal(upstream.seen.length, before);
  });

  it('a dot-segment or percent-encoded path does not slip past a path rule', async () => {
    for (const path of ['/v1/x/../orders/7', '/v1/%6Frders/7']) {
      const res = await request(`${base}${path}`, { method: 'DELETE', headers: auth() });
      assert.equal(res.statusCode, 403, path);
      await res.body.dump();
    }
  });

  it('dot segments cannot step out of the base path upstream', async () => {
    // A raw client: fetch and request() would resolve the dot segments before sending.
    const client = new Client(gw.proxyUrl);
    try {
      for (const path of ['/../admin', '/%2e%2e/admin', '/v1/../../admin']) {
        const res = await client.request({ method: 'GET', path: `/http/api${path}`, headers: auth() });
        await res.body.dump();
        assert.equal(res.statusCode, 200, path);
        assert.equal(upstream.seen.at(-1)!.url, '/svc/admin', path);
      }
    } finally {
      await client.close();
    }
  });

  it('matches JSON body fields as arguments', async () => {
    const res = await fetch(`${base}/v1/deploys`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'web', env: 'prod' }),
    });
    assert.equal(res.status, 403);
    assert.equal(
      ((await res.json()) as { reason: string }).reason,
      'production deploys go through the release train',
    );
  });

  it('holds a write until approved, then forwards exactly that request', async () => {
    const payload = JSON.stringify({ sku: 'A-1', qty: 3 });
    const pending = fetch(`${base}/v1/orders`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: payload,
    });
    const held = await gw.pendingRequest('api', /^POST \/v1\/orders/);
    assert.match(held.summary, /^POST \/v1\/orders \(body \d+ bytes/);
    const count = upstream.seen.length;
    assert.equal(upstream.seen.length, count, 'nothing forwarded while held');
    const approved = await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200);
    const res = await pending;
    assert.equal(res.status, 200);
    const seen = upstream.seen.at(-1)!;
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/svc/v1/orders');
    assert.equal(seen.body.toString(), payload);
  });

  it('a held write that is denied returns the reviewer reason', async () => {
    const pending = fetch(`${base}/v1/orders`, { method: 'PUT', headers: auth(), body: 'x' });
    const held = await gw.pendingRequest('api', /^PUT/);
    await gw.api('POST', `/api/v1/requests/${held.id}/deny`, { reason: 'not during the freeze' }, 'bob');
    const res = await pending;
    assert.equal(res.status, 403);
    assert.match(((await res.json()) as { reason: string }).reason, /not during the freeze/);
  });

  it('retry mode: 202 with the request id, the identical request passes once approved, a different body does not', async () => {
    const send = (body: string) =>
      fetch(`${base}/v1/refunds`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json' },
        body,
      });
    const first = await send('{"order":7}');
    assert.equal(first.status, 202);
    assert.ok(Number(first.headers.get('retry-after')) > 0);
    const info = (await first.json()) as { request: number; url: string; message: string };
    assert.match(info.message, /approval required: request \d+/);
    await gw.api('POST', `/api/v1/requests/${info.request}/approve`, {}, 'alice');
    const again = await send('{"order":7}');
    assert.equal(again.status, 200);
    assert.equal(upstream.seen.at(-1)!.body.toString(), '{"order":7}');
    const other = await send('{"order":8}');
    assert.equal(other.status, 202);
    assert.notEqual(((await other.json()) as { request: number }).request, info.request);
  });

  it('streams responses without waiting for the upstream to finish', async () => {
    const res = await request(`${base}/stream`, { headers: auth() });
    assert.equal(res.statusCode, 200);
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(Buffer.from(first.value as Buffer).toString(), 'first\n');
    upstream.endStreams();
    let rest = '';
    for (let n = await it.next(); !n.done; n = await it.next())
      rest += Buffer.from(n.value as Buffer).toString();
    assert.equal(rest, 'last\n');
  });

  it('refuses a body larger than max_body with 413', async () => {
    const res = await fetch(`${base}/v1/upload`, {
      method: 'POST',
      headers: auth(),
      body: Buffer.alloc(70_000),
    });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { code: string }).code, 'AIRLOCK_E_MESSAGE_TOO_LARGE');
  });

  it('a held request whose caller goes away is cancelled', async () => {
    const ac = new AbortController();
    const pending = fetch(`${base}/v1/orders/9`, {
      method: 'PATCH',
      headers: auth(),
      body: '{}',
      signal: ac.signal,
    }).catch((e: Error) => e);
    const held = await gw.pendingRequest('api', /^PATCH/);
    ac.abort();
    await pending;
    for (;;) {
      const r = await gw.api<{ request: { status: string } }>(
        'GET',
        `/api/v1/requests/${held.id}`,
        undefined,
        'alice',
      );
      if (r.body.request.status === 'cancelled') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('records each exchange of a session, without credentials', async () => {
    const client = new Client(gw.proxyUrl);
    const res = await client.request({
      method: 'GET',
      path: '/http/api/v1/recorded?page=2',
      headers: { ...auth(), cookie: 'sid=abc', 'x-trace': 't-1' },
    });
    await res.body.dump();
    await client.close();
    for (;;) {
      const list = await gw.api<{ recordings: { id: string; status: string; sessionId: string }[] }>(
        'GET',
        '/api/v1/recordings?connection=api',
        undefined,
        'alice',
      );
      for (const r of list.body.recordings.filter((x) => x.status === 'closed')) {
        const content = await fetch(`${gw.apiUrl}/api/v1/recordings/${r.id}/content`, {
          headers: { authorization: `Bearer ${gw.tokens.alice}` },
        }).then((x) => x.text());
        if (!content.includes('/v1/recorded?page=2')) continue;
        const event = content
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((e) => e.type === 'exchange')!;
        assert.equal(event.verdict, 'allow');
        assert.equal(event.status, 200);
        assert.equal((event.headers as Record<string, string>)['x-trace'], 't-1');
        assert.doesNotMatch(content, new RegExp(`${gw.tokens.agent}|sid=abc|${UPSTREAM_TOKEN}`));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('a WebSocket upgrade is a session: held, then joined to the upstream with the held credential', async () => {
    const url = `${base.replace(/^http/, 'ws')}/ws/echo`;
    const ws = new WebSocket(url, { headers: auth() } as never);
    const opened = new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('websocket failed'));
    });
    const held = await gw.pendingRequest('api', /websocket session \/ws\/echo/);
    await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    await opened;
    const echoed = new Promise<string>((resolve) => {
      ws.onmessage = (e) => resolve(String(e.data));
    });
    ws.send('hello');
    assert.equal(await echoed, 'hello');
    ws.close();
    const up = upstream.seen.find((r) => r.method === 'UPGRADE')!;
    assert.equal(up.url, '/svc/ws/echo');
    assert.equal(up.headers.authorization, `Bearer ${UPSTREAM_TOKEN}`);
  });
});
