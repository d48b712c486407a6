/**
 * The PostgreSQL listener callers connect to.
 * https://www.postgresql.org/docs/current/protocol-flow.html
 */
import { createServer, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { CancelKeys } from './cancel.ts';
import { Catalogs } from './catalog.ts';
import { initClassifier } from './classify.ts';
import { type Logger, PgSession } from './session.ts';

export interface PostgresListenerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  policy: Policy;
  gate: GatePort;
  tokens: Authenticator;
  /** PEM strings; when absent SSLRequest is answered 'N'. */
  tls?: { cert: string; key: string };
  log?: Logger;
  /** Connection slots, sign-in throttling and the startup timeout. */
  limits?: Limits;
  /** Session recordings; none are made without one. */
  recorder?: Recorder | undefined;
  /** While a statement is held, a NoticeResponse goes to the caller this often. */
  keepaliveNoticeMs?: number;
}

export interface PostgresListener {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
  /** Open caller connections. */
  sessions(): number;
}

export async function startPostgresListener(o: PostgresListenerOptions): Promise<PostgresListener> {
  await initClassifier();
  const cancelKeys = new CancelKeys();
  const sessions = new Set<PgSession>();
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
    keepaliveNoticeMs: o.keepaliveNoticeMs ?? 30_000,
    cancelKeys,
    limits: o.limits,
    ...(o.limits ? { startupTimeoutMs: o.limits.config.startupTimeoutMs } : {}),
  };
  const server = createServer((socket: Socket) => {
    try {
      const session = new PgSession(socket, ctx, () => sessions.delete(session));
      sessions.add(session);
    } catch (err) {
      o.log?.error({ err: (err as Error).message }, 'postgres connection could not be set up');
      socket.destroy();
    }
  });
  server.on('error', (err) => o.log?.error({ err: err.message }, 'postgres listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log?.info({ host: o.host, port, tls: Boolean(tls) }, 'postgres listener started');
  return {
    port,
    host: o.host,
    sessions: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of [...sessions]) s.destroy();
        void catalogs.close();
      }),
  };
}
