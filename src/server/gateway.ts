/**
 * The gateway process: store, audit log, approvals, Gate, the control-plane API and the
 * protocol listeners, wired together and closed in the reverse order.
 */
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { InProcessEventBus } from '../core/approvals/bus.ts';
import { Approvals } from '../core/approvals/service.ts';
import { openEvidence } from '../core/audit/evidence.ts';
import type { AuditLog } from '../core/audit/log.ts';
import { AirlockError } from '../core/errors.ts';
import { Gate } from '../core/gate.ts';
import { buildIdentity } from '../core/identity/setup.ts';
import { guardAuthenticator } from '../core/limits/guarded-authenticator.ts';
import { DEFAULT_LIMITS, Limits } from '../core/limits/limits.ts';
import type { Policy } from '../core/policy/policy.ts';
import type { Store } from '../core/store.ts';
import { startNotifier } from '../notify/notifier.ts';
import { registerMcpRoutes } from '../protocols/mcp/endpoint.ts';
import { classifySql, initClassifier } from '../protocols/postgres/classify.ts';
import { openStore } from '../store/open.ts';
import { PgEventBus } from '../store/pg-event-bus.ts';
import { PostgresStore } from '../store/postgres.ts';
import { ReplicaLeases } from '../store/replica-leases.ts';
import { buildApi } from './api.ts';
import { registerConsole } from './console.ts';
import { ConsoleSessions } from './console-sessions.ts';
import { type ListenProtocol, listenAddress, PROTOCOL_LISTENERS } from './listeners.ts';
import { registerNotifyRoutes } from './notify-routes.ts';
import { registerOidcSignIn } from './oidc-signin.ts';
import { cancelOrphanedHolds } from './orphans.ts';
import { registerAuditRoutes, verifyEvidence } from './routes-audit.ts';
import { registerGrantRoutes } from './routes-grants.ts';
import { registerHealthRoutes } from './routes-health.ts';
import { registerTokenRoutes } from './routes-tokens.ts';

export interface GatewayOptions {
  readonly policy: Policy;
  readonly logger?: Logger;
  /** Replace the policy's listen addresses ("host:port", port 0 = any free port; false = off). */
  readonly listen?: { readonly [K in 'api' | ListenProtocol]?: string | false };
  /** PostgreSQL store (several replicas): a replica silent this long loses its held requests. Default 15 s. */
  readonly leaseMs?: number;
  /** PostgreSQL store: period of the cross-replica event re-sync backstop. Default 5 s. */
  readonly reconcileMs?: number;
}

export interface Gateway {
  /** `url` is where this process listens (not necessarily policy.publicUrl). */
  readonly api: { readonly url: string; readonly host: string; readonly port: number };
  /** Port 0 when the PostgreSQL listener is off. */
  readonly postgres: { readonly host: string; readonly port: number };
  /** Every protocol listener that runs, by protocol. */
  readonly listeners: { readonly [K in ListenProtocol]?: { readonly host: string; readonly port: number } };
  readonly store: Store;
  readonly approvals: Approvals;
  readonly audit: AuditLog;
  readonly policy: Policy;
  /**
   * Stops the gateway. With `drainMs`, first reports not ready (GET /api/v1/ready answers 503)
   * and waits up to that long for callers' connections to end, then closes what is left.
   */
  close(opts?: { readonly drainMs?: number }): Promise<void>;
}

/** "127.0.0.1:7070" or "[::1]:7070" → host and port. */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535)
    throw new AirlockError('AIRLOCK_E_CONFIG_INVALID', `"${text}" is not a host:port listen address`, {
      hint: 'write e.g. 127.0.0.1:7070 (port 0 picks a free port)',
    });
  return { host: (m[1] ?? m[2])!, port };
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const { policy } = opts;
  const log = opts.logger ?? pino({ level: 'silent' });
  const apiAddr = opts.listen?.api !== undefined ? opts.listen.api : policy.listen.api;

  const cleanup: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const fn of cleanup.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn({ err }, 'error while shutting down');
      }
    }
  };

  const startedAt = Date.now();
  try {
    await initClassifier();
    const store = await openStore(policy.store, policy.baseDir);
    cleanup.push(() => store.close());

    // Recordings are sealed into the chain before the audit log closes.
    const evidence = await openEvidence({ policy, store, log });
    cleanup.push(() => evidence.close());
    const { audit, recordings } = evidence;

    // One process: the in-process bus. Replicas sharing a PostgreSQL store: LISTEN/NOTIFY.
    const shared = store instanceof PostgresStore ? store : undefined;
    const pgBus = shared
      ? new PgEventBus({
          store: shared,
          log: log.child({ component: 'bus' }),
          ...(opts.reconcileMs === undefined ? {} : { reconcileMs: opts.reconcileMs }),
        })
      : undefined;
    if (pgBus) {
      await pgBus.start();
      cleanup.push(() => pgBus.close());
    }
    const bus = pgBus ?? new InProcessEventBus();
    const approvals = new Approvals({ store, audit, bus });
    await approvals.start();
    cleanup.push(() => approvals.stop());
    // Survivors cancel what a dead replica held; closed after the listeners (which cancel
    // their own held requests), so a clean stop leaves nothing for the others to reap.
    const leases = shared
      ? new ReplicaLeases({
          store: shared,
          cancel: (id, reason) => approvals.cancel(id, reason),
          log: log.child({ component: 'leases' }),
          ...(opts.leaseMs === undefined ? {} : { leaseMs: opts.leaseMs }),
        })
      : undefined;
    if (leases) {
      await leases.start();
      cleanup.push(() => leases.close());
    } else {
      const orphans = await cancelOrphanedHolds(store, approvals, startedAt);
      if (orphans > 0) log.warn({ orphans }, 'cancelled requests held by a previous run of this gateway');
    }

    const limits = new Limits(policy.limits ?? DEFAULT_LIMITS, (type, data) => {
      try {
        audit.appendLater(type, data);
      } catch {
        // The log is failing; the Gate refuses every non-read until it recovers.
      }
    });
    const identity = buildIdentity({ policy, store, audit });
    // Every door authenticates through the same throttle for failed sign-ins.
    const guarded = guardAuthenticator(identity.tokens, limits);
    // Console sessions live in the store (any replica serves them); API routes also accept the
    // pass the console presents for a request that came with a session cookie.
    const consoleSessions = new ConsoleSessions({ store, recheck: identity.tokens });
    const tokens = consoleSessions.authenticator(guarded);
    // With `api: host:0` the derived public URL is only known once the port is bound; the API
    // reads it per request and the Gate is built after it is fixed.
    const effective: { -readonly [K in keyof Policy]: Policy[K] } = { ...policy };

    const listeners: { [K in ListenProtocol]?: { host: string; port: number } } = {};
    let sshHostKey: string | undefined;
    const api = await buildApi({
      policy: effective,
      store,
      approvals,
      tokens,
      listeners: () => listeners,
      logger: log,
      auditVerify: () => verifyEvidence(store, evidence),
    });
    const signIn = await registerConsole(api, {
      policy: effective,
      tokens,
      approvals,
      bus,
      sessions: consoleSessions,
      store,
    });
    registerOidcSignIn(api, { policy: effective, tokens, sessions: signIn });
    // Notifications go out off the bus; a channel that is down never delays a request.
    const notifier = startNotifier({
      policy: effective,
      approvals,
      // Each request is notified by the replica its caller came through, wherever it is decided.
      bus: pgBus ? pgBus.owned : bus,
      audit,
      log: log.child({ component: 'notify' }),
    });
    cleanup.push(() => notifier.close());
    registerNotifyRoutes(api, { notifier, tokens, policy: effective });
    registerAuditRoutes(api, { policy: effective, store, tokens, evidence });
    let draining = false;
    const failing = (message: string) => Promise.reject(new Error(message));
    registerHealthRoutes(api, {
      draining: () => draining,
      checks: () => [
        { name: 'store', check: () => (shared ? shared.ping() : store.auditHead()) },
        { name: 'audit', check: () => audit.healthy || failing('the audit log cannot be written') },
        ...(pgBus
          ? [{ name: 'bus', check: () => pgBus.connected || failing('not listening for request events') }]
          : []),
        ...(leases
          ? [
              {
                name: 'lease',
                check: () => leases.healthy || failing('the replica lease is not being renewed'),
              },
            ]
          : []),
      ],
    });
    // MCP is served on the API port (/mcp/CONNECTION); sessions read the Gate once it exists.
    const mcp = registerMcpRoutes(api, {
      policy: effective,
      gate: () => gate,
      tokens: guarded,
      classifySql,
      request: (id) => approvals.get(id),
      createRequest: (r) => approvals.create(r),
      postgres: () => listeners.postgres,
      ssh: () => (listeners.ssh && sshHostKey ? { ...listeners.ssh, hostKey: sshHostKey } : undefined),
      http: () => listeners.http,
      mysql: () => listeners.mysql,
      listRequests: (filter) => store.listRequests(filter),
      recorder: recordings,
      limits,
      log: log.child({ protocol: 'mcp' }),
    });
    registerTokenRoutes(api, { policy: effective, tokens, apiTokens: identity.apiTokens, audit });
    registerGrantRoutes(api, { policy: effective, tokens, approvals });
    let apiInfo = { url: '', host: '', port: 0 };
    if (apiAddr !== false) {
      const { host, port } = parseHostPort(apiAddr);
      await api.listen({ host, port });
      cleanup.push(() => api.close());
      const address = api.server.address() as AddressInfo;
      apiInfo = { url: `http://${urlHost(host)}:${address.port}`, host, port: address.port };
      if (port === 0 && /:0$/.test(policy.publicUrl)) effective.publicUrl = apiInfo.url;
      log.info({ url: apiInfo.url }, 'API listening');
    } else {
      await api.ready();
      cleanup.push(() => api.close());
    }

    const gate = new Gate({
      policy: effective,
      approvals,
      audit,
      pendingLimit: {
        limits,
        pendingFor: async (principal) =>
          (
            await store.listRequests({
              status: ['pending'],
              principal,
              limit: (policy.limits ?? DEFAULT_LIMITS).maxPendingPerPrincipal,
            })
          ).length,
      },
    });
    // Runs before the API closes: ends MCP sessions, cancelling held calls and stopping the
    // tool servers Airlock launched.
    cleanup.push(() => mcp.close());

    /** Open caller connections per listener that can count them, for draining. */
    const openSessions: (() => number)[] = [];
    const tls = policy.tls ? { cert: policy.tls.cert.reveal(), key: policy.tls.key.reveal() } : undefined;
    for (const listener of PROTOCOL_LISTENERS) {
      const addr = listenAddress(listener, policy, opts.listen?.[listener.protocol]);
      if (addr === false) continue;
      const { host, port } = parseHostPort(addr);
      const running = await listener.start(
        {
          policy: effective,
          gate,
          tokens: guarded,
          approvals,
          audit,
          recordings,
          store,
          tls,
          limits,
          log: log.child({ protocol: listener.protocol }),
        },
        host,
        port,
      );
      // Close protocol listeners first: held requests are cancelled while the store still works.
      cleanup.push(() => running.close());
      const sessions = (running as { sessions?: unknown }).sessions;
      if (typeof sessions === 'function') openSessions.push(() => Number(sessions.call(running)));
      listeners[listener.protocol] = { host: running.host, port: running.port };
      // The own MCP tools log in to Airlock's SSH listener and pin the key it presents.
      const hostKey = (running as { hostKey?: { line?: unknown } }).hostKey?.line;
      if (listener.protocol === 'ssh' && typeof hostKey === 'string') sshHostKey = hostKey;
      log.info({ host: running.host, port: running.port }, `${listener.protocol} listener ready`);
    }

    let closing: Promise<void> | undefined;
    return {
      api: apiInfo,
      postgres: listeners.postgres ?? { host: '', port: 0 },
      listeners,
      store,
      approvals,
      audit,
      policy: effective,
      close(closeOpts = {}) {
        closing ??= (async () => {
          draining = true;
          const deadline = Date.now() + (closeOpts.drainMs ?? 0);
          while (Date.now() < deadline && openSessions.some((count) => count() > 0))
            await new Promise((resolve) => setTimeout(resolve, 100));
          await closeAll();
        })();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
