/**
 * kubectl port-forward through Airlock: the real kubectl tunnels SPDY through a WebSocket
 * (`SPDY/3.1+portforward.k8s.io`) to a stand-in API server that connects each forwarded
 * connection to a local echo server standing in for the pod's port. An allowed port carries
 * bytes both ways as it does without Airlock; a denied port never reaches the API server and
 * kubectl prints the reason; a reviewed port is held until approved.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { dataFrame } from '../src/protocols/http/kubernetes/spdy-frames.ts';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type KubeApiServer, startKubeApiServer } from './support/kube-apiserver.ts';
import { clusterConnection, type KubectlHome, kubectlHome } from './support/kubectl.ts';
import type { ManagedProcess } from './support/processes.ts';

const CLUSTER_TOKEN = 'cluster-service-account-token-pf-7331';
const TIMEOUT = 120_000;

/** Sends `text` over a fresh connection to the local port and resolves with everything read back. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) s.end();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(text);
  });
}

describe('kubectl port-forward through Airlock', { timeout: 600_000 }, () => {
  let apiserver: KubeApiServer;
  let direct: KubeApiServer;
  let echo: Server;
  let gw: HttpTestGateway;
  let home: KubectlHome;
  let kubeconfig: string;
  let directConfig: string;
  const running: ManagedProcess[] = [];

  before(async () => {
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPort = (echo.address() as { port: number }).port;
    apiserver = await startKubeApiServer(CLUSTER_TOKEN);
    apiserver.addPod('default', 'web-1');
    direct = await startKubeApiServer('');
    direct.addPod('default', 'web-1');
    for (const port of [8080, 5432, 22]) {
      apiserver.forwardPort(port, echoPort);
      direct.forwardPort(port, echoPort);
    }
    gw = await startHttpTestGateway({
      tls: true,
      secrets: { 'cluster.token': CLUSTER_TOKEN },
      connections: clusterConnection(apiserver),
      rules: `rules:
  - name: reads are free
    connections: [cluster]
    kinds: [read]
    effect: allow
  - name: the web port may be forwarded
    connections: [cluster]
    resources: [pods/portforward]
    ports: [8080]
    effect: allow
  - name: no shell ports
    connections: [cluster]
    resources: [pods/portforward]
    ports: [22]
    effect: deny
    reason: ssh is not forwarded out of pods
  - name: database ports are reviewed
    connections: [cluster]
    resources: [pods/portforward]
    ports: [5432]
    effect: review
    review: { groups: [dba], hold: wait }`,
    });
    home = await kubectlHome('airlock-kubectl-pf-', gw, direct);
    ({ kubeconfig, directConfig } = home);
  });

  after(async () => {
    for (const p of running) await p.stop();
    await gw?.close();
    await apiserver?.close();
    await direct?.close();
    await new Promise<void>((resolve) => (echo ? echo.close(() => resolve()) : resolve()));
    home?.remove();
  });

  /** Starts kubectl port-forward to the pod's `port` on a free local port and returns that port. */
  const forward = async (config: string, port: number) => {
    const p = home.kubectl(config, ['port-forward', 'pod/web-1', `:${port}`]);
    running.push(p);
    const m = await p.waitForOutput(new RegExp(`Forwarding from 127\\.0\\.0\\.1:(\\d+) -> ${port}`), TIMEOUT);
    return { p, local: Number(m[1]) };
  };

  it('an allowed port carries bytes both ways, as it does without Airlock', async () => {
    const d = await forward(directConfig, 8080);
    assert.equal(await exchange(d.local, 'hello direct\n'), 'hello direct\n');
    const a = await forward(kubeconfig, 8080);
    assert.equal(await exchange(a.local, 'hello through airlock\n'), 'hello through airlock\n');
    // A second connection on the same tunnel: the port is already allowed.
    const big = 'x'.repeat(200_000);
    assert.equal(await exchange(a.local, big), big);
    const up = apiserver.upgrades.filter((u) => u.url.endsWith('/portforward'));
    assert.ok(up.length > 0);
    assert.equal(up.at(-1)!.protocol, 'SPDY/3.1+portforward.k8s.io');
    assert.ok(up.every((u) => u.authorized && u.upgrade === 'websocket'));
    assert.deepEqual(
      apiserver.forwarded.map((f) => f.port),
      [8080, 8080],
    );
    await a.p.stop();
    await d.p.stop();
  });

  it('a denied port never reaches the API server, and kubectl prints the reason', async () => {
    const before = apiserver.upgrades.length;
    const a = await forward(kubeconfig, 22);
    const got = await exchange(a.local, 'SSH-2.0-probe\r\n');
    assert.equal(got, '');
    await a.p.waitForOutput(/airlock: ssh is not forwarded out of pods/, TIMEOUT, 'stderr');
    assert.equal(apiserver.upgrades.length, before, 'no tunnel was opened to the API server');
    assert.ok(!apiserver.forwarded.some((f) => f.port === 22));
    await a.p.stop();
  });

  it('a reviewed port is held, and reaches the pod once approved', async () => {
    const a = await forward(kubeconfig, 5432);
    const reply = exchange(a.local, 'select 1;\n');
    const held = await gw.pendingRequest('cluster', /portforward.*port 5432/);
    assert.equal(held.summary, 'create pods/web-1 portforward -n default port 5432');
    assert.ok(!apiserver.forwarded.some((f) => f.port === 5432), 'not forwarded while held');
    const approved = await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200);
    assert.equal(await reply, 'select 1;\n');
    assert.ok(apiserver.forwarded.some((f) => f.port === 5432));
    await a.p.stop();
  });

  it('a frame outside the protocol ends the tunnel before anything reaches the API server', async () => {
    const before = apiserver.upgrades.length;
    const protocol = 'SPDY/3.1+portforward.k8s.io';
    const ws = new WebSocket(
      `${gw.proxyUrl.replace('https', 'wss')}/kubernetes/cluster/api/v1/namespaces/default/pods/web-1/portforward`,
      {
        headers: { authorization: `Bearer ${gw.tokens.agent}`, 'sec-websocket-protocol': protocol },
        ca: readFileSync(join(gw.dir, 'tls', 'cert.pem')),
      },
    );
    // `ws` would refuse a subprotocol it did not offer itself; this one it cannot offer.
    ws.once('upgrade', (res) => {
      assert.equal(res.headers['sec-websocket-protocol'], protocol);
      delete res.headers['sec-websocket-protocol'];
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    // Data for a stream that was never opened.
    ws.send(dataFrame(1, Buffer.from('smuggled')));
    const code = await new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c)));
    assert.equal(code, 1008);
    assert.equal(apiserver.upgrades.length, before);
  });
});
