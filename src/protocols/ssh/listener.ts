/**
 * The SSH listener callers connect to (`ssh -p 12222 CONNECTION@airlock`). Airlock presents its
 * own host key, kept next to the store so it survives restarts.
 * https://www.rfc-editor.org/rfc/rfc4253
 */
import { createRequire } from 'node:module';
import { createServer, type Socket } from 'node:net';
import ssh2, { type Algorithms } from 'ssh2';
import type { AuditSink, ListenerOptions } from '../../core/adapter-ports.ts';
import type { Limits } from '../../core/limits/limits.ts';
import { listenOn } from '../../core/session-listener.ts';
import { hostKeyPath, loadOrCreateHostKey, publicKeyOf } from './host-keys.ts';
import { SshCallerSession } from './session.ts';
import { coalesceWrites } from './wire.ts';

/**
 * Without ssh2's optional native addon (built by `npm install` where a C++ toolchain is present),
 * chacha20-poly1305 runs a cipher set up per packet and Poly1305 in WebAssembly: about 2.5 times
 * the CPU of AES-GCM and 1.6 times that of AES-CTR with HMAC-SHA2, which use the CPU's AES
 * instructions. OpenSSH clients prefer chacha when offered, so then it is not offered to callers;
 * AES-GCM and AES-CTR remain for every client. With the addon all ciphers run in OpenSSL and chacha
 * stays, so callers get the cipher they would get from sshd.
 * https://www.rfc-editor.org/rfc/rfc4253#section-7.1
 */
const CALLER_ALGORITHMS: Algorithms = sshCryptoAddonLoaded()
  ? {}
  : { cipher: { append: [], prepend: [], remove: 'chacha20-poly1305@openssh.com' } };

function sshCryptoAddonLoaded(): boolean {
  try {
    // ssh2 has no "exports" map; this module says whether its addon loaded.
    return (
      (createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean })
        .bindingAvailable === true
    );
  } catch {
    return false;
  }
}

export interface SshListenerOptions extends ListenerOptions {
  audit?: AuditSink | undefined;
  /** Airlock's host key file; default: next to the SQLite store, generated when missing. */
  hostKeyFile?: string | undefined;
  /** While a command is held, a line goes to the caller's stderr this often. */
  keepaliveMs?: number;
  upstreamTimeoutMs?: number;
  /** Connection slots, the startup (slow-loris) and write (never reads) timeouts. */
  limits?: Limits | undefined;
}

export interface SshListener {
  readonly host: string;
  readonly port: number;
  /** Airlock's host key as `type base64`, and its SHA256 fingerprint (for callers' known_hosts). */
  readonly hostKey: { readonly line: string; readonly fingerprint: string };
  sessions(): number;
  close(): Promise<void>;
}

export async function startSshListener(o: SshListenerOptions): Promise<SshListener> {
  const keyFile = o.hostKeyFile ?? hostKeyPath(o.policy);
  const { key, created } = loadOrCreateHostKey(keyFile);
  const hostKey = publicKeyOf(key);
  if (created) o.log?.info({ file: keyFile, fingerprint: hostKey.fingerprint }, 'ssh host key generated');
  const sessions = new Set<SshCallerSession>();
  const ctx = {
    policy: o.policy,
    gate: o.gate,
    tokens: o.tokens,
    audit: o.audit,
    recorder: o.recorder,
    log: o.log,
    keepaliveMs: o.keepaliveMs ?? 15_000,
    upstreamTimeoutMs: o.upstreamTimeoutMs,
    limits: o.limits,
  };
  const startupMs = o.limits?.config.startupTimeoutMs;
  // Raw sockets by peer address: ssh2 only reports a caller once its identification line
  // arrived, and cannot drop a socket whose peer stops reading, so Airlock keeps the socket.
  const sockets = new Map<string, { socket: Socket; startup?: NodeJS.Timeout | undefined }>();
  const server = new ssh2.Server(
    { hostKeys: [key], ident: 'Airlock', algorithms: CALLER_ALGORITHMS },
    (client, info) => {
      const raw = sockets.get(`${info.ip}:${info.port}`);
      const wire = {
        started: () => {
          clearTimeout(raw?.startup);
          if (raw) raw.startup = undefined;
        },
        destroy: () => raw?.socket.destroy(),
      };
      try {
        const session = new SshCallerSession(client, info, ctx, () => sessions.delete(session), wire);
        sessions.add(session);
      } catch (err) {
        o.log?.error({ err: (err as Error).message }, 'ssh connection could not be set up');
        client.end();
        wire.destroy();
      }
    },
  );
  const listener = createServer((socket) => {
    const id = `${socket.remoteAddress}:${socket.remotePort}`;
    const entry: { socket: Socket; startup?: NodeJS.Timeout | undefined } = { socket };
    // Slow loris: key exchange and sign-in must be done within the startup timeout.
    if (startupMs)
      entry.startup = setTimeout(() => {
        o.log?.warn(
          { source: id, ms: startupMs },
          'ssh caller did not finish key exchange and sign-in in time; cut off',
        );
        socket.destroy();
      }, startupMs);
    sockets.set(id, entry);
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(entry.startup);
      if (sockets.get(id) === entry) sockets.delete(id);
    });
    server.injectSocket(coalesceWrites(socket));
  });
  server.on('error', (err: Error) => o.log?.error({ err: err.message }, 'ssh listener error'));
  listener.on('error', (err: Error) => o.log?.error({ err: err.message }, 'ssh listener error'));
  const port = await listenOn(listener, o.port, o.host);
  o.log?.info({ host: o.host, port, fingerprint: hostKey.fingerprint }, 'ssh listener started');
  return {
    host: o.host,
    port,
    hostKey,
    sessions: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const s of [...sessions]) s.destroy();
        // Callers that do not take the disconnect (or never got past the handshake) are dropped.
        setTimeout(() => {
          for (const { socket } of sockets.values()) socket.destroy();
        }, 2000).unref();
      }),
  };
}
