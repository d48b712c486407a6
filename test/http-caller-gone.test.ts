/**
 * A caller that goes away takes its forwarded request with it: the upstream sees its request
 * closed whether the caller leaves before the response has started or in the middle of its body.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from 'undici';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';

describe('HTTP caller going away', () => {
  let upstream: Server;
  let gw: HttpTestGateway;
  /** Each request the upstream gets, as it arrives. */
  let arrivals: ((r: { req: IncomingMessage; res: ServerResponse }) => void)[] = [];

  const nextArrival = () =>
    new Promise<{ req: IncomingMessage; res: ServerResponse }>((resolve) => arrivals.push(resolve));

  before(async () => {
    upstream = createServer((req, res) => {
      const waiting = arrivals;
      arrivals = [];
      for (const w of waiting) w({ req, res });
      // `/hang` never answers; `/stream` sends one chunk and stays open.
      if (req.url?.endsWith('/stream')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
      }
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const { port } = upstream.address() as AddressInfo;
    gw = await startHttpTestGateway({
      connections: `  slow:
    type: http
    upstream: { url: "http://127.0.0.1:${port}" }
    default: review`,
      rules: `rules:
  - { name: reads are free, connections: [slow], kinds: [read], effect: allow }`,
    });
  });

  after(async () => {
    await gw?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  });

  it('before the response starts, the upstream request is cancelled', async () => {
    const client = new Client(gw.proxyUrl);
    const ac = new AbortController();
    const arrived = nextArrival();
    const pending = client
      .request({
        method: 'GET',
        path: '/http/slow/hang',
        headers: { authorization: `Bearer ${gw.tokens.bench}` },
        signal: ac.signal,
      })
      .catch((err: Error) => err);
    const { res } = await arrived;
    const closed = once(res, 'close');
    ac.abort();
    assert.ok((await pending) instanceof Error);
    await closed;
    assert.equal(res.writableFinished, false);
    await client.close();
  });

  it('in the middle of the body, the upstream response is cut off', async () => {
    const client = new Client(gw.proxyUrl);
    const arrived = nextArrival();
    const response = await client.request({
      method: 'GET',
      path: '/http/slow/stream',
      headers: { authorization: `Bearer ${gw.tokens.bench}` },
    });
    const { res } = await arrived;
    const closed = once(res, 'close');
    const [first] = (await once(response.body, 'data')) as [Buffer];
    assert.equal(first.toString(), 'first\n');
    response.body.on('error', () => {});
    response.body.destroy();
    await client.destroy();
    await closed;
    assert.equal(res.writableFinished, false);
  });
});
