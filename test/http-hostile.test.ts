/**
 * Slow and silent callers on the HTTP/Kubernetes/Git listener: a caller that connects and says
 * nothing, and one that sends its request headers a byte at a time, are cut off at the startup
 * timeout; a normal request through the same listener keeps working.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type HttpUpstream, startHttpUpstream } from './support/http-upstream.ts';

const STARTUP_MS = 500;

/** Connects, runs `talk`, and resolves with how long the server took to close the socket. */
function closedAfter(port: number, talk: (write: (s: string) => void) => () => void): Promise<number> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    let stop = () => {};
    socket.on('connect', () => {
      stop = talk((s) => {
        if (!socket.destroyed) socket.write(s);
      });
    });
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => {
      stop();
      resolve(Date.now() - t0);
    });
  });
}

describe('slow callers on the HTTP listener', { timeout: 60_000 }, () => {
  let upstream: HttpUpstream;
  let gw: HttpTestGateway;
  let port: number;

  before(async () => {
    upstream = await startHttpUpstream();
    gw = await startHttpTestGateway({
      connections: `  api:
    type: http
    upstream: { url: "${upstream.url}/svc" }
    default: allow`,
      rules: 'rules: []',
      extra: `limits:\n  startup_timeout: ${STARTUP_MS}ms\n`,
    });
    port = Number(new URL(gw.proxyUrl).port);
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it('a caller that connects and sends nothing is cut off', async () => {
    const ms = await closedAfter(port, () => () => {});
    assert.ok(ms < STARTUP_MS + 3000, `closed after ${ms} ms`);
  });

  it('a caller that trickles its headers is cut off, and others are served meanwhile', async () => {
    const slow = closedAfter(port, (write) => {
      write('GET /http/api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const t = setInterval(() => write('X'), 100);
      return () => clearInterval(t);
    });
    const res = await fetch(`${gw.proxyUrl}/http/api/v1/orders`, {
      headers: { authorization: `Bearer ${gw.tokens.agent}` },
    });
    assert.equal(res.status, 200, await res.text());
    const ms = await slow;
    assert.ok(ms < STARTUP_MS + 3000, `closed after ${ms} ms`);
  });
});
