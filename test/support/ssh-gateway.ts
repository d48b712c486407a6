/**
 * An Airlock gateway in front of a test's private sshd, and the OpenSSH `ssh` client pointed at
 * it: tokens go in through SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force, so no terminal is needed),
 * and Airlock's own host key is pinned in a known_hosts file the client checks strictly.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { startGateway } from '../../src/server/gateway.ts';
import { type ApiResponse, apiUrlOf, makePolicyDir, PRINCIPALS, type PrincipalName } from './policy-dir.ts';
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

/**
 * An `ssh` connection (YAML under `connections:`) to `sshd` with Airlock's key from
 * secrets/host.key, pinning the host key given (by default the server's own).
 */
export function sshConnection(
  sshd: PrivateSshd,
  name = 'web',
  o: { hostKey?: string; default?: 'allow' | 'review' | 'deny' } = {},
): string {
  return `  ${name}:
    type: ssh
    upstream:
      host: ${sshd.host}
      port: ${sshd.port}
      user: ${sshd.user}
      private_key: "\${file:./secrets/host.key}"
      host_key: "${o.hostKey ?? sshd.hostKeyFingerprint}"
    default: ${o.default ?? 'review'}`;
}

export async function startSshTestGateway(
  sshd: PrivateSshd,
  opts: SshGatewayOptions,
): Promise<SshTestGateway> {
  const files = makePolicyDir('airlock-sshgw-', PRINCIPALS);
  const { dir, tokens } = files;
  for (const [name, token] of Object.entries(tokens)) writeAskpass(dir, name, token);
  writeAskpass(dir, 'nobody', `alk_not_a_token_${randomBytes(8).toString('hex')}`);
  files.secret('host.key', sshd.clientKey);
  files.writePolicy(
    { listen: ['ssh'] },
    `connections:
${sshConnection(sshd)}
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
${opts.webExtra ?? ''}
${opts.extraConnections ?? ''}
${opts.rules}
${opts.extra ?? ''}`,
  );
  const gateway = await files.start();
  const ssh = gateway.listeners.ssh;
  if (!ssh) {
    await files.close(gateway);
    throw new Error('the SSH listener did not start');
  }
  // Pin Airlock's own host key, so the client proves it talks to this gateway.
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

  return {
    dir,
    apiUrl: apiUrlOf(gateway),
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
    api: files.api(gateway),
    close: () => files.close(gateway),
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
