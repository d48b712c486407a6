/**
 * What a protocol adapter is handed: the options every listener starts with, somewhere to log,
 * and the audit log for refusals the adapter makes itself, before the Gate is asked.
 */
import type { GatePort } from './gate-types.ts';
import type { Authenticator } from './identity/authenticator.ts';
import type { Limits } from './limits/limits.ts';
import type { Policy } from './policy/policy.ts';
import type { Recorder } from './recording/types.ts';

export interface Logger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

/** What every protocol listener is started with; each adds its own options. */
export interface ListenerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  policy: Policy;
  gate: GatePort;
  tokens: Authenticator;
  log?: Logger | undefined;
  /** Connection slots, sign-in throttling and the startup timeout. */
  limits?: Limits | undefined;
  /** Session recordings; none are made without one. */
  recorder?: Recorder | undefined;
}

/** What an adapter needs from the audit log for refusals the Gate never sees. */
export interface AuditSink {
  append(type: string, data: Readonly<Record<string, unknown>>): Promise<unknown>;
}
