/**
 * The contract between protocol adapters and the Gate. Adapters build an Action, call
 * `decide`, and enforce the outcome on the wire; everything else (policy, grants, approvals,
 * audit) happens behind this interface.
 */
import type { Action, Principal } from './action.ts';
import type { ApprovalRequest } from './approvals/request.ts';
import type { Decision } from './policy/evaluate.ts';

export type GateOutcome =
  /** Forward it. For non-read actions the audit event is already durable when this resolves. */
  | {
      readonly verdict: 'allow';
      readonly decision: Decision;
      readonly via: 'rule' | 'grant';
      readonly requestId?: number;
    }
  /** Refuse it; send `reason` back to the caller. Audited. */
  | { readonly verdict: 'deny'; readonly decision: Decision; readonly reason: string }
  /**
   * A request was created (durably) and must be decided by people. With `mode: 'wait'` the
   * adapter holds the command on the connection, tells the caller `message`, and awaits
   * `settled()`; with `mode: 'retry'` it answers at once with `message` as the error.
   */
  | {
      readonly verdict: 'hold';
      readonly decision: Decision;
      readonly request: ApprovalRequest;
      readonly mode: 'wait' | 'retry';
      /** Console URL of the request. */
      readonly url: string;
      /** "approval required: request 12 — approve it at http://…/requests/12" */
      readonly message: string;
    };

export type Settlement =
  | { readonly status: 'approved'; readonly request: ApprovalRequest }
  | {
      readonly status: 'denied' | 'expired' | 'cancelled';
      readonly request: ApprovalRequest;
      /** Text for the caller: the reviewer's reason, or why it expired/was cancelled. */
      readonly reason: string;
    };

export interface SessionInfo {
  readonly sessionId: string;
  readonly protocol: string;
  readonly connection: string;
  readonly principal: Principal;
  readonly source?: string | undefined;
  /** Non-secret protocol details: client user name, application name, TLS on/off. */
  readonly attributes?: Readonly<Record<string, unknown>>;
  /**
   * Ends the session at once, telling the caller why. The Gate calls it when a grant the
   * session relied on is revoked. Adapters that cannot end a session leave it out.
   */
  readonly end?: (reason: string) => void;
}

export interface DecideHooks {
  /**
   * Called only when the action is about to be held for review, before the request is created:
   * extra facts for reviewers (e.g. `estimatedRows`), merged into the request's attributes. A
   * hook that fails or takes too long adds nothing; the request is held all the same.
   */
  readonly beforeHold?: () => Promise<Readonly<Record<string, unknown>> | undefined>;
}

export interface GatePort {
  /**
   * Judge an action. Throws AirlockError AIRLOCK_E_AUDIT_UNAVAILABLE when the audit log cannot
   * be written: the adapter must then refuse the action (fail closed).
   */
  decide(action: Action, hooks?: DecideHooks): Promise<GateOutcome>;

  /**
   * Wait for people to decide a held request. Resolves when it is approved, denied or expires.
   * If `signal` aborts (the caller went away) the request is cancelled and audited, and the
   * promise resolves with status 'cancelled'.
   */
  settled(requestId: number, signal?: AbortSignal): Promise<Settlement>;

  /**
   * Called right before an approved held action is forwarded: durably records that it is being
   * executed and marks the request `executed`. Throws (fail closed) if that cannot be recorded.
   */
  release(requestId: number): Promise<void>;

  /** Audit that a session opened / closed (non-blocking for reads, durable for opens). */
  sessionOpened(session: SessionInfo): Promise<void>;
  sessionClosed(sessionId: string, details?: Readonly<Record<string, unknown>>): void;

  /** Audit an authentication failure (no token material in `details`). */
  authFailed(details: Readonly<Record<string, unknown>>): void;

  /** Audit a connection ended for a malformed or oversized message, or a timeout it ran into. */
  protocolViolation(details: Readonly<Record<string, unknown>>): void;
}
