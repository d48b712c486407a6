/**
 * The embedded store: SQLite through better-sqlite3, behind Kysely so the PostgreSQL store can
 * share the queries. better-sqlite3 is synchronous and Kysely serializes every query on its one
 * connection, so each transaction below is atomic with respect to the rest of the process.
 *
 * Durability: the database runs in WAL mode with `synchronous = FULL`. In WAL mode NORMAL only
 * fsyncs at checkpoints, so a power cut can lose the last commits — including audit records
 * for actions already forwarded to the target. FULL fsyncs the WAL on every commit; the audit
 * log batches allowed reads, so the cost is one fsync per batch, not per read.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { type Generated, Kysely, type Selectable, SqliteDialect, sql, type Updateable } from 'kysely';
import type {
  ApprovalRequest,
  ApprovalVote,
  NewRequest,
  RequestFilter,
  RequestStatus,
} from '../core/approvals/request.ts';
import { canonical } from '../core/audit/canonical.ts';
import type { AuditSearch } from '../core/audit/search.ts';
import type { RawAuditReader, RawAuditRecord } from '../core/audit/verify.ts';
import { AirlockError } from '../core/errors.ts';
import type { RecordingFilter, RecordingFormat, RecordingMeta } from '../core/recording/types.ts';
import type {
  ApiTokenRecord,
  AuditRecord,
  ConsoleSessionRecord,
  RequestPatch,
  Store,
} from '../core/store.ts';
import { migrateToLatest } from './migrations.ts';
import { SqliteAuditWriter } from './sqlite-audit-writer.ts';

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

const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;
/** Rows per INSERT; keeps each statement well under SQLite's bound-parameter limit. */
const AUDIT_INSERT_CHUNK = 500;

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

export interface SqliteStoreOptions {
  /** A file path, or ':memory:'. */
  readonly filename: string;
}

export class SqliteStore implements Store, RawAuditReader {
  readonly db: Kysely<StoreSchema>;
  private readonly sqlite: Database.Database;
  private rawAuditStmt: Database.Statement<[number, number], unknown[]> | undefined;
  /** Audit batches commit on their own thread (file databases only; see sqlite-audit-writer.ts). */
  private readonly auditWriter: SqliteAuditWriter | undefined;
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    const memory = options.filename === ':memory:';
    if (!memory) mkdirSync(dirname(options.filename), { recursive: true });
    try {
      this.sqlite = new Database(options.filename);
      if (!memory) this.sqlite.pragma('journal_mode = WAL');
      this.sqlite.pragma('synchronous = FULL');
      this.sqlite.pragma('foreign_keys = ON');
      // Another process (a CLI running `audit verify`) may hold a read lock briefly.
      this.sqlite.pragma('busy_timeout = 5000');
    } catch (err) {
      throw new AirlockError(
        'AIRLOCK_E_STORE_UNAVAILABLE',
        `the SQLite store ${options.filename} could not be opened: ${(err as Error).message}`,
        {
          hint: 'check that the path is writable and not used by another program',
          cause: err,
        },
      );
    }
    this.db = new Kysely<StoreSchema>({ dialect: new SqliteDialect({ database: this.sqlite }) });
    this.auditWriter = memory ? undefined : new SqliteAuditWriter(options.filename);
  }

  async migrate(): Promise<void> {
    await migrateToLatest(this.db as unknown as Kysely<unknown>, 'sqlite');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.auditWriter?.close();
    // Kysely's destroy closes the better-sqlite3 handle.
    await this.db.destroy();
  }

  async createRequest(request: NewRequest): Promise<ApprovalRequest> {
    const row = await this.db
      .insertInto('requests')
      .values({
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
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return requestFromRow(row, []);
  }

  async getRequest(id: number): Promise<ApprovalRequest | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) return undefined;
      const votes = await trx
        .selectFrom('request_approvals')
        .selectAll()
        .where('request_id', '=', id)
        .orderBy('at')
        .orderBy('by')
        .execute();
      return requestFromRow(row, votes.map(voteFromRow));
    });
  }

  async listRequests(filter: RequestFilter = {}): Promise<ApprovalRequest[]> {
    const limit = Math.min(Math.max(1, filter.limit ?? DEFAULT_LIST_LIMIT), MAX_LIST_LIMIT);
    let query = this.db.selectFrom('requests').selectAll();
    if (filter.status && filter.status.length > 0) query = query.where('status', 'in', [...filter.status]);
    if (filter.connection !== undefined) query = query.where('connection', '=', filter.connection);
    if (filter.principal !== undefined) query = query.where('principal_name', '=', filter.principal);
    if (filter.protocol !== undefined) query = query.where('protocol', '=', filter.protocol);
    if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
    if (filter.since !== undefined) query = query.where('created_at', '>=', filter.since);
    if (filter.until !== undefined) query = query.where('created_at', '<=', filter.until);
    const rows = await query.orderBy('id', 'desc').limit(limit).execute();
    return this.withVotes(rows);
  }

  async updateRequest(
    id: number,
    from: readonly RequestStatus[],
    patch: RequestPatch,
  ): Promise<ApprovalRequest | undefined> {
    if (from.length === 0) return undefined;
    const set: Updateable<RequestsTable> = {};
    if (patch.status !== undefined) set.status = patch.status;
    if (patch.decidedAt !== undefined) set.decided_at = patch.decidedAt;
    if (patch.deniedBy !== undefined) set.denied_by = patch.deniedBy;
    if (patch.reason !== undefined) set.reason = patch.reason;
    if (patch.grantUntil !== undefined) set.grant_until = patch.grantUntil;
    return this.db.transaction().execute(async (trx) => {
      // The status test is in the UPDATE itself, so two deciders racing cannot both win.
      const result = await trx
        .updateTable('requests')
        .set(Object.keys(set).length > 0 ? set : { status: sql<string>`status` })
        .where('id', '=', id)
        .where('status', 'in', [...from])
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) return undefined;
      const row = await trx.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const votes = await trx
        .selectFrom('request_approvals')
        .selectAll()
        .where('request_id', '=', id)
        .orderBy('at')
        .execute();
      return requestFromRow(row, votes.map(voteFromRow));
    });
  }

  async addApproval(id: number, vote: ApprovalVote): Promise<ApprovalRequest | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
      if (row?.status !== 'pending') return undefined;
      await trx
        .insertInto('request_approvals')
        .values({
          request_id: id,
          by: vote.by,
          at: vote.at,
          note: vote.note ?? null,
          groups: vote.groups === undefined ? null : JSON.stringify(vote.groups),
        })
        .onConflict((oc) => oc.columns(['request_id', 'by']).doNothing())
        .execute();
      const votes = await trx
        .selectFrom('request_approvals')
        .selectAll()
        .where('request_id', '=', id)
        .orderBy('at')
        .execute();
      return requestFromRow(row, votes.map(voteFromRow));
    });
  }

  async activeGrants(now: number): Promise<ApprovalRequest[]> {
    const rows = await this.db
      .selectFrom('requests')
      .selectAll()
      .where('status', 'in', ['approved', 'executed'])
      .where('grant_until', '>', now)
      .orderBy('id')
      .execute();
    return this.withVotes(rows);
  }

  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.auditWriter) {
      await this.auditWriter.append(records);
      return;
    }
    const rows = records.map((r) => ({
      seq: r.seq,
      at: r.at,
      type: r.type,
      data: r.dataJson ?? canonical(r.data),
      prev_hash: r.prevHash,
      hash: r.hash,
    }));
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += AUDIT_INSERT_CHUNK) {
        await trx
          .insertInto('audit')
          .values(rows.slice(i, i + AUDIT_INSERT_CHUNK))
          .execute();
      }
    });
  }

  async auditHead(): Promise<AuditRecord | undefined> {
    const row = await this.db
      .selectFrom('audit')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? auditFromRow(row) : undefined;
  }

  async readAudit(fromSeq: number, limit: number): Promise<AuditRecord[]> {
    const rows = await this.db
      .selectFrom('audit')
      .selectAll()
      .where('seq', '>=', fromSeq)
      .orderBy('seq')
      .limit(Math.max(1, limit))
      .execute();
    return rows.map(auditFromRow);
  }

  /**
   * The verifier's read path. It bypasses Kysely and fetches rows as arrays: verification of a
   * large log is dominated by per-row overhead, and this is a fixed, parameterized query.
   */
  async readAuditRaw(fromSeq: number, limit: number): Promise<RawAuditRecord[]> {
    this.rawAuditStmt ??= this.sqlite
      .prepare<[number, number], unknown[]>(
        'SELECT seq, at, type, data, prev_hash, hash FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?',
      )
      .raw(true);
    const rows = this.rawAuditStmt.all(fromSeq, Math.max(1, limit));
    const out: RawAuditRecord[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      out[i] = {
        seq: Number(r[0]),
        at: Number(r[1]),
        type: String(r[2]),
        dataJson: String(r[3]),
        prevHash: String(r[4]),
        hash: String(r[5]),
      };
    }
    return out;
  }

  async auditCount(): Promise<number> {
    const row = await this.db
      .selectFrom('audit')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async createApiToken(token: ApiTokenRecord): Promise<void> {
    await this.db.insertInto('api_tokens').values(apiTokenToRow(token)).execute();
  }

  async findApiToken(hash: string): Promise<ApiTokenRecord | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('hash', '=', hash)
      .executeTakeFirst();
    return row ? apiTokenFromRow(row) : undefined;
  }

  async listApiTokens(filter: { readonly name?: string } = {}): Promise<ApiTokenRecord[]> {
    let query = this.db.selectFrom('api_tokens').selectAll();
    if (filter.name !== undefined) query = query.where('name', '=', filter.name);
    const rows = await query.orderBy('created_at', 'desc').orderBy('id').limit(MAX_LIST_LIMIT).execute();
    return rows.map(apiTokenFromRow);
  }

  async revokeApiToken(id: string, at: number, by: string): Promise<ApiTokenRecord | undefined> {
    return this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('api_tokens')
        .set({ revoked_at: at, revoked_by: by })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .execute();
      const row = await trx.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? apiTokenFromRow(row) : undefined;
    });
  }

  async createConsoleSession(session: ConsoleSessionRecord): Promise<void> {
    await this.db.insertInto('console_sessions').values(consoleSessionToRow(session)).execute();
  }

  async getConsoleSession(idHash: string): Promise<ConsoleSessionRecord | undefined> {
    const row = await this.db
      .selectFrom('console_sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    return row ? consoleSessionFromRow(row) : undefined;
  }

  async deleteConsoleSession(idHash: string): Promise<boolean> {
    const r = await this.db.deleteFrom('console_sessions').where('id_hash', '=', idHash).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async deleteExpiredConsoleSessions(now: number): Promise<number> {
    const r = await this.db.deleteFrom('console_sessions').where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async sharedSecret(name: string, candidate: string): Promise<string> {
    await this.db
      .insertInto('shared_secrets')
      .values({ name, value: candidate, created_at: Date.now() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await this.db
      .selectFrom('shared_secrets')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return row.value;
  }

  async putRecording(meta: RecordingMeta): Promise<void> {
    const row = recordingToRow(meta);
    const { id: _, ...rest } = row;
    await this.db
      .insertInto('recordings')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet(rest))
      .execute();
  }

  async getRecording(id: string): Promise<RecordingMeta | undefined> {
    const row = await this.db.selectFrom('recordings').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? recordingFromRow(row) : undefined;
  }

  async listRecordings(filter: RecordingFilter = {}): Promise<RecordingMeta[]> {
    const limit = Math.min(Math.max(1, filter.limit ?? DEFAULT_LIST_LIMIT), MAX_LIST_LIMIT);
    let query = this.db.selectFrom('recordings').selectAll();
    if (filter.sessionId !== undefined) query = query.where('session_id', '=', filter.sessionId);
    if (filter.connection !== undefined) query = query.where('connection', '=', filter.connection);
    const before = filter.before;
    if (before !== undefined)
      query = query.where((eb) =>
        eb.or([
          eb('started_at', '<', before.startedAt),
          eb.and([eb('started_at', '=', before.startedAt), eb('id', '<', before.id)]),
        ]),
      );
    const rows = await query.orderBy('started_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    return rows.map(recordingFromRow);
  }

  /** Retention (core/audit/retention.ts): drops records below `seq` after the cut was recorded. */
  async deleteAuditBefore(seq: number): Promise<number> {
    const r = await this.db.deleteFrom('audit').where('seq', '<', seq).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Audit search (core/audit/search.ts) within a seq window, newest first. */
  async searchAudit(
    q: AuditSearch & { readonly fromSeq: number; readonly toSeq: number; readonly limit: number },
  ): Promise<AuditRecord[]> {
    let query = this.db
      .selectFrom('audit')
      .selectAll()
      .where('seq', '>=', q.fromSeq)
      .where('seq', '<', q.toSeq);
    if (q.type !== undefined) query = query.where('type', '=', q.type);
    if (q.principal !== undefined)
      query = query.where(sql<string>`json_extract(data, '$.principal.name')`, '=', q.principal);
    if (q.connection !== undefined)
      query = query.where(sql<string>`json_extract(data, '$.connection')`, '=', q.connection);
    if (q.kind !== undefined) query = query.where(sql<string>`json_extract(data, '$.kind')`, '=', q.kind);
    if (q.decision !== undefined)
      query = query.where(sql<string>`json_extract(data, '$.decision')`, '=', q.decision);
    if (q.requestId !== undefined)
      query = query.where(sql<number>`json_extract(data, '$.requestId')`, '=', q.requestId);
    if (q.text !== undefined) query = query.where(sql<number>`instr(data, ${q.text})`, '>', 0);
    const rows = await query.orderBy('seq', 'desc').limit(q.limit).execute();
    return rows.map(auditFromRow);
  }

  private async withVotes(rows: Selectable<RequestsTable>[]): Promise<ApprovalRequest[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => Number(r.id));
    const votes = await this.db
      .selectFrom('request_approvals')
      .selectAll()
      .where('request_id', 'in', ids)
      .orderBy('at')
      .execute();
    const byRequest = new Map<number, ApprovalVote[]>();
    for (const v of votes) {
      const list = byRequest.get(Number(v.request_id)) ?? [];
      list.push(voteFromRow(v));
      byRequest.set(Number(v.request_id), list);
    }
    return rows.map((r) => requestFromRow(r, byRequest.get(Number(r.id)) ?? []));
  }
}

function voteFromRow(row: Selectable<ApprovalsTable>): ApprovalVote {
  return {
    by: row.by,
    at: Number(row.at),
    ...(row.note === null ? {} : { note: row.note }),
    ...(row.groups === null || row.groups === undefined
      ? {}
      : { groups: JSON.parse(row.groups) as string[] }),
  };
}
