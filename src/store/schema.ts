/**
 * The store's tables as both stores (SQLite and PostgreSQL) hold them, and the mapping between
 * their rows and the core's records. Dialect-specific tables live with their store.
 */
import type { Generated, Selectable, Updateable } from 'kysely';
import type { ApprovalRequest, ApprovalVote, NewRequest, RequestStatus } from '../core/approvals/request.ts';
import type { RecordingFormat, RecordingMeta } from '../core/recording/types.ts';
import type { ApiTokenRecord, AuditRecord, ConsoleSessionRecord, RequestPatch } from '../core/store.ts';

export interface RequestsTable {
  id: Generated<number>;
  status: string;
  fingerprint: string;
  protocol: string;
  connection: string;
  principal_name: string;
  principal: string;
  session_id: string;
  source: string | null;
  kind: string;
  summary: string;
  parts: string;
  attributes: string;
  rule: string;
  why: string;
  review: string;
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  denied_by: string | null;
  reason: string | null;
  grant_until: number | null;
}

export interface ApprovalsTable {
  request_id: number;
  by: string;
  at: number;
  note: string | null;
  /** JSON array, or null. */
  groups: string | null;
}

export interface AuditTable {
  seq: number;
  at: number;
  type: string;
  data: string;
  prev_hash: string;
  hash: string;
}

export interface ApiTokensTable {
  id: string;
  hash: string;
  name: string;
  kind: string;
  /** JSON array. */
  groups: string;
  /** JSON array, or null for any connection. */
  connections: string | null;
  description: string | null;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  revoked_by: string | null;
}

export interface RecordingsTable {
  id: string;
  session_id: string;
  connection: string;
  protocol: string | null;
  principal: string | null;
  format: string;
  status: string;
  started_at: number;
  ended_at: number | null;
  bytes: number;
  sha256: string | null;
  dropped_bytes: number;
  path: string;
  audit_seq: number | null;
  error: string | null;
}

export function recordingToRow(m: RecordingMeta): RecordingsTable {
  return {
    id: m.id,
    session_id: m.sessionId,
    connection: m.connection,
    protocol: m.protocol ?? null,
    principal: m.principal ?? null,
    format: m.format,
    status: m.status,
    started_at: m.startedAt,
    ended_at: m.endedAt ?? null,
    bytes: m.bytes,
    sha256: m.sha256 ?? null,
    dropped_bytes: m.droppedBytes,
    path: m.path,
    audit_seq: m.auditSeq ?? null,
    error: m.error ?? null,
  };
}

export function recordingFromRow(r: Selectable<RecordingsTable>): RecordingMeta {
  return {
    id: r.id,
    sessionId: r.session_id,
    connection: r.connection,
    protocol: r.protocol ?? undefined,
    principal: r.principal ?? undefined,
    format: r.format as RecordingFormat,
    status: r.status === 'closed' ? 'closed' : 'open',
    startedAt: Number(r.started_at),
    endedAt: r.ended_at === null ? undefined : Number(r.ended_at),
    bytes: Number(r.bytes),
    sha256: r.sha256 ?? undefined,
    droppedBytes: Number(r.dropped_bytes),
    path: r.path,
    auditSeq: r.audit_seq === null ? undefined : Number(r.audit_seq),
    error: r.error ?? undefined,
  };
}

export interface ConsoleSessionsTable {
  id_hash: string;
  /** JSON Principal. */
  principal: string;
  csrf: string;
  method: string;
  token_hash: string | null;
  credential_expires_at: number | null;
  created_at: number;
  expires_at: number;
}

export interface SharedSecretsTable {
  name: string;
  value: string;
  created_at: number;
}

export function consoleSessionToRow(s: ConsoleSessionRecord): ConsoleSessionsTable {
  return {
    id_hash: s.idHash,
    principal: JSON.stringify({ name: s.principal.name, kind: s.principal.kind, groups: s.principal.groups }),
    csrf: s.csrf,
    method: s.method,
    token_hash: s.tokenHash ?? null,
    credential_expires_at: s.credentialExpiresAt ?? null,
    created_at: s.createdAt,
    expires_at: s.expiresAt,
  };
}

export function consoleSessionFromRow(r: Selectable<ConsoleSessionsTable>): ConsoleSessionRecord {
  return {
    idHash: r.id_hash,
    principal: JSON.parse(r.principal),
    csrf: r.csrf,
    method: r.method,
    tokenHash: r.token_hash ?? undefined,
    credentialExpiresAt: r.credential_expires_at === null ? undefined : Number(r.credential_expires_at),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
  };
}

export interface StoreSchema {
  console_sessions: ConsoleSessionsTable;
  shared_secrets: SharedSecretsTable;
  recordings: RecordingsTable;
  requests: RequestsTable;
  request_approvals: ApprovalsTable;
  audit: AuditTable;
  api_tokens: ApiTokensTable;
}

export function apiTokenToRow(t: ApiTokenRecord): ApiTokensTable {
  return {
    id: t.id,
    hash: t.hash,
    name: t.name,
    kind: t.kind,
    groups: JSON.stringify(t.groups),
    connections: t.connections === undefined ? null : JSON.stringify(t.connections),
    description: t.description ?? null,
    created_by: t.createdBy,
    created_at: t.createdAt,
    expires_at: t.expiresAt ?? null,
    revoked_at: t.revokedAt ?? null,
    revoked_by: t.revokedBy ?? null,
  };
}

export function apiTokenFromRow(row: Selectable<ApiTokensTable>): ApiTokenRecord {
  return {
    id: row.id,
    hash: row.hash,
    name: row.name,
    kind: row.kind as ApiTokenRecord['kind'],
    groups: JSON.parse(row.groups),
    connections: row.connections === null ? undefined : JSON.parse(row.connections),
    description: row.description ?? undefined,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? undefined : Number(row.expires_at),
    revokedAt: row.revoked_at === null ? undefined : Number(row.revoked_at),
    revokedBy: row.revoked_by ?? undefined,
  };
}

export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

export function requestFromRow(
  row: Selectable<RequestsTable>,
  votes: readonly ApprovalVote[],
): ApprovalRequest {
  return {
    id: Number(row.id),
    status: row.status as RequestStatus,
    fingerprint: row.fingerprint,
    protocol: row.protocol,
    connection: row.connection,
    principal: JSON.parse(row.principal),
    sessionId: row.session_id,
    source: row.source ?? undefined,
    kind: row.kind as ApprovalRequest['kind'],
    summary: row.summary,
    parts: JSON.parse(row.parts),
    attributes: JSON.parse(row.attributes),
    rule: JSON.parse(row.rule),
    why: row.why,
    review: JSON.parse(row.review),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    decidedAt: row.decided_at === null ? undefined : Number(row.decided_at),
    approvals: votes,
    deniedBy: row.denied_by ?? undefined,
    reason: row.reason ?? undefined,
    grantUntil: row.grant_until === null ? undefined : Number(row.grant_until),
  };
}

export function auditFromRow(row: Selectable<AuditTable>): AuditRecord {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(row.data);
  } catch {
    // A row whose data is no longer JSON was tampered with. Hand it to the verifier as a value
    // that cannot hash to the stored hash instead of throwing, so verify can name the record.
    data = { '(unparseable)': row.data };
  }
  return {
    seq: Number(row.seq),
    at: Number(row.at),
    type: row.type,
    data,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** The row a new request is inserted as (pending, no decision yet). */
export function newRequestRow(request: NewRequest) {
  return {
    status: 'pending',
    fingerprint: request.fingerprint,
    protocol: request.protocol,
    connection: request.connection,
    principal_name: request.principal.name,
    principal: JSON.stringify(request.principal),
    session_id: request.sessionId,
    source: request.source ?? null,
    kind: request.kind,
    summary: request.summary,
    parts: JSON.stringify(request.parts),
    attributes: JSON.stringify(request.attributes),
    rule: JSON.stringify(request.rule),
    why: request.why,
    review: JSON.stringify(request.review),
    created_at: request.createdAt,
    expires_at: request.expiresAt,
  };
}

/** The columns a request patch sets. */
export function requestPatchSet(patch: RequestPatch): Updateable<RequestsTable> {
  const set: Updateable<RequestsTable> = {};
  if (patch.status !== undefined) set.status = patch.status;
  if (patch.decidedAt !== undefined) set.decided_at = patch.decidedAt;
  if (patch.deniedBy !== undefined) set.denied_by = patch.deniedBy;
  if (patch.reason !== undefined) set.reason = patch.reason;
  if (patch.grantUntil !== undefined) set.grant_until = patch.grantUntil;
  return set;
}

/** The row a vote is inserted as. */
export function voteRow(requestId: number, vote: ApprovalVote) {
  return {
    request_id: requestId,
    by: vote.by,
    at: vote.at,
    note: vote.note ?? null,
    groups: vote.groups === undefined ? null : JSON.stringify(vote.groups),
  };
}

export function voteFromRow(row: Selectable<ApprovalsTable>): ApprovalVote {
  return {
    by: row.by,
    at: Number(row.at),
    ...(row.note === null ? {} : { note: row.note }),
    ...(row.groups === null || row.groups === undefined
      ? {}
      : { groups: JSON.parse(row.groups) as string[] }),
  };
}
