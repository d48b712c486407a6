/**
 * The persistence port core depends on. Implementations live in src/store/ (SQLite embedded,
 * PostgreSQL for several replicas); core never imports them.
 */
import type { Principal, PrincipalKind } from './action.ts';
import type {
  ApprovalRequest,
  ApprovalVote,
  NewRequest,
  RequestFilter,
  RequestStatus,
} from './approvals/request.ts';
import type { RecordingFilter, RecordingMeta } from './recording/types.ts';

/** One record of the audit hash chain, as stored. */
export interface AuditRecord {
  /** 1-based, gap-free. */
  readonly seq: number;
  /** Epoch milliseconds. */
  readonly at: number;
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
  /**
   * The canonical JSON of `data`, when the writer already has it: the hash was computed over
   * exactly these bytes, so the store keeps them instead of serialising `data` a second time.
   */
  readonly dataJson?: string;
  /** Hash of the previous record; 64 zeros for the first. */
  readonly prevHash: string;
  /** sha256 hex of the canonical JSON of { seq, at, type, data, prevHash }. */
  readonly hash: string;
}

export interface RequestPatch {
  readonly status?: RequestStatus;
  readonly decidedAt?: number;
  readonly deniedBy?: string;
  readonly reason?: string;
  readonly grantUntil?: number;
}

/** An API token as stored: only the SHA-256 of the token itself is kept. */
export interface ApiTokenRecord {
  /** Public id (`tok_...`), shown in lists and used to revoke. */
  readonly id: string;
  /** The principal the token stands for. */
  readonly name: string;
  readonly kind: PrincipalKind;
  readonly groups: readonly string[];
  /** Connections the token may open; undefined: any. */
  readonly connections?: readonly string[] | undefined;
  readonly description?: string | undefined;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly expiresAt?: number | undefined;
  readonly revokedAt?: number | undefined;
  readonly revokedBy?: string | undefined;
  /** sha256 hex of the token. */
  readonly hash: string;
}

/**
 * A reviewer console sign-in as stored, so that any replica can serve it. The cookie holds the
 * random session id; the store keeps only its SHA-256. No credential is kept: a token sign-in
 * keeps the token's SHA-256 (enough to ask whether the token still stands for someone), an
 * OIDC sign-in the ID token's expiry.
 */
export interface ConsoleSessionRecord {
  /** sha256 hex of the session id. */
  readonly idHash: string;
  readonly principal: Principal;
  readonly csrf: string;
  /** How the reviewer signed in ("token", "oidc"). */
  readonly method: string;
  /** sha256 hex of the Airlock token signed in with; undefined for a JWT. */
  readonly tokenHash?: string | undefined;
  /** When the credential signed in with stops being valid (a JWT's exp), epoch ms. */
  readonly credentialExpiresAt?: number | undefined;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface Store {
  /** Create tables / apply pending migrations. Safe to call on every start. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  createRequest(request: NewRequest): Promise<ApprovalRequest>;
  getRequest(id: number): Promise<ApprovalRequest | undefined>;
  /** Newest first. */
  listRequests(filter?: RequestFilter): Promise<ApprovalRequest[]>;
  /**
   * Compare-and-set: applies the patch only if the request is in one of `from`; returns the
   * updated request, or undefined if it was not in one of those statuses (someone else won).
   */
  updateRequest(
    id: number,
    from: readonly RequestStatus[],
    patch: RequestPatch,
  ): Promise<ApprovalRequest | undefined>;
  /** Adds a vote if the request is pending and the voter has not voted; returns the request after. */
  addApproval(id: number, vote: ApprovalVote): Promise<ApprovalRequest | undefined>;
  /** Approved/executed requests whose grant window is still open at `now`. */
  activeGrants(now: number): Promise<ApprovalRequest[]>;

  /** Appends already-hashed records in one transaction (all or nothing). */
  appendAudit(records: readonly AuditRecord[]): Promise<void>;
  /** The newest record, or undefined for an empty log. */
  auditHead(): Promise<AuditRecord | undefined>;
  /** Records with seq >= fromSeq, ascending. */
  readAudit(fromSeq: number, limit: number): Promise<AuditRecord[]>;
  auditCount(): Promise<number>;

  createApiToken(token: ApiTokenRecord): Promise<void>;
  /** By the token's hash (any state: the caller tells revoked and expired apart). */
  findApiToken(hash: string): Promise<ApiTokenRecord | undefined>;
  /** Newest first; `name`: only tokens standing for that principal. */
  listApiTokens(filter?: { readonly name?: string }): Promise<ApiTokenRecord[]>;
  /** Marks it revoked if it is not already; returns the token after, or undefined if unknown. */
  revokeApiToken(id: string, at: number, by: string): Promise<ApiTokenRecord | undefined>;

  /** Inserts or replaces (by id) a recording's metadata: once when it opens, again when it is sealed. */
  putRecording(meta: RecordingMeta): Promise<void>;
  getRecording(id: string): Promise<RecordingMeta | undefined>;
  /** Newest first (by start time, then id). */
  listRecordings(filter?: RecordingFilter): Promise<RecordingMeta[]>;

  /** Stores a new console session (ids are random: a clash is an error). */
  createConsoleSession(session: ConsoleSessionRecord): Promise<void>;
  /** By the hash of the session id, expired or not (the caller checks). */
  getConsoleSession(idHash: string): Promise<ConsoleSessionRecord | undefined>;
  /** Deletes it; true if it existed. */
  deleteConsoleSession(idHash: string): Promise<boolean>;
  /** Deletes sessions that expired at or before `now`; returns how many. */
  deleteExpiredConsoleSessions(now: number): Promise<number>;

  /**
   * A secret shared by every process on this store: stores `candidate` under `name` unless a
   * value is already there, and returns the stored value (the first writer wins).
   */
  sharedSecret(name: string, candidate: string): Promise<string>;
}
