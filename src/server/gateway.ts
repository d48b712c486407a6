/**
 * The gateway process: store, audit log, approvals, Gate, the control-plane API and the
 * protocol listeners, wired together and closed in the reverse order.
 */
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { InProcessEventBus } from '../core/approvals/bus.ts';
import { Approvals } from '../core/approvals/service.ts';
import type { AuditLog } from '../core/audit/log.ts';
import { openEvidence } from '../core/audit/evidence.ts';
import { AirlockError } from '../core/errors.ts';
import { Gate } from '../core/gate.ts';
import { TokenRegistry } from '../core/identity/tokens.ts';
import type { Policy } from '../core/policy/policy.ts';
import type { Store } from '../core/store.ts';
import { startNotifier } from '../notify/notifier.ts';
import { initClassifier } from '../protocols/postgres/classify.ts';
import { openStore } from '../store/open.ts';
import { buildApi } from './api.ts';
import { registerConsole } from './console.ts';
import { type ListenProtocol, listenAddress, PROTOCOL_LISTENERS } from './listeners.ts';
import { registerNotifyRoutes } from './notify-routes.ts';

export interface GatewayOptions {
  readonly policy: Policy;
  readonly logger?: Logger;
  /** Replace the policy's listen addresses ("host:port", port 0 = any free port; false = off). */
  readonly listen?: { readonly [K in 'api' | ListenProtocol]?: string | false };
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
  close(): Promise<void>;
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

  try {
    await initClassifier();
    const store = await openStore(policy.store, policy.baseDir);
    cleanup.push(() => store.close());

    // Recordings are sealed into the chain before the audit log closes.
    const evidence = await openEvidence({ policy, store, log });
    cleanup.push(() => evidence.close());
    const { audit, recordings } = evidence;

    const bus = new InProcessEventBus();
    const approvals = new Approvals({ store, audit, bus });
    await approvals.start();
    cleanup.push(() => approvals.stop());

    const tokens = new TokenRegistry(policy.tokens);
    // With `api: host:0` the derived public URL is only known once the port is bound; the API
    // reads it per request and the Gate is built after it is fixed.
    const effective: { -readonly [K in keyof Policy]: Policy[K] } = { ...policy };

    const listeners: { [K in ListenProtocol]?: { host: string; port: number } } = {};
    const api = await buildApi({
      policy: effective,
      store,
      approvals,
      tokens,
      listeners: () => listeners,
      logger: log,
    });
    await registerConsole(api, { policy: effective, tokens, approvals, bus });
    // Notifications go out off the bus; a channel that is down never delays a request.
    const notifier = startNotifier({
      policy: effective,
      approvals,
      bus,
      audit,
      log: log.child({ component: 'notify' }),
    });
    cleanup.push(() => notifier.close());
    registerNotifyRoutes(api, { notifier, tokens, policy: effective });
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

    const gate = new Gate({ policy: effective, approvals, audit });

    const tls = policy.tls ? { cert: policy.tls.cert.reveal(), key: policy.tls.key.reveal() } : undefined;
    for (const listener of PROTOCOL_LISTENERS) {
      const addr = listenAddress(listener, policy, opts.listen?.[listener.protocol]);
      if (addr === false) continue;
      const { host, port } = parseHostPort(addr);
      const running = await listener.start(
        {
          policy: effective,
          gate,
          tokens,
          approvals,
          audit,
          recordings,
          store,
          tls,
          log: log.child({ protocol: listener.protocol }),
        },
        host,
        port,
      );
      // Close protocol listeners first: held requests are cancelled while the store still works.
      cleanup.push(() => running.close());
      listeners[listener.protocol] = { host: running.host, port: running.port };
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
      close() {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
