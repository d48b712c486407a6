/**
 * A gateway for the HTTP, Kubernetes and Git tests: no PostgreSQL, the HTTP listener on a free
 * port, the test principals' tokens by `${file:...}` reference, and connections and rules
 * given as YAML by the test.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { startGateway } from '../../src/server/gateway.ts';
import { PRINCIPALS, type PrincipalName } from './gateway.ts';

export interface HttpTestGateway {
  readonly dir: string;
  readonly apiUrl: string;
  /** `http://127.0.0.1:PORT` of the HTTP listener. */
  readonly proxyUrl: string;
  readonly tokens: Record<PrincipalName, string>;
  readonly gateway: Awaited<ReturnType<typeof startGateway>>;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    as?: PrincipalName,
  ): Promise<{ status: number; body: T }>;
  /** Polls until a pending request on `connection` exists, and returns it. */
  pendingRequest(
    connection: string,
    summary?: RegExp,
  ): Promise<{ id: number; summary: string; [k: string]: unknown }>;
  close(): Promise<void>;
}

/**
 * `connections` is the YAML under `connections:` (indented two spaces), `rules` a `rules:` block.
 * `secrets` are written to secrets/NAME (mode 0600) for `${file:./secrets/NAME}` references.
 */
export async function startHttpTestGateway(opts: {
  connections: string;
  rules: string;
  secrets?: Record<string, string>;
  /** Give the gateway a self-signed certificate for 127.0.0.1 (tls/cert.pem is its own CA). */
  tls?: boolean;
  /** Extra top-level YAML (e.g. a `limits:` block). */
  extra?: string;
}): Promise<HttpTestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-httpgw-'));
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const tokens = {} as Record<PrincipalName, string>;
  const identities: string[] = [];
  for (const [name, p] of Object.entries(PRINCIPALS) as [
    PrincipalName,
    (typeof PRINCIPALS)[PrincipalName],
  ][]) {
    tokens[name] = `alk_test_${name}_${randomBytes(24).toString('base64url')}`;
    writeFileSync(join(dir, 'secrets', `${name}.token`), `${tokens[name]}\n`, { mode: 0o600 });
    identities.push(
      `    - { name: ${name}, token: "\${file:./secrets/${name}.token}", kind: ${p.kind}, groups: [${p.groups.join(', ')}] }`,
    );
  }
  for (const [name, value] of Object.entries(opts.secrets ?? {}))
    writeFileSync(join(dir, 'secrets', name), value, { mode: 0o600 });
  let tlsBlock = '';
  if (opts.tls) {
    mkdirSync(join(dir, 'tls'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=127.0.0.1',
        '-days',
        '1',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout',
        join(dir, 'tls', 'key.pem'),
        '-out',
        join(dir, 'tls', 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    tlsBlock = 'tls: { cert: "${file:./tls/cert.pem}", key: "${file:./tls/key.pem}" }\n';
  }
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: false
  http: 127.0.0.1:0
store: sqlite:./data/airlock.db
${tlsBlock}identities:
  tokens:
${identities.join('\n')}
connections:
${opts.connections}
${opts.rules}
${opts.extra ?? ''}
`,
  );
  const policy = loadPolicyFile(policyFile);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({ policy });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const apiUrl = gateway.api.url.replace(/\/$/, '');
  const http = gateway.listeners.http;
  if (!http) throw new Error('the HTTP listener did not start');
  const api = async <T>(method: string, path: string, body?: unknown, as?: PrincipalName) => {
    const headers: Record<string, string> = {};
    if (as !== undefined) headers.authorization = `Bearer ${tokens[as]}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(apiUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  return {
    dir,
    apiUrl,
    proxyUrl: `${opts.tls ? 'https' : 'http'}://${http.host}:${http.port}`,
    tokens,
    gateway,
    api,
    async pendingRequest(connection, summary) {
      for (;;) {
        const r = await api<{
          requests: { id: number; connection: string; status: string; summary: string }[];
        }>('GET', '/api/v1/requests?status=pending', undefined, 'alice');
        const found = r.body.requests.find(
          (q) =>
            q.connection === connection && q.status === 'pending' && (!summary || summary.test(q.summary)),
        );
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      try {
        await gateway.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
