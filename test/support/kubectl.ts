/**
 * The real kubectl in the Kubernetes tests: a private home holding the kubeconfig `airlock
 * kubeconfig` writes for the agent (trusting the test gateway's own CA) and, for comparisons,
 * one straight to a stand-in API server; kubectl started on either with that home.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeconfigFor } from '../../src/cli/kubeconfig.ts';
import type { HttpTestGateway } from './http-gateway.ts';
import type { KubeApiServer } from './kube-apiserver.ts';
import { type ManagedProcess, startProcess } from './processes.ts';

/** The `cluster` connection (YAML under `connections:`) to `apiserver` with the token in secrets/cluster.token. */
export function clusterConnection(apiserver: KubeApiServer): string {
  return `  cluster:
    type: kubernetes
    upstream: { url: "${apiserver.url}" }
    credential: { type: bearer, token: "\${file:./secrets/cluster.token}" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }`;
}

export interface KubectlHome {
  readonly dir: string;
  /** Through Airlock's `cluster` connection as the agent. */
  readonly kubeconfig: string;
  /** Straight to the API server given, if one was. */
  readonly directConfig: string;
  /** kubectl on `config` (stdin left open). */
  kubectl(config: string, args: readonly string[]): ManagedProcess;
  remove(): void;
}

export async function kubectlHome(
  prefix: string,
  gw: HttpTestGateway,
  direct?: KubeApiServer,
): Promise<KubectlHome> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    await kubeconfigFor('cluster', { caFile: join(gw.dir, 'tls', 'cert.pem') }, {
      AIRLOCK_URL: gw.apiUrl,
      AIRLOCK_TOKEN: gw.tokens.agent,
    } as NodeJS.ProcessEnv),
    { mode: 0o600 },
  );
  const directConfig = join(dir, 'direct');
  if (direct)
    writeFileSync(
      directConfig,
      `apiVersion: v1
kind: Config
clusters: [{ name: direct, cluster: { server: "${direct.url}" } }]
users: [{ name: direct, user: {} }]
contexts: [{ name: direct, context: { cluster: direct, user: direct, namespace: default } }]
current-context: direct
`,
      { mode: 0o600 },
    );
  return {
    dir,
    kubeconfig,
    directConfig,
    kubectl: (config, args) =>
      startProcess('kubectl', ['--kubeconfig', config, '--cache-dir', join(dir, 'cache'), ...args], {
        env: { ...process.env, HOME: dir, KUBECONFIG: config },
      }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
