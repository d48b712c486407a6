/**
 * An Airlock gateway in front of a test's private sshd, and the OpenSSH `ssh` client pointed at
 * it: tokens go in through SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force, so no terminal is needed),
 * and Airlock's own host key is pinned in a known_hosts file the client checks strictly.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { startGateway } from '../../src/server/gateway.ts';
import { type ApiResponse, PRINCIPALS, type PrincipalName } from './gateway.ts';
import { type ManagedProcess, startProcess } from './processes.ts';
import type { PrivateSshd } from './sshd.ts';

export interface SshTestGateway {
  readonly dir: string;
  readonly apiUrl: string;
  readonly ssh: { readonly host: string; readonly port: number };
  readonly tokens: Record<PrincipalName, string>;
  readonly gateway: Awaited<ReturnType<typeof startGateway>>;
  /** Runs `ssh` through Airlock as `who`, logging in as `user` (a connection name). */
  sshClient(
    who: PrincipalName | 'nobody',
    user: string,
    args: readonly string[],
    extraOptions?: string[],
  ): ManagedProcess;
  /** Environment and options for other OpenSSH tools (sftp, scp). */
  clientOptions(who: PrincipalName | 'nobody'): { env: NodeJS.ProcessEnv; options: string[] };
  api<T = unknown>(method: string, path: string, body?: unknown, as?: PrincipalName): Promise<ApiResponse<T>>;
  close(): Promise<void>;
}

export interface SshGatewayOptions {
  /** YAML under `connections:` for extra connections (indented by four spaces per level). */
  extraConnections?: string;
  /** YAML `rules:` block. */
  rules: string;
  /** Extra keys for the `web` connection block (indented four spaces). */
  webExtra?: string;
  /** Extra top-level YAML (e.g. a `limits:` block). */
  extra?: string;
}

export async function startSshTestGateway(
  sshd: PrivateSshd,
  opts: SshGatewayOptions,
): Promise<SshTestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-sshgw-'));
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
    writeAskpass(dir, name, tokens[name]);
  }
  writeAskpass(dir, 'nobody', `alk_not_a_token_${randomBytes(8).toString('hex')}`);
  writeFileSync(join(dir, 'secrets', 'host.key'), sshd.clientKey, { mode: 0o600 });
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: false
  ssh: 127.0.0.1:0
store: sqlite:./data/airlock.db

identities:
  tokens:
${identities.join('\n')}

connections:
  web:
    type: ssh
    upstream:
      host: ${sshd.host}
      port: ${sshd.port}
      user: ${sshd.user}
      private_key: "\${file:./secrets/host.key}"
      host_key: "${sshd.hostKeyFingerprint}"
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${opts.webExtra ?? ''}
${opts.extraConnections ?? ''}
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
  const ssh = gateway.listeners.ssh;
  if (!ssh) throw new Error('the SSH listener did not start');
  // Pin Airlock's own host key, so the client proves it talks to this gateway.
  const { readFileSync } = await import('node:fs');
  const pub = readFileSync(join(dir, 'data', 'ssh_host_ed25519_key.pub'), 'utf8')
    .trim()
    .split(/\s+/);
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${ssh.port} ${pub[0]} ${pub[1]}\n`);

  const clientOptions = (who: PrincipalName | 'nobody') => ({
    env: {
      ...process.env,
      SSH_ASKPASS: join(dir, `askpass-${who}`),
      SSH_ASKPASS_REQUIRE: 'force',
      DISPLAY: process.env.DISPLAY ?? ':0',
    },
    options: [
      '-F',
      '/dev/null',
      '-o',
      `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'PreferredAuthentications=password',
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      'NumberOfPasswordPrompts=1',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'ConnectTimeout=20',
    ],
  });

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
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed as T, text };
  };

  let closed = false;
  return {
    dir,
    apiUrl,
    ssh,
    tokens,
    gateway,
    clientOptions,
    sshClient(who, user, args, extraOptions = []) {
      const { env, options } = clientOptions(who);
      return startProcess(
        'ssh',
        // ssh keeps the first value it sees for an option, so the test's own come first.
        [...extraOptions, ...options, '-p', String(ssh.port), `${user}@127.0.0.1`, ...args],
        { env },
      );
    },
    api,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await gateway.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function writeAskpass(dir: string, who: string, token: string): void {
  writeFileSync(join(dir, 'secrets', `${who}.askpass-token`), token, { mode: 0o600 });
  writeFileSync(
    join(dir, `askpass-${who}`),
    `#!/bin/sh\ncat '${join(dir, 'secrets', `${who}.askpass-token`)}'\n`,
    {
      mode: 0o700,
    },
  );
}
