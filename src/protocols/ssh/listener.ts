/**
 * The SSH listener callers connect to (`ssh -p 12222 CONNECTION@airlock`). Airlock presents its
 * own host key, kept next to the store so it survives restarts.
 * https://www.rfc-editor.org/rfc/rfc4253
 */
import ssh2 from 'ssh2';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { hostKeyPath, loadOrCreateHostKey, publicKeyOf } from './host-keys.ts';
import { type AuditSink, type Logger, SshCallerSession } from './session.ts';

export interface SshListenerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  policy: Policy;
  gate: GatePort;
  tokens: Authenticator;
  audit?: AuditSink | undefined;
  recorder?: Recorder | undefined;
  log?: Logger | undefined;
  /** Airlock's host key file; default: next to the SQLite store, generated when missing. */
  hostKeyFile?: string | undefined;
  /** While a command is held, a line goes to the caller's stderr this often. */
  keepaliveMs?: number;
  upstreamTimeoutMs?: number;
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
  };
  const server = new ssh2.Server({ hostKeys: [key], ident: 'Airlock' }, (client, info) => {
    try {
      const session = new SshCallerSession(client, info, ctx, () => sessions.delete(session));
      sessions.add(session);
    } catch (err) {
      o.log?.error({ err: (err as Error).message }, 'ssh connection could not be set up');
      client.end();
    }
  });
  server.on('error', (err: Error) => o.log?.error({ err: err.message }, 'ssh listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log?.info({ host: o.host, port, fingerprint: hostKey.fingerprint }, 'ssh listener started');
  return {
    host: o.host,
    port,
    hostKey,
    sessions: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of [...sessions]) s.destroy();
      }),
  };
}
