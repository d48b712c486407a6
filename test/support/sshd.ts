/**
 * A private OpenSSH server for tests and the benchmark: its own host key, config, authorized
 * key and pid file in a temporary directory, on a free loopback port, logging in the account
 * the tests run as with a key only. Never touches the machine's own sshd configuration.
 *
 * sshd wants an absolute path to itself (it re-executes itself per connection), refuses
 * group/world-writable key files under StrictModes (the temp dir is ours, so StrictModes is
 * off), and, when started as root, needs its privilege separation directory to exist.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './processes.ts';

export const SSHD = process.env.SSHD_BIN ?? '/usr/sbin/sshd';

export interface PrivateSshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** The account commands run as. */
  readonly user: string;
  /** Private key (OpenSSH PEM) that logs in as `user`, and its path. */
  readonly clientKey: string;
  readonly clientKeyFile: string;
  /** The server's host key: `ssh-ed25519 AAAA…`, its SHA256 fingerprint, a known_hosts line. */
  readonly hostKey: string;
  readonly hostKeyFingerprint: string;
  readonly knownHostsLine: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

function keygen(file: string, comment: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr || r.error?.message}`);
}

/** `SHA256:…` of a public key file, as `ssh-keygen -l` prints it. */
export function fingerprintOfFile(pubFile: string): string {
  const r = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile], { encoding: 'utf8' });
  const m = /(SHA256:[A-Za-z0-9+/]+)/.exec(r.stdout);
  if (!m) throw new Error(`ssh-keygen -l failed: ${r.stderr}`);
  return m[1]!;
}

export function generateKey(
  dir: string,
  name: string,
): { file: string; privateKey: string; publicKey: string } {
  const file = join(dir, name);
  keygen(file, name);
  return {
    file,
    privateKey: readFileSync(file, 'utf8'),
    publicKey: readFileSync(`${file}.pub`, 'utf8').trim(),
  };
}

async function waitForBanner(port: number, proc: ManagedProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.hasExited()) throw new Error(`sshd exited before it listened:\n${proc.output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.setTimeout(2000);
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString('latin1').startsWith('SSH-2.0-'));
      });
      s.once('error', () => resolve(false));
      s.once('timeout', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface StartSshdOptions {
  /** Extra sshd_config lines. */
  config?: string;
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<PrivateSshd> {
  if (!existsSync(SSHD))
    throw new Error(`${SSHD} not found: install openssh-server (Debian: apt-get install openssh-server)`);
  const dir = mkdtempSync(join(tmpdir(), 'airlock-sshd-'));
  const user = userInfo().username;
  // sshd checks for its privilege separation directory when it runs as root, even when
  // privilege separation is not used for our connections.
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const host = generateKey(dir, 'host_key');
  const client = generateKey(dir, 'client_key');
  writeFileSync(join(dir, 'authorized_keys'), `${client.publicKey}\n`, { mode: 0o600 });
  const hostKeyFingerprint = fingerprintOfFile(`${host.file}.pub`);
  const [type, blob] = host.publicKey.split(/\s+/);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const configFile = join(dir, 'sshd_config');
    writeFileSync(
      configFile,
      `Port ${port}
ListenAddress 127.0.0.1
HostKey ${host.file}
PidFile ${join(dir, 'sshd.pid')}
AuthorizedKeysFile ${join(dir, 'authorized_keys')}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
AllowAgentForwarding yes
PermitUserEnvironment no
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel ERROR
${opts.config ?? ''}
`,
    );
    const proc = startProcess(SSHD, ['-D', '-e', '-f', configFile], { cwd: dir });
    try {
      await waitForBanner(port, proc);
    } catch (err) {
      await proc.stop('SIGKILL');
      if (attempt < 3 && /Address already in use|Bind to port/i.test(proc.output())) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return {
      host: '127.0.0.1',
      port,
      dir,
      user,
      clientKey: client.privateKey,
      clientKeyFile: client.file,
      hostKey: `${type} ${blob}`,
      hostKeyFingerprint,
      knownHostsLine: `[127.0.0.1]:${port} ${type} ${blob}`,
      process: proc,
      async stop() {
        await proc.stop('SIGTERM', 5000);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
