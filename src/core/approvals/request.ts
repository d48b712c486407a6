/** Approval requests: one held action waiting for people to decide. */
import type { ActionKind, ActionPart, Principal } from '../action.ts';
import type { RuleRef } from '../policy/evaluate.ts';
import type { ReviewSpec } from '../policy/schema.ts';

export const REQUEST_STATUSES = [
  'pending',
  'approved',
  'denied',
  'expired',
  'cancelled',
  'executed',
] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** Statuses a request can never leave. `approved` is not final: it becomes `executed`. */
export const FINAL_STATUSES: readonly RequestStatus[] = ['denied', 'expired', 'cancelled', 'executed'];

export interface ApprovalVote {
  readonly by: string;
  readonly at: number;
  readonly note?: string | undefined;
  /** The reviewer groups the voter was in when voting (for "one from each group"). */
  readonly groups?: readonly string[] | undefined;
}

export interface ApprovalRequest {
  /** Sequential, so people can say "request 12". */
  readonly id: number;
  readonly status: RequestStatus;
  readonly fingerprint: string;
  readonly protocol: string;
  readonly connection: string;
  readonly principal: Principal;
  readonly sessionId: string;
  readonly source?: string | undefined;
  readonly kind: ActionKind;
  /** The exact command that will run. */
  readonly summary: string;
  readonly parts: readonly ActionPart[];
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly rule: RuleRef;
  readonly why: string;
  readonly review: ReviewSpec;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly decidedAt?: number | undefined;
  readonly approvals: readonly ApprovalVote[];
  readonly deniedBy?: string | undefined;
  /** Deny reason, or why the request was cancelled/expired. */
  readonly reason?: string | undefined;
  /** For `retry` holds and "approve for a window": the same fingerprint passes until then. */
  readonly grantUntil?: number | undefined;
}

export type NewRequest = Omit<
  ApprovalRequest,
  'id' | 'status' | 'approvals' | 'decidedAt' | 'deniedBy' | 'reason' | 'grantUntil'
>;

export interface RequestFilter {
  readonly status?: readonly RequestStatus[];
  readonly connection?: string;
  readonly principal?: string;
  /** Only requests of this protocol (e.g. `access` for just-in-time access requests). */
  readonly protocol?: string;
  /** Only requests with id below this (pagination, newest first). */
  readonly beforeId?: number;
  /** Created at or after (epoch ms). */
  readonly since?: number;
  /** Created at or before (epoch ms). */
  readonly until?: number;
  readonly limit?: number;
}
