/**
 * The MySQL listener callers connect to (MySQL and MariaDB clients).
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import { createServer, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { generateRsaKeys } from './auth.ts';
import { type AuditSink, type Logger, MysqlSession } from './session.ts';

export interface MysqlListenerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  policy: Policy;
  gate: GatePort;
  tokens: Authenticator;
  /** Where refusals made before the Gate is asked are audited. */
  audit?: AuditSink | undefined;
  /** PEM strings; when absent the handshake does not offer TLS. */
  tls?: { cert: string; key: string };
  log?: Logger;
  limits?: Limits;
  /** Session recordings; none are made without one. */
  recorder?: Recorder | undefined;
  /** Shown to clients in the handshake (they read features from it). */
  serverVersion?: string;
}

export interface MysqlListener {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
  sessions(): number;
}

export async function startMysqlListener(o: MysqlListenerOptions): Promise<MysqlListener> {
  const sessions = new Set<MysqlSession>();
  const tls = o.tls ? createSecureContext({ cert: o.tls.cert, key: o.tls.key }) : undefined;
  // caching_sha2_password on plain connections: callers encrypt their token with this key.
  const rsa = generateRsaKeys();
  let nextId = 1;
  const ctx = {
    policy: o.policy,
    gate: o.gate,
    tokens: o.tokens,
    audit: o.audit,
    tls,
    rsa,
    log: o.log,
    limits: o.limits,
    recorder: o.recorder,
    ...(o.limits ? { handshakeTimeoutMs: o.limits.config.startupTimeoutMs } : {}),
    serverVersion: o.serverVersion ?? '8.0.0-Airlock',
    connectionId: () => {
      nextId = (nextId % 0x7fffffff) + 1;
      return nextId;
    },
  };
  const server = createServer((socket: Socket) => {
    try {
      const session = new MysqlSession(socket, ctx, () => sessions.delete(session));
      sessions.add(session);
    } catch (err) {
      o.log?.error({ err: (err as Error).message }, 'mysql connection could not be set up');
      socket.destroy();
    }
  });
  server.on('error', (err) => o.log?.error({ err: err.message }, 'mysql listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log?.info({ host: o.host, port, tls: Boolean(tls) }, 'mysql listener started');
  return {
    port,
    host: o.host,
    sessions: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of [...sessions]) s.destroy();
      }),
  };
}
