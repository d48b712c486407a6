/**
 * The PostgreSQL listener callers connect to.
 * https://www.postgresql.org/docs/current/protocol-flow.html
 */
import { createSecureContext } from 'node:tls';
import type { ListenerOptions } from '../../core/adapter-ports.ts';
import { DEFAULT_LIMITS } from '../../core/limits/limits.ts';
import { type SessionListener, startSessionListener } from '../../core/session-listener.ts';
import { CancelKeys } from './cancel.ts';
import { Catalogs } from './catalog.ts';
import { initClassifier } from './classify.ts';
import { PgSession } from './session.ts';

export interface PostgresListenerOptions extends ListenerOptions {
  /** PEM strings; when absent SSLRequest is answered 'N'. */
  tls?: { cert: string; key: string };
  /** While a statement is held, a NoticeResponse goes to the caller this often (over `limits`). */
  keepaliveNoticeMs?: number;
}

export type PostgresListener = SessionListener;

export async function startPostgresListener(o: PostgresListenerOptions): Promise<PostgresListener> {
  await initClassifier();
  const cancelKeys = new CancelKeys();
  const tls = o.tls ? createSecureContext({ cert: o.tls.cert, key: o.tls.key }) : undefined;
  const catalogs = new Catalogs(o.policy.baseDir);
  const ctx = {
    catalogs,
    recorder: o.recorder,
    policy: o.policy,
    gate: o.gate,
    tokens: o.tokens,
    tls,
    log: o.log,
    keepaliveNoticeMs:
      o.keepaliveNoticeMs ?? o.limits?.config.holdNoticeIntervalMs ?? DEFAULT_LIMITS.holdNoticeIntervalMs,
    cancelKeys,
    limits: o.limits,
    ...(o.limits ? { startupTimeoutMs: o.limits.config.startupTimeoutMs } : {}),
  };
  return startSessionListener({
    protocol: 'postgres',
    host: o.host,
    port: o.port,
    tls: Boolean(tls),
    log: o.log,
    open: (socket, closed) => new PgSession(socket, ctx, closed),
    onClose: () => void catalogs.close(),
  });
}
