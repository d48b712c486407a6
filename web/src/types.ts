/** The JSON the control-plane API sends (see src/server/api.ts requestJson). */

export type ActionKind =
  | 'read'
  | 'write'
  | 'schema'
  | 'privilege'
  | 'admin'
  | 'exec'
  | 'session'
  | 'transfer'
  | 'unknown';

export type RequestStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'executed';

export interface RequestPart {
  readonly kind: ActionKind;
  readonly text: string;
  readonly statement: string | null;
  readonly tables: readonly string[];
  /** Protocol facts: command, method, path, verb, resource, namespace, ref, file, tool, argument.NAME. */
  readonly fields?: Readonly<Record<string, readonly string[]>>;
  readonly why: string | null;
}

export interface AirlockRequest {
  readonly id: number;
  readonly status: RequestStatus;
  readonly connection: string;
  readonly protocol: string;
  readonly principal: {
    readonly name: string;
    readonly kind: 'human' | 'service' | 'agent';
    readonly groups: readonly string[];
  };
  readonly source: string | null;
  readonly kind: ActionKind;
  readonly summary: string;
  readonly parts: readonly RequestPart[];
  readonly rule: { readonly name: string; readonly index?: number } & Record<string, unknown>;
  readonly why: string;
  readonly review: {
    readonly groups: readonly string[];
    readonly approvals: number;
    readonly hold: string;
    readonly expiresMs: number;
    readonly windowMs: number | null | undefined;
  };
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt: string | null;
  readonly approvals: readonly { readonly by: string; readonly at: string; readonly note: string | null }[];
  readonly deniedBy: string | null;
  readonly reason: string | null;
  readonly grantUntil: string | null;
  readonly url: string;
  readonly attributes?: Readonly<Record<string, unknown>>;
  /** Rows a write is estimated to touch, where the adapter can tell. */
  readonly estimatedRows?: number | null;
  /** Exact rows from a rolled-back dry run (connections that opt in), or why it was not done. */
  readonly dryRun?: {
    readonly rows: number | null;
    readonly note: string | null;
    readonly skipped: string | null;
  } | null;
}

export interface Me {
  readonly name: string;
  readonly kind: 'human' | 'service' | 'agent';
  readonly groups: readonly string[];
  readonly reviewer: boolean;
  /** Set when the policy's break_glass groups include this person (absent from older servers). */
  readonly breakGlass?: { readonly minJustification: number } | null;
}

export type VerifyResult =
  | { readonly ok: true; readonly count: number; readonly headHash: string }
  | {
      readonly ok: false;
      readonly count: number;
      readonly seq: number;
      readonly problem: string;
      readonly message: string;
    };

export interface AuditRecord {
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly hash: string;
}

/** One notification Airlock tried to send (GET /api/v1/notify/deliveries). */
export interface Delivery {
  readonly id: number;
  readonly channel: 'webhook' | 'slack' | 'email';
  readonly target: string;
  readonly requestId: number;
  readonly event: string;
  readonly operation: string;
  readonly status: 'sending' | 'retrying' | 'delivered' | 'failed';
  readonly attempts: readonly {
    readonly at: number;
    readonly ok: boolean;
    readonly durationMs: number;
    readonly status?: number;
    readonly error?: string;
  }[];
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly nextAttemptAt?: number;
}
