/**
 * Airlock's SSH client to the target host: logs in with the credential the policy holds and
 * refuses any host key other than the pinned one (the check runs during key exchange, before
 * any credential is sent). https://www.rfc-editor.org/rfc/rfc4253#section-8
 */
import { Socket } from 'node:net';
import ssh2, { type ConnectConfig } from 'ssh2';
import { AirlockError } from '../../core/errors.ts';
import type { SshConnection } from '../../core/policy/connections/ssh.ts';
import { fingerprint, parsePin } from './host-keys.ts';
import { coalesceWrites } from './wire.ts';

export interface UpstreamOptions {
  readonly connectTimeoutMs?: number;
  /** Called when the host presents a key no pin matches (before the refusal is thrown). */
  readonly onHostKeyMismatch?: (presented: string) => void;
}

export async function connectUpstream(
  connection: SshConnection,
  opts: UpstreamOptions = {},
): Promise<ssh2.Client> {
  const up = connection.upstream;
  const pins = up.hostKeys.map(parsePin);
  let presented: string | undefined;
  let mismatch = false;
  const config: ConnectConfig = {
    host: up.host,
    port: up.port,
    username: up.user,
    readyTimeout: opts.connectTimeoutMs ?? 20_000,
    keepaliveInterval: 15_000,
    hostVerifier: (key: Buffer) => {
      presented = fingerprint(key);
      mismatch = !pins.some((p) => p.matches(key));
      if (mismatch) opts.onHostKeyMismatch?.(presented);
      return !mismatch;
    },
  };
  // Secrets are read at the point of use, so a rotated key file needs no restart.
  if (up.privateKey) config.privateKey = up.privateKey.reveal();
  if (up.passphrase) config.passphrase = up.passphrase.reveal();
  if (up.password) config.password = up.password.reveal();

  // Airlock opens the socket itself so that its writes are gathered like the callers' (wire.ts).
  const socket = coalesceWrites(new Socket());
  socket.on('error', () => {}); // reported by the client as a connection error
  config.sock = socket;
  const client = new ssh2.Client();
  return new Promise<ssh2.Client>((resolve, reject) => {
    const fail = (err: Error & { level?: string }) => {
      client.removeAllListeners('ready');
      client.end();
      if (mismatch) {
        reject(
          new AirlockError(
            'AIRLOCK_E_HOST_KEY_MISMATCH',
            `${connection.name}: the host ${up.host}:${up.port} presented host key ${presented}, which is not the one pinned in the policy`,
            {
              hint: 'if the host key was rotated on purpose, update upstream.host_key for this connection; otherwise someone may be intercepting the connection',
            },
          ),
        );
      } else if (err.level === 'client-authentication') {
        reject(
          new AirlockError(
            'AIRLOCK_E_UPSTREAM_AUTH',
            `${connection.name}: the host ${up.host}:${up.port} refused Airlock's login as ${up.user}`,
            { hint: "check the connection's user and key, and the host's authorized_keys" },
          ),
        );
      } else {
        reject(
          new AirlockError(
            'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
            `${connection.name}: the host ${up.host}:${up.port} could not be reached over SSH (${err.message})`,
            { hint: 'check that the host is up and that Airlock can reach it' },
          ),
        );
      }
    };
    client.once('error', fail);
    client.once('ready', () => {
      client.off('error', fail);
      // Later errors surface on the channels that use the client; keep them from crashing us.
      client.on('error', () => {});
      resolve(client);
    });
    try {
      client.connect(config);
      socket.connect(up.port, up.host);
    } catch (err) {
      fail(err as Error);
    }
  });
}
