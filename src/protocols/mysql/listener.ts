/**
 * The MySQL listener callers connect to (MySQL and MariaDB clients).
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import { createSecureContext } from 'node:tls';
import type { AuditSink, ListenerOptions } from '../../core/adapter-ports.ts';
import { type SessionListener, startSessionListener } from '../../core/session-listener.ts';
import { generateRsaKeys } from './auth.ts';
import { MysqlSession } from './session.ts';

export interface MysqlListenerOptions extends ListenerOptions {
  /** Where refusals made before the Gate is asked are audited. */
  audit?: AuditSink | undefined;
  /** PEM strings; when absent the handshake does not offer TLS. */
  tls?: { cert: string; key: string };
  /** Shown to clients in the handshake (they read features from it). */
  serverVersion?: string;
}

export type MysqlListener = SessionListener;

export async function startMysqlListener(o: MysqlListenerOptions): Promise<MysqlListener> {
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
  return startSessionListener({
    protocol: 'mysql',
    host: o.host,
    port: o.port,
    tls: Boolean(tls),
    log: o.log,
    open: (socket, closed) => new MysqlSession(socket, ctx, closed),
  });
}
