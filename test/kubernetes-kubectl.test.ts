/**
 * The real kubectl through Airlock to a stand-in API server that speaks the Kubernetes REST
 * protocol: a kubeconfig written by `airlock kubeconfig`, reads allowed, a delete held until a
 * reviewer approves it, a denial's reason in kubectl's own error output, and the token Airlock
 * holds (never the caller's) reaching the API server. exec, attach and port-forward:
 * kubernetes-exec.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kubeconfigFor } from '../src/cli/kubeconfig.ts';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type KubeApiServer, startKubeApiServer } from './support/kube-apiserver.ts';
import { clusterConnection, type KubectlHome, kubectlHome } from './support/kubectl.ts';

const CLUSTER_TOKEN = 'cluster-service-account-token-5678';

describe('kubectl through Airlock', () => {
  let apiserver: KubeApiServer;
  let gw: HttpTestGateway;
  let home: KubectlHome;
  let kubeconfig: string;

  before(async () => {
    apiserver = await startKubeApiServer(CLUSTER_TOKEN);
    apiserver.addPod('default', 'web-1');
    apiserver.addPod('default', 'web-2');
    apiserver.addPod('prod', 'db-0');
    apiserver.addSecret('default', 'db', { password: 'hunter2-very-secret' });
    gw = await startHttpTestGateway({
      tls: true,
      secrets: { 'cluster.token': CLUSTER_TOKEN },
      connections: clusterConnection(apiserver),
      rules: `rules:
  - name: reads are free
    connections: [cluster]
    kinds: [read]
    effect: allow
  - name: nothing is deleted in prod
    connections: [cluster]
    verbs: [delete, deletecollection]
    namespaces: [prod]
    effect: deny
    reason: prod workloads are changed through the deploy pipeline
  - name: deletes need a reviewer
    connections: [cluster]
    verbs: [delete]
    effect: review
    review: { groups: [dba], hold: wait }`,
    });
    home = await kubectlHome('airlock-kubectl-', gw);
    ({ kubeconfig } = home);
  });

  after(async () => {
    await gw?.close();
    await apiserver?.close();
    home?.remove();
  });

  const kubectl = (...args: string[]) => home.kubectl(kubeconfig, args);

  it('the kubeconfig points at the connection on the HTTP listener', async () => {
    const text = await kubeconfigFor('cluster', {}, {
      AIRLOCK_URL: gw.apiUrl,
      AIRLOCK_TOKEN: gw.tokens.agent,
    } as NodeJS.ProcessEnv);
    assert.match(text, new RegExp(`server: ${gw.proxyUrl}/kubernetes/cluster`));
    await assert.rejects(
      kubeconfigFor('nosuch', {}, {
        AIRLOCK_URL: gw.apiUrl,
        AIRLOCK_TOKEN: gw.tokens.agent,
      } as NodeJS.ProcessEnv),
      /no kubernetes connection "nosuch".*|there is no kubernetes connection/,
    );
  });

  it('kubectl get pods is allowed and lists what the API server has', async () => {
    const p = kubectl('get', 'pods');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /web-1\s+Running/);
    assert.match(p.stdout(), /web-2\s+Running/);
    // Airlock's credential reached the API server on every request; the caller's never did.
    assert.ok(apiserver.seen.length > 0 && apiserver.seen.every((r) => r.authorized));
  });

  it('kubectl get secret shows the keys but never the values', async () => {
    const p = kubectl('get', 'secret', 'db', '-o', 'json');
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    const secret = JSON.parse(p.stdout()) as {
      data: Record<string, string>;
      metadata: { annotations: Record<string, string> };
    };
    assert.deepEqual(Object.keys(secret.data), ['password']);
    assert.equal(Buffer.from(secret.data.password!, 'base64').toString(), '(masked by airlock)');
    assert.doesNotMatch(p.stdout(), new RegExp(Buffer.from('hunter2-very-secret').toString('base64')));
    assert.doesNotMatch(p.stdout(), /hunter2/);
    const list = kubectl('get', 'secrets', '-o', 'yaml');
    assert.equal((await list.waitForExit(60_000)).code, 0, list.output());
    assert.doesNotMatch(list.stdout(), new RegExp(Buffer.from('hunter2-very-secret').toString('base64')));
  });

  it('kubectl get pods --watch streams events as they come', async () => {
    const p = kubectl('get', 'pods', '--watch', '-n', 'prod');
    await p.waitForOutput(/db-0/, 60_000);
    assert.equal(p.hasExited(), false, 'the watch is still open');
    await p.stop();
  });

  it('kubectl delete pod is held, then runs once a reviewer approves it', async () => {
    const p = kubectl('delete', 'pod', 'web-2');
    const held = await gw.pendingRequest('cluster', /delete pods\/web-2/);
    assert.equal(held.summary, 'delete pods/web-2 -n default');
    assert.ok(apiserver.pods('default').includes('web-2'), 'not deleted while held');
    const approved = await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200);
    const exit = await p.waitForExit(60_000);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /pod "web-2" deleted/);
    assert.deepEqual(apiserver.pods('default'), ['web-1']);
  });

  it('a denial shows its reason in kubectl output and the pod stays', async () => {
    const p = kubectl('delete', 'pod', 'db-0', '-n', 'prod');
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(
      p.stderr(),
      /Error from server \(Forbidden\): .*prod workloads are changed through the deploy pipeline/,
    );
    assert.deepEqual(apiserver.pods('prod'), ['db-0']);
  });

  it('a reviewer denial reaches kubectl as Forbidden with the reviewer reason', async () => {
    const p = kubectl('delete', 'pod', 'web-1');
    const held = await gw.pendingRequest('cluster', /delete pods\/web-1/);
    await gw.api('POST', `/api/v1/requests/${held.id}/deny`, { reason: 'web-1 serves traffic' }, 'bob');
    const exit = await p.waitForExit(60_000);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /Forbidden.*web-1 serves traffic/);
    assert.ok(apiserver.pods('default').includes('web-1'));
  });
});
