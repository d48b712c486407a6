/**
 * The protocol listeners the gateway can run. Each protocol adds one entry: which `listen:`
 * key configures it, which connection types it serves, and how to start it. A listener runs
 * when its address is set in the policy, or when a connection of a type it serves exists
 * (then on its default address); `listen.X: false` turns it off.
 */
import type { Logger } from 'pino';
import type { Approvals } from '../core/approvals/service.ts';
import type { AuditLog } from '../core/audit/log.ts';
import type { Gate } from '../core/gate.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Limits } from '../core/limits/limits.ts';
import type { ConnectionType, Policy } from '../core/policy/policy.ts';
import type { Recorder } from '../core/recording/types.ts';
import type { Store } from '../core/store.ts';
import { startHttpListener } from '../protocols/http/listener.ts';
import { startMysqlListener } from '../protocols/mysql/listener.ts';
import { startPostgresListener } from '../protocols/postgres/listener.ts';
import { startSshListener } from '../protocols/ssh/listener.ts';

export const LISTEN_PROTOCOLS = ['postgres', 'mysql', 'ssh', 'http'] as const;
export type ListenProtocol = (typeof LISTEN_PROTOCOLS)[number];

export interface ListenerContext {
  /** The effective policy (publicUrl fixed once the API port is bound). */
  readonly policy: Policy;
  readonly gate: Gate;
  readonly tokens: Authenticator;
  readonly approvals: Approvals;
  readonly audit: AuditLog;
  /** Session recordings: `recordings.open(sessionId, connection, format)`; see core/recording. */
  readonly recordings: Recorder;
  readonly store: Store;
  /** Connection slots, failed sign-in throttling, timeouts and byte bounds (core/limits). */
  readonly limits: Limits;
  readonly log: Logger;
  /** The gateway's own certificate (PEM), for callers that ask for TLS. */
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
}

export interface RunningListener {
  readonly host: string;
  readonly port: number;
  /** Stop accepting, end held requests and close callers' connections. */
  close(): Promise<void>;
}

export interface ProtocolListener {
  readonly protocol: ListenProtocol;
  /** Used when a connection of a type it serves exists and `listen` names no address. */
  readonly defaultAddress: string;
  readonly serves: readonly ConnectionType[];
  /** Runs even with no connection of its types (the PostgreSQL listener, for the demo and tests). */
  readonly always?: boolean;
  start(ctx: ListenerContext, host: string, port: number): Promise<RunningListener>;
}

export const PROTOCOL_LISTENERS: readonly ProtocolListener[] = [
  {
    protocol: 'postgres',
    defaultAddress: '127.0.0.1:15432',
    serves: ['postgres'],
    always: true,
    start: (ctx, host, port) =>
      startPostgresListener({
        host,
        port,
        policy: ctx.policy,
        gate: ctx.gate,
        tokens: ctx.tokens,
        ...(ctx.tls ? { tls: ctx.tls } : {}),
        limits: ctx.limits,
        recorder: ctx.recordings,
        log: ctx.log,
      }),
  },
  {
    protocol: 'mysql',
    defaultAddress: '127.0.0.1:13306',
    serves: ['mysql'],
    start: (ctx, host, port) =>
      startMysqlListener({
        host,
        port,
        policy: ctx.policy,
        gate: ctx.gate,
        tokens: ctx.tokens,
        audit: ctx.audit,
        ...(ctx.tls ? { tls: ctx.tls } : {}),
        limits: ctx.limits,
        recorder: ctx.recordings,
        log: ctx.log,
      }),
  },
  {
    protocol: 'ssh',
    defaultAddress: '127.0.0.1:12222',
    serves: ['ssh'],
    start: (ctx, host, port) =>
      startSshListener({
        host,
        port,
        policy: ctx.policy,
        gate: ctx.gate,
        tokens: ctx.tokens,
        audit: ctx.audit,
        recorder: ctx.recordings,
        limits: ctx.limits,
        log: ctx.log,
      }),
  },
  {
    protocol: 'http',
    defaultAddress: '127.0.0.1:18080',
    serves: ['http', 'kubernetes', 'git'],
    start: (ctx, host, port) =>
      startHttpListener({
        host,
        port,
        policy: ctx.policy,
        gate: ctx.gate,
        tokens: ctx.tokens,
        tls: ctx.tls,
        recorder: ctx.recordings,
        limits: ctx.limits,
        log: ctx.log,
      }),
  },
];

/** The address a listener should bind, or false when it stays off. */
export function listenAddress(
  listener: ProtocolListener,
  policy: Policy,
  override: string | false | undefined,
): string | false {
  if (override !== undefined) return override;
  const configured = policy.listen[listener.protocol];
  if (configured === false) return false;
  if (typeof configured === 'string') return configured;
  const needed =
    listener.always || [...policy.connections.values()].some((c) => listener.serves.includes(c.type));
  return needed ? listener.defaultAddress : false;
}
