/**
 * A stand-in Kubernetes API server for kubectl: the discovery documents kubectl reads (/api,
 * /apis, /api/v1, /version), pods in namespaces kept in memory (list with field selectors,
 * get, create, delete, watch), Table responses for `kubectl get`, and `Status` errors. It checks
 * the bearer token Airlock injects, like a real API server would.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

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
    const authorized = req.headers.authorization === `Bearer ${token}`;
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
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
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
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
