/**
 * kubectl exec and attach through Airlock over WebSocket (`v5.channel.k8s.io`), with the real
 * kubectl and a stand-in API server that runs the command as a local process: output and exit
 * codes as they are without Airlock, stdin and output recorded as asciicast, a reviewed command
 * held (and not run) until approved, a denial's reason in kubectl's output, SPDY refused with
 * the reason (port-forward: kubernetes-portforward.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { recordingsDirOf } from '../src/core/audit/evidence.ts';
import { type ParsedAsciicast, parseAsciicast } from '../src/core/recording/asciicast.ts';
import { type HttpTestGateway, startHttpTestGateway } from './support/http-gateway.ts';
import { type KubeApiServer, startKubeApiServer } from './support/kube-apiserver.ts';
import { clusterConnection, type KubectlHome, kubectlHome } from './support/kubectl.ts';
import { startProcess } from './support/processes.ts';

const CLUSTER_TOKEN = 'cluster-service-account-token-exec-4242';
const TIMEOUT = 180_000;

describe('kubectl exec and attach through Airlock', { timeout: 600_000 }, () => {
  let apiserver: KubeApiServer;
  let direct: KubeApiServer;
  let gw: HttpTestGateway;
  let home: KubectlHome;
  let dir: string;
  let kubeconfig: string;
  let directConfig: string;

  before(async () => {
    apiserver = await startKubeApiServer(CLUSTER_TOKEN);
    apiserver.addPod('default', 'web-1');
    direct = await startKubeApiServer('');
    direct.addPod('default', 'web-1');
    gw = await startHttpTestGateway({
      tls: true,
      secrets: { 'cluster.token': CLUSTER_TOKEN },
      connections: `${clusterConnection(apiserver)}
  legacy:
    type: kubernetes
    upstream: { url: "${apiserver.url}" }
    credential: { type: bearer, token: "\${file:./secrets/cluster.token}" }
    spdy: unrecorded
    default: deny`,
      rules: `rules:
  - name: reads are free
    connections: [cluster]
    kinds: [read]
    effect: allow
  - name: harmless commands
    connections: [cluster]
    commands: ["echo *", "sh -c *", "cat", "exit *", "read *", "cd *"]
    effect: allow
  - name: legacy clients may echo
    connections: [legacy]
    commands: ["echo *"]
    effect: allow
  - name: attach to web pods
    connections: [cluster]
    resources: [pods/attach]
    effect: allow
  - name: no deleting in pods
    connections: [cluster]
    commands: ["rm *"]
    effect: deny
    reason: files in pods are not deleted by hand
  - name: dates are reviewed, run again once approved
    connections: [cluster]
    commands: ["date *"]
    effect: review
    review: { groups: [dba], hold: retry }
  - name: touching files is reviewed
    connections: [cluster]
    commands: ["touch *"]
    effect: review
    review: { groups: [dba], hold: wait }`,
    });
    home = await kubectlHome('airlock-kubectl-exec-', gw, direct);
    ({ dir, kubeconfig, directConfig } = home);
  });

  after(async () => {
    await gw?.close();
    await apiserver?.close();
    await direct?.close();
    home?.remove();
  });

  const kubectl = (config: string, args: string[], input?: string) => {
    const p = home.kubectl(config, args);
    if (input !== undefined) p.write(input);
    p.endInput();
    return p;
  };
  const both = async (args: string[], input?: string) => {
    const a = kubectl(kubeconfig, args, input);
    const d = kubectl(directConfig, args, input);
    const [ea, ed] = await Promise.all([a.waitForExit(TIMEOUT), d.waitForExit(TIMEOUT)]);
    return { through: { p: a, code: ea.code }, direct: { p: d, code: ed.code } };
  };

  const recordingFor = async (command: RegExp): Promise<ParsedAsciicast> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      for (const r of await gw.gateway.store.listRecordings({ connection: 'cluster' })) {
        if (r.status !== 'closed' || r.format !== 'asciicast-v2') continue;
        const cast = parseAsciicast(readFileSync(join(recordingsDirOf(gw.gateway.policy), r.path), 'utf8'));
        if (!command.test(String(cast.header.command ?? ''))) continue;
        assert.ok(r.auditSeq !== undefined && r.sha256, 'the recording is sealed into the audit chain');
        return cast;
      }
      if (Date.now() > deadline) throw new Error(`no sealed recording of ${command}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const text = (cast: ParsedAsciicast, code: string) =>
    cast.events
      .filter((e) => e.code === code)
      .map((e) => e.data)
      .join('');

  it('kubectl exec -- echo hi: the same output and exit code as without Airlock', async () => {
    const r = await both(['exec', 'web-1', '--', 'echo', 'hi']);
    assert.equal(r.direct.code, 0, r.direct.p.output());
    assert.equal(r.through.code, 0, r.through.p.output());
    assert.equal(r.through.p.stdout(), 'hi\n');
    assert.equal(r.through.p.stdout(), r.direct.p.stdout());
    assert.equal(r.through.p.stderr(), r.direct.p.stderr());
    // The stream went to the API server as a WebSocket with Airlock's credential.
    const up = apiserver.upgrades.at(-1)!;
    assert.equal(up.upgrade, 'websocket');
    assert.equal(up.protocol, 'v5.channel.k8s.io');
    assert.ok(up.authorized);
    assert.deepEqual(apiserver.execs.at(-1)?.command, ['echo', 'hi']);
  });

  it('a non-zero exit code and stderr pass through', async () => {
    const r = await both(['exec', 'web-1', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.direct.code, 3, r.direct.p.output());
    assert.equal(r.through.code, 3, r.through.p.output());
    assert.equal(r.through.p.stdout(), 'out\n');
    assert.match(r.through.p.stderr(), /err\n/);
    assert.equal(r.through.p.stderr(), r.direct.p.stderr());
  });

  it('kubectl exec -it with stdin from the test is recorded, and the recording replays to what was shown', async () => {
    const input = 'first line\nsecond line with ünïcode\n';
    const p = kubectl(kubeconfig, ['exec', '-it', 'web-1', '--', 'cat'], input);
    const exit = await p.waitForExit(TIMEOUT);
    assert.equal(exit.code, 0, p.output());
    assert.equal(p.stdout(), input);
    const cast = await recordingFor(/^create pods\/web-1 exec -n default -- cat$/);
    assert.equal(text(cast, 'o'), p.stdout());
    assert.equal(text(cast, 'i'), input);
    assert.equal(cast.header.title, 'agent on cluster');
  });

  it('kubectl exec -it on a terminal: its size reaches the API server and the recording', async () => {
    // script(1) gives kubectl a terminal of a known size; kubectl puts it in raw mode and sends
    // the size on the resize stream before anything else.
    const cmd = [
      'stty rows 40 cols 100;',
      `kubectl --kubeconfig ${kubeconfig} --cache-dir ${join(dir, 'cache')}`,
      `exec -it web-1 -- sh -c 'read line; echo got:$line'`,
    ].join(' ');
    const p = startProcess('script', ['-qec', cmd, '/dev/null'], {
      env: { ...process.env, HOME: dir, KUBECONFIG: kubeconfig },
    });
    // Typed before kubectl is up, the line waits in the terminal: the same bytes arrive.
    p.write('hello tty\n');
    const exit = await p.waitForExit(TIMEOUT);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /got:hello tty/);
    assert.ok(
      apiserver.resizes.some((r) => r.width === 100 && r.height === 40),
      JSON.stringify(apiserver.resizes),
    );
    const cast = await recordingFor(/-- sh -c 'read line; echo got:\$line'$/);
    assert.ok(cast.events.some((e) => e.code === 'r' && e.data === '100x40'));
    assert.match(text(cast, 'o'), /got:hello tty/);
    assert.equal(text(cast, 'i'), 'hello tty\n');
  });

  it('kubectl attach is relayed and recorded', async () => {
    const p = kubectl(kubeconfig, ['attach', '-i', 'web-1'], 'attached input\n');
    const exit = await p.waitForExit(TIMEOUT);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /attached input\n/);
    const cast = await recordingFor(/^create pods\/web-1 attach -n default$/);
    assert.equal(text(cast, 'o'), 'attached input\n');
  });

  it('a reviewed exec is held, not run, until a reviewer approves it', async () => {
    const marker = join(dir, 'touched-by-exec');
    const p = kubectl(kubeconfig, ['exec', 'web-1', '--', 'touch', marker]);
    const held = await gw.pendingRequest('cluster', /touch/);
    assert.equal(held.summary, `create pods/web-1 exec -n default -- touch ${marker}`);
    await p.waitForOutput(new RegExp(`airlock: waiting for approval: request ${held.id}`), TIMEOUT, 'stderr');
    assert.equal(existsSync(marker), false, 'the command did not run while held');
    assert.equal(
      apiserver.execs.some((e) => e.command[0] === 'touch'),
      false,
      'the API server never saw it',
    );
    const approved = await gw.api('POST', `/api/v1/requests/${held.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200);
    const exit = await p.waitForExit(TIMEOUT);
    assert.equal(exit.code, 0, p.output());
    assert.equal(existsSync(marker), true, 'the approved command ran');
  });

  it('hold: retry refuses with the request, and the same exec runs once it is approved', async () => {
    const first = kubectl(kubeconfig, ['exec', 'web-1', '--', 'date', '+%Y']);
    assert.notEqual((await first.waitForExit(TIMEOUT)).code, 0);
    const m = /approval required: request (\d+).*run the same command again once it is approved/.exec(
      first.stderr(),
    );
    assert.ok(m, first.stderr());
    assert.equal(
      apiserver.execs.some((e) => e.command[0] === 'date'),
      false,
    );
    const approved = await gw.api('POST', `/api/v1/requests/${m[1]}/approve`, {}, 'alice');
    assert.equal(approved.status, 200);
    const again = kubectl(kubeconfig, ['exec', 'web-1', '--', 'date', '+%Y']);
    assert.equal((await again.waitForExit(TIMEOUT)).code, 0, again.output());
    assert.match(again.stdout(), /^\d{4}\n$/);
  });

  it('a denied exec shows the reason and never reaches the API server', async () => {
    const before = apiserver.upgrades.length;
    const p = kubectl(kubeconfig, ['exec', 'web-1', '--', 'rm', '-rf', join(dir, 'cache')]);
    const exit = await p.waitForExit(TIMEOUT);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /airlock: files in pods are not deleted by hand/);
    assert.equal(apiserver.upgrades.length, before);
    assert.ok(existsSync(join(dir, 'cache')));
  });

  it("a command inside a shell's -c script meets the rules for it", async () => {
    const before = apiserver.upgrades.length;
    const p = kubectl(kubeconfig, ['exec', 'web-1', '--', 'sh', '-c', `cd ${dir} && rm -rf cache`]);
    assert.notEqual((await p.waitForExit(TIMEOUT)).code, 0);
    assert.match(p.stderr(), /airlock: files in pods are not deleted by hand/);
    assert.equal(apiserver.upgrades.length, before);
    assert.ok(existsSync(join(dir, 'cache')));
  });

  it('a reviewer denial of a held exec reaches kubectl with the reviewer reason', async () => {
    const marker = join(dir, 'never-touched');
    const p = kubectl(kubeconfig, ['exec', 'web-1', '--', 'touch', marker]);
    const held = await gw.pendingRequest('cluster', /never-touched/);
    await gw.api('POST', `/api/v1/requests/${held.id}/deny`, { reason: 'not during the freeze' }, 'bob');
    const exit = await p.waitForExit(TIMEOUT);
    assert.notEqual(exit.code, 0);
    assert.match(p.stderr(), /not during the freeze/);
    assert.equal(existsSync(marker), false);
  });

  it('a message outside the channel protocol ends the stream and is audited', async () => {
    const audited = async () => {
      const r = await gw.api<{ records: { type: string; data: Record<string, unknown> }[] }>(
        'GET',
        '/api/v1/audit?from=1&limit=1000',
        undefined,
        'alice',
      );
      return r.body.records.filter((x) => x.type === 'protocol.violation').length;
    };
    const before = await audited();
    const url = `${gw.proxyUrl.replace('https', 'wss')}/kubernetes/cluster/api/v1/namespaces/default/pods/web-1/exec?command=cat&stdin=true&stdout=true`;
    const ws = new WebSocket(url, ['v5.channel.k8s.io'], {
      headers: { authorization: `Bearer ${gw.tokens.agent}` },
      ca: readFileSync(join(gw.dir, 'tls', 'cert.pem')),
    });
    const echoed: Buffer[] = [];
    ws.on('message', (m: Buffer) => echoed.push(m));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(Buffer.from([0, ...Buffer.from('fine\n')]));
    // Stream 1 is the server's stdout: a caller writing to it is not speaking the protocol.
    ws.send(Buffer.from([1, ...Buffer.from('forged output')]));
    const code = await new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c)));
    assert.equal(code, 1008);
    assert.ok(!Buffer.concat(echoed).includes('forged output'));
    const deadline = Date.now() + 30_000;
    while ((await audited()) <= before) {
      assert.ok(Date.now() < deadline, 'the violation is in the audit log');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  const rawUpgrade = (path: string, headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(`${gw.proxyUrl}${path}`);
      const req = request({
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: 'POST',
        ca: readFileSync(join(gw.dir, 'tls', 'cert.pem')),
        headers: { authorization: `Bearer ${gw.tokens.agent}`, connection: 'Upgrade', ...headers },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, body: '' });
      });
      req.on('error', reject);
      req.end();
    });

  it('an SPDY-only client is refused with a message asking for a kubectl that speaks WebSocket', async () => {
    const before = apiserver.upgrades.length;
    const r = await rawUpgrade(
      '/kubernetes/cluster/api/v1/namespaces/default/pods/web-1/exec?command=echo&command=hi&stdout=true',
      { upgrade: 'SPDY/3.1', 'x-stream-protocol-version': 'v4.channel.k8s.io' },
    );
    assert.equal(r.status, 403);
    const status = JSON.parse(r.body) as { kind: string; message: string; code: number };
    assert.equal(status.kind, 'Status');
    assert.match(status.message, /SPDY.*WebSocket.*kubectl 1\.30 or newer/);
    assert.equal(apiserver.upgrades.length, before);
  });

  it('with spdy: unrecorded an SPDY exec is judged, then passed through to the API server', async () => {
    const denied = await rawUpgrade(
      '/kubernetes/legacy/api/v1/namespaces/default/pods/web-1/exec?command=ls&stdout=true',
      { upgrade: 'SPDY/3.1', 'x-stream-protocol-version': 'v4.channel.k8s.io' },
    );
    assert.equal(denied.status, 403);
    const before = apiserver.upgrades.length;
    const r = await rawUpgrade(
      '/kubernetes/legacy/api/v1/namespaces/default/pods/web-1/exec?command=echo&command=hi&stdout=true',
      { upgrade: 'SPDY/3.1', 'x-stream-protocol-version': 'v4.channel.k8s.io' },
    );
    // The stand-in speaks no SPDY: its own refusal comes back, so the request reached it.
    assert.equal(r.status, 400);
    assert.match(r.body, /only WebSocket/);
    const up = apiserver.upgrades.at(-1)!;
    assert.equal(apiserver.upgrades.length, before + 1);
    assert.equal(up.upgrade, 'spdy/3.1');
    assert.equal(up.method, 'POST');
    assert.ok(up.authorized, "Airlock's credential, not the caller's");
  });

  it('port-forward over SPDY is refused with a message asking for a kubectl that tunnels it over WebSocket', async () => {
    const r = await rawUpgrade('/kubernetes/cluster/api/v1/namespaces/default/pods/web-1/portforward', {
      upgrade: 'SPDY/3.1',
      'x-stream-protocol-version': 'portforward.k8s.io',
    });
    assert.equal(r.status, 403);
    assert.match(
      (JSON.parse(r.body) as { message: string }).message,
      /port-forward over SPDY.*kubectl 1\.31 or newer/,
    );
  });
});
