/**
 * A stand-in Kubernetes API server for kubectl: the discovery documents kubectl reads (/api,
 * /apis, /api/v1, /version), pods in namespaces kept in memory (list with field selectors,
 * get, create, delete, watch), Table responses for `kubectl get`, and `Status` errors. It checks
 * the bearer token Airlock injects, like a real API server would.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/
 *
 * `exec` and `attach` speak the WebSocket channel protocol kubectl 1.30+ uses
 * (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the command runs here as a local process (attach
 * runs `cat`, standing in for the container's main process), stdin/stdout/stderr on channels
 * 0/1/2, the exit as a `Status` on channel 3, resizes on 4, v5 close signals on 255. SPDY
 * upgrades are answered as a server without SPDY support would.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { servePortForward } from './kube-portforward.ts';

interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
  };
  spec: Record<string, unknown>;
  status: { phase: string };
}

export interface KubeApiServer {
  readonly url: string;
  /** Every request: method, URL and whether the expected token was presented. */
  readonly seen: { method: string; url: string; authorized: boolean }[];
  /** Every upgrade request (exec, attach, port-forward), in order. */
  readonly upgrades: {
    method: string;
    url: string;
    upgrade: string;
    protocol: string;
    authorized: boolean;
  }[];
  /** Commands that were started by exec, in order. */
  readonly execs: { pod: string; command: string[] }[];
  /** Pod ports port-forward connections were made to, in order. */
  readonly forwarded: { port: number }[];
  /** Port-forward connections to the pod's `podPort` go to 127.0.0.1:`localPort`. */
  forwardPort(podPort: number, localPort: number): void;
  /** Terminal sizes received on the resize channel. */
  readonly resizes: { width: number; height: number }[];
  addPod(namespace: string, name: string): void;
  addSecret(namespace: string, name: string, data: Record<string, string>): void;
  pods(namespace: string): string[];
  close(): Promise<void>;
}

const RESOURCES = [
  {
    name: 'pods',
    singularName: 'pod',
    namespaced: true,
    kind: 'Pod',
    shortNames: ['po'],
    verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  },
  { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
  { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
  {
    name: 'namespaces',
    singularName: 'namespace',
    namespaced: false,
    kind: 'Namespace',
    shortNames: ['ns'],
    verbs: ['create', 'delete', 'get', 'list', 'watch'],
  },
  {
    name: 'secrets',
    singularName: 'secret',
    namespaced: true,
    kind: 'Secret',
    verbs: ['create', 'delete', 'get', 'list', 'watch'],
  },
];

/** `token` is the bearer token it requires; '' lets every request in (kubectl talking to it directly). */
export async function startKubeApiServer(token: string): Promise<KubeApiServer> {
  const store = new Map<string, Map<string, Pod>>();
  let rv = 100;
  const seen: KubeApiServer['seen'] = [];
  const secrets = new Map<
    string,
    { metadata: { name: string; namespace: string; [k: string]: unknown } } & Record<string, unknown>
  >();
  const addPod = (
    namespace: string,
    name: string,
    spec: Record<string, unknown> = { containers: [{ name: 'main', image: 'busybox' }] },
  ) => {
    let ns = store.get(namespace);
    if (!ns) {
      ns = new Map();
      store.set(namespace, ns);
    }
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        uid: `uid-${name}-${rv}`,
        resourceVersion: String(++rv),
        creationTimestamp: new Date().toISOString(),
      },
      spec,
      status: { phase: 'Running' },
    };
    ns.set(name, pod);
    return pod;
  };

  const json = (res: ServerResponse, code: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const status = (res: ServerResponse, code: number, reason: string, message: string) =>
    json(res, code, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      code,
    });

  const table = (pods: Pod[]) => ({
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: String(rv) },
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name', priority: 0 },
      { name: 'Status', type: 'string', format: '', description: 'Phase', priority: 0 },
    ],
    rows: pods.map((p) => ({
      cells: [p.metadata.name, p.status.phase],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: p.metadata },
    })),
  });

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const authorized = token === '' || req.headers.authorization === `Bearer ${token}`;
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorized });
    if (!authorized) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const p = url.pathname;
    const wantsTable = /as=Table/.test(String(req.headers.accept ?? ''));
    if (p === '/version')
      return json(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0', platform: 'linux/amd64' });
    if (p === '/api')
      return json(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (p === '/apis') return json(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
    if (p === '/api/v1')
      return json(res, 200, { kind: 'APIResourceList', groupVersion: 'v1', resources: RESOURCES });
    const sm = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(p);
    if (sm && req.method === 'GET') {
      const list = [...secrets.values()].filter((x) => x.metadata.namespace === sm[1]);
      if (sm[2] === undefined)
        return json(res, 200, {
          kind: 'SecretList',
          apiVersion: 'v1',
          metadata: { resourceVersion: String(rv) },
          items: list,
        });
      const secret = list.find((x) => x.metadata.name === sm[2]);
      return secret ? json(res, 200, secret) : status(res, 404, 'NotFound', `secrets "${sm[2]}" not found`);
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/.exec(p);
    if (!m) return status(res, 404, 'NotFound', `the server could not find the requested resource (${p})`);
    const namespace = m[1]!;
    const name = m[2];
    const ns = store.get(namespace) ?? new Map<string, Pod>();
    if (name === undefined) {
      if (req.method === 'POST') {
        const obj = JSON.parse(body.toString()) as {
          metadata: { name: string };
          spec: Record<string, unknown>;
        };
        if (ns.has(obj.metadata.name))
          return status(res, 409, 'AlreadyExists', `pods "${obj.metadata.name}" already exists`);
        return json(res, 201, addPod(namespace, obj.metadata.name, obj.spec));
      }
      if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', 'method not allowed');
      const selector = url.searchParams.get('fieldSelector');
      const only = selector?.startsWith('metadata.name=')
        ? selector.slice('metadata.name='.length)
        : undefined;
      const pods = [...ns.values()].filter((pod) => only === undefined || pod.metadata.name === only);
      const watch = url.searchParams.get('watch');
      if (watch === '1' || watch === 'true') {
        // Nothing changes in this store while a watch is open: send what exists and stay open.
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        for (const pod of pods) res.write(`${JSON.stringify({ type: 'ADDED', object: pod })}\n`);
        return;
      }
      if (wantsTable) return json(res, 200, table(pods));
      return json(res, 200, {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(rv) },
        items: pods,
      });
    }
    const pod = ns.get(name);
    if (!pod) return status(res, 404, 'NotFound', `pods "${name}" not found`);
    if (req.method === 'GET') return json(res, 200, wantsTable ? table([pod]) : pod);
    if (req.method === 'DELETE') {
      ns.delete(name);
      return json(res, 200, pod);
    }
    return status(res, 405, 'MethodNotAllowed', 'method not allowed');
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks));
      } catch (err) {
        status(res, 500, 'InternalError', (err as Error).message);
      }
    });
  });
  const upgrades: KubeApiServer['upgrades'] = [];
  const execs: KubeApiServer['execs'] = [];
  const resizes: KubeApiServer['resizes'] = [];
  const forwarded: KubeApiServer['forwarded'] = [];
  const podPorts = new Map<number, number>();
  // '/' is outside the WebSocket token grammar `ws` checks, yet it is Kubernetes' protocol name.
  const tunnels = new WebSocketServer({ noServer: true });
  tunnels.on('headers', (h) => h.push('Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io'));
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) =>
      ['v5.channel.k8s.io', 'v4.channel.k8s.io'].find((p) => offered.has(p)) ?? false,
  });
  const refuse = (socket: Socket, code: number, reason: string, message: string) => {
    const text = JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      code,
    });
    socket.end(
      `HTTP/1.1 ${code} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
  };
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://x');
    const authorized = token === '' || req.headers.authorization === `Bearer ${token}`;
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    upgrades.push({
      method: req.method ?? '',
      url: req.url ?? '',
      upgrade,
      protocol: String(
        req.headers['sec-websocket-protocol'] ?? req.headers['x-stream-protocol-version'] ?? '',
      ),
      authorized,
    });
    if (!authorized) return refuse(socket, 401, 'Unauthorized', 'Unauthorized');
    const pf = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname);
    if (pf && upgrade === 'websocket') {
      if (!store.get(pf[1]!)?.has(pf[2]!))
        return refuse(socket, 404, 'NotFound', `pods "${pf[2]}" not found`);
      if (req.headers['sec-websocket-protocol'] !== 'SPDY/3.1+portforward.k8s.io')
        return refuse(socket, 400, 'BadRequest', 'port-forward needs SPDY/3.1+portforward.k8s.io');
      delete req.headers['sec-websocket-protocol'];
      tunnels.handleUpgrade(req, socket, head, (ws) => servePortForward(ws, podPorts, forwarded));
      return;
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach)$/.exec(url.pathname);
    if (!m)
      return refuse(
        socket,
        404,
        'NotFound',
        `the server could not find the requested resource (${url.pathname})`,
      );
    if (!store.get(m[1]!)?.has(m[2]!)) return refuse(socket, 404, 'NotFound', `pods "${m[2]}" not found`);
    if (upgrade !== 'websocket')
      return refuse(socket, 400, 'BadRequest', 'this stand-in speaks only WebSocket streams');
    const command = m[3] === 'attach' ? ['cat'] : url.searchParams.getAll('command');
    wss.handleUpgrade(req, socket, head, (ws) =>
      runStream(ws, m[2]!, command, url.searchParams, m[3] === 'exec'),
    );
  });
  const runStream = (ws: WebSocket, pod: string, command: string[], q: URLSearchParams, isExec: boolean) => {
    const v5 = ws.protocol === 'v5.channel.k8s.io';
    const tty = q.get('tty') === 'true';
    if (isExec) execs.push({ pod, command });
    const send = (channel: number, data: Buffer | string) => {
      if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.of(channel), Buffer.from(data)]));
    };
    let finished = false;
    const finish = (status: Record<string, unknown>) => {
      if (finished) return;
      finished = true;
      send(3, JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, ...status }));
      ws.close(1000);
    };
    if (command.length === 0)
      return finish({
        status: 'Failure',
        reason: 'BadRequest',
        message: 'you must specify at least 1 command',
      });
    const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {});
    if (q.get('stdin') !== 'true') child.stdin.end();
    child.stdout.on('data', (d: Buffer) => send(1, d));
    child.stderr.on('data', (d: Buffer) => send(tty ? 1 : 2, d));
    ws.on('message', (data: Buffer) => {
      if (data[0] === 0) child.stdin.write(data.subarray(1));
      else if (data[0] === 4) {
        for (const text of data
          .subarray(1)
          .toString()
          .split(/(?<=})/)) {
          if (text.trim() === '') continue;
          const r = JSON.parse(text) as { Width: number; Height: number };
          resizes.push({ width: r.Width, height: r.Height });
        }
      } else if (v5 && data[0] === 255 && data[1] === 0) child.stdin.end();
    });
    ws.on('close', () => {
      if (child.exitCode === null) child.kill();
    });
    child.on('error', (err) =>
      finish({ status: 'Failure', reason: 'InternalError', message: `exec failed: ${err.message}` }),
    );
    child.on('close', (code) => {
      if (code === null) return;
      if (code === 0) return finish({ status: 'Success' });
      finish({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${code}`,
        details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
      });
    });
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    upgrades,
    execs,
    resizes,
    forwarded,
    forwardPort: (podPort, localPort) => void podPorts.set(podPort, localPort),
    addPod: (namespace, name) => void addPod(namespace, name),
    addSecret(namespace, name, data) {
      const encoded = Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      );
      secrets.set(`${namespace}/${name}`, {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: {
          name,
          namespace,
          uid: `uid-${name}`,
          resourceVersion: String(++rv),
          creationTimestamp: new Date().toISOString(),
          annotations: {
            'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
              kind: 'Secret',
              data: encoded,
            }),
          },
        },
        data: encoded,
      });
    },
    pods: (namespace) => [...(store.get(namespace)?.keys() ?? [])],
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        for (const ws of tunnels.clients) ws.terminate();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
