/**
 * `airlock kubeconfig CONNECTION`: a kubeconfig whose cluster is the Kubernetes connection on
 * Airlock's HTTP listener and whose user is the caller's Airlock token, so plain kubectl works
 * through Airlock. The proxy URL is asked from the API (which also checks the token and that the
 * connection exists) unless `--server` names it.
 * https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { AirlockError } from '../core/errors.ts';
import { apiClient } from './client.ts';

export interface KubeconfigOptions {
  readonly connection: string;
  /** `http://HOST:PORT/kubernetes/NAME` */
  readonly server: string;
  readonly token: string;
  readonly namespace?: string | undefined;
  /** PEM of the CA that signed Airlock's certificate, for an https server. */
  readonly caPem?: string | undefined;
  readonly insecureSkipTlsVerify?: boolean | undefined;
}

export function kubeconfigYaml(o: KubeconfigOptions): string {
  const name = `airlock-${o.connection}`;
  return stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name,
          cluster: {
            server: o.server,
            ...(o.caPem ? { 'certificate-authority-data': Buffer.from(o.caPem).toString('base64') } : {}),
            ...(o.insecureSkipTlsVerify ? { 'insecure-skip-tls-verify': true } : {}),
          },
        },
      ],
      users: [{ name, user: { token: o.token } }],
      contexts: [
        { name, context: { cluster: name, user: name, ...(o.namespace ? { namespace: o.namespace } : {}) } },
      ],
      'current-context': name,
      preferences: {},
    },
    // Folding a long base64 scalar would put spaces into it.
    { lineWidth: 0 },
  );
}

interface ConnectionsView {
  connections: { name: string; type: string; http?: { url: string } }[];
}

export async function kubeconfigFor(
  connection: string,
  o: {
    server?: string | undefined;
    namespace?: string | undefined;
    caFile?: string | undefined;
    insecureSkipTlsVerify?: boolean | undefined;
  },
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const token = env.AIRLOCK_TOKEN;
  if (!token)
    throw new AirlockError('AIRLOCK_E_TOKEN_MISSING', 'AIRLOCK_TOKEN is not set', {
      hint: 'export AIRLOCK_TOKEN=<your Airlock token>; it becomes the kubeconfig user',
    });
  let server = o.server?.replace(/\/+$/, '');
  if (server === undefined) {
    const { connections } = await apiClient(env).request<ConnectionsView>('GET', '/api/v1/connections');
    const c = connections.find((x) => x.name === connection);
    if (c?.type !== 'kubernetes') {
      const names = connections.filter((x) => x.type === 'kubernetes').map((x) => x.name);
      throw new AirlockError(
        'AIRLOCK_E_CONNECTION_UNKNOWN',
        `there is no kubernetes connection "${connection}"`,
        {
          hint:
            names.length > 0
              ? `kubernetes connections: ${names.join(', ')}`
              : 'no kubernetes connections are configured',
        },
      );
    }
    if (!c.http)
      throw new AirlockError('AIRLOCK_E_CONNECTION_UNKNOWN', 'the gateway runs no HTTP listener', {
        hint: 'set listen.http in the policy, or pass --server http://HOST:PORT/kubernetes/NAME',
      });
    server = c.http.url;
  } else if (!/\/kubernetes\/[^/]+$/.test(server)) server = `${server}/kubernetes/${connection}`;
  if (server.startsWith('http:'))
    process.stderr.write(
      'warning: kubectl sends tokens only over https; give the gateway a certificate (tls: in the policy)\n',
    );
  return kubeconfigYaml({
    connection,
    server,
    token,
    namespace: o.namespace,
    caPem: o.caFile ? readFileSync(o.caFile, 'utf8') : undefined,
    insecureSkipTlsVerify: o.insecureSkipTlsVerify,
  });
}

export function registerKubeconfigCommand(program: Command): void {
  program
    .command('kubeconfig')
    .description('write a kubeconfig that sends kubectl through Airlock with your token')
    .argument('<connection>', 'kubernetes connection name')
    .option('--server <url>', 'Airlock HTTP listener URL (default: asked from the API)')
    .option('-n, --namespace <namespace>', 'default namespace of the context')
    .option('--ca-file <file>', "PEM of the CA that signed the gateway's certificate (embedded)")
    .option('--insecure-skip-tls-verify', "do not verify the gateway's certificate (test setups only)")
    .option('-o, --output <file>', 'write to this file (mode 0600) instead of stdout')
    .action(
      async (
        connection: string,
        o: {
          server?: string;
          namespace?: string;
          output?: string;
          caFile?: string;
          insecureSkipTlsVerify?: boolean;
        },
      ) => {
        const text = await kubeconfigFor(connection, o);
        if (o.output) {
          writeFileSync(o.output, text, { mode: 0o600 });
          process.stderr.write(`wrote ${o.output}; use it with: KUBECONFIG=${o.output} kubectl get pods\n`);
        } else process.stdout.write(text);
      },
    );
}
