/**
 * A gateway for the HTTP, Kubernetes and Git tests: no PostgreSQL, the HTTP listener on a free
 * port, the test principals' tokens by `${file:...}` reference, and connections and rules
 * given as YAML by the test.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { startGateway } from '../../src/server/gateway.ts';
import { pendingRequestWhere } from './eventually.ts';
import { apiUrlOf, makePolicyDir, PRINCIPALS, type PrincipalName } from './policy-dir.ts';
import { selfSignedCert } from './tls.ts';

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
  const files = makePolicyDir('airlock-httpgw-', PRINCIPALS);
  const { dir } = files;
  for (const [name, value] of Object.entries(opts.secrets ?? {})) files.secret(name, value);
  let tlsBlock = '';
  if (opts.tls) {
    mkdirSync(join(dir, 'tls'));
    selfSignedCert(join(dir, 'tls'), '127.0.0.1');
    tlsBlock = 'tls: { cert: "${file:./tls/cert.pem}", key: "${file:./tls/key.pem}" }\n';
  }
  files.writePolicy(
    { listen: ['http'], top: tlsBlock },
    `connections:
${opts.connections}
${opts.rules}
${opts.extra ?? ''}`,
  );
  const gateway = await files.start();
  const http = gateway.listeners.http;
  if (!http) {
    await files.close(gateway);
    throw new Error('the HTTP listener did not start');
  }
  const api = files.api(gateway);
  return {
    dir,
    apiUrl: apiUrlOf(gateway),
    proxyUrl: `${opts.tls ? 'https' : 'http'}://${http.host}:${http.port}`,
    tokens: files.tokens,
    gateway,
    api,
    pendingRequest: (connection, summary) =>
      pendingRequestWhere(
        api,
        `a pending request on ${connection}${summary ? ` matching ${summary}` : ''}`,
        (q: { id: number; connection: string; status: string; summary: string }) =>
          q.connection === connection && q.status === 'pending' && (!summary || summary.test(q.summary)),
        50,
      ),
    close: () => files.close(gateway),
  };
}
