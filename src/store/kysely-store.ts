/**
 * The queries both stores run the same way, written once over Kysely. Each store extends this
 * and keeps only what its database does differently: how requests are created and decided under
 * concurrency (one process on SQLite, several replicas on PostgreSQL), how audit batches are
 * appended, how the audit log is searched and read raw, and what it adds (leases, events).
 */
import type { Kysely, Selectable } from 'kysely';
import type { ApprovalRequest, ApprovalVote, RequestFilter } from '../core/approvals/request.ts';
import type { RecordingFilter, RecordingMeta } from '../core/recording/types.ts';
import type { ApiTokenRecord, AuditRecord, ConsoleSessionRecord } from '../core/store.ts';
import {
  apiTokenFromRow,
  apiTokenToRow,
  auditFromRow,
  consoleSessionFromRow,
  consoleSessionToRow,
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  type RequestsTable,
  recordingFromRow,
  recordingToRow,
  requestFromRow,
  type StoreSchema,
  voteFromRow,
} from './schema.ts';

export abstract class KyselyStore {
  /** The shared tables; a store with more tables keeps its own, wider handle too. */
  protected readonly shared: Kysely<StoreSchema>;

  protected constructor(db: Kysely<StoreSchema>) {
    this.shared = db;
  }

  // ---- requests ----

  async listRequests(filter: RequestFilter = {}): Promise<ApprovalRequest[]> {
    const limit = Math.min(Math.max(1, filter.limit ?? DEFAULT_LIST_LIMIT), MAX_LIST_LIMIT);
    let query = this.shared.selectFrom('requests').selectAll();
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

  async activeGrants(now: number): Promise<ApprovalRequest[]> {
    const rows = await this.shared
      .selectFrom('requests')
      .selectAll()
      .where('status', 'in', ['approved', 'executed'])
      .where('grant_until', '>', now)
      .orderBy('id')
      .execute();
    return this.withVotes(rows);
  }

  /** One request's votes, in the order they were cast. */
  protected async votes(db: Kysely<StoreSchema>, id: number): Promise<ApprovalVote[]> {
    const votes = await db
      .selectFrom('request_approvals')
      .selectAll()
      .where('request_id', '=', id)
      .orderBy('at')
      .orderBy('by')
      .execute();
    return votes.map(voteFromRow);
  }

  /** Requests with their votes: one query for all the votes, not one per request. */
  protected async withVotes(rows: Selectable<RequestsTable>[]): Promise<ApprovalRequest[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => Number(r.id));
    const votes = await this.shared
      .selectFrom('request_approvals')
      .selectAll()
      .where('request_id', 'in', ids)
      .orderBy('at')
      .orderBy('by')
      .execute();
    const byRequest = new Map<number, ApprovalVote[]>();
    for (const v of votes) {
      const list = byRequest.get(Number(v.request_id)) ?? [];
      list.push(voteFromRow(v));
      byRequest.set(Number(v.request_id), list);
    }
    return rows.map((r) => requestFromRow(r, byRequest.get(Number(r.id)) ?? []));
  }

  // ---- audit ----

  async auditHead(): Promise<AuditRecord | undefined> {
    const row = await this.shared
      .selectFrom('audit')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? auditFromRow(row) : undefined;
  }

  async readAudit(fromSeq: number, limit: number): Promise<AuditRecord[]> {
    const rows = await this.shared
      .selectFrom('audit')
      .selectAll()
      .where('seq', '>=', fromSeq)
      .orderBy('seq')
      .limit(Math.max(1, limit))
      .execute();
    return rows.map(auditFromRow);
  }

  async auditCount(): Promise<number> {
    const row = await this.shared
      .selectFrom('audit')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  // ---- API tokens (looked up per use, so a revocation holds on every replica at once) ----

  async createApiToken(token: ApiTokenRecord): Promise<void> {
    await this.shared.insertInto('api_tokens').values(apiTokenToRow(token)).execute();
  }

  async findApiToken(hash: string): Promise<ApiTokenRecord | undefined> {
    const row = await this.shared
      .selectFrom('api_tokens')
      .selectAll()
      .where('hash', '=', hash)
      .executeTakeFirst();
    return row ? apiTokenFromRow(row) : undefined;
  }

  async listApiTokens(filter: { readonly name?: string } = {}): Promise<ApiTokenRecord[]> {
    let query = this.shared.selectFrom('api_tokens').selectAll();
    if (filter.name !== undefined) query = query.where('name', '=', filter.name);
    const rows = await query.orderBy('created_at', 'desc').orderBy('id').limit(MAX_LIST_LIMIT).execute();
    return rows.map(apiTokenFromRow);
  }

  async revokeApiToken(id: string, at: number, by: string): Promise<ApiTokenRecord | undefined> {
    // One statement: the first revocation wins and is kept; later ones only read it back.
    const updated = await this.shared
      .updateTable('api_tokens')
      .set({ revoked_at: at, revoked_by: by })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (updated) return apiTokenFromRow(updated);
    const row = await this.shared
      .selectFrom('api_tokens')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? apiTokenFromRow(row) : undefined;
  }

  // ---- console sessions (read by every replica; see src/server/console-sessions.ts) ----

  async createConsoleSession(session: ConsoleSessionRecord): Promise<void> {
    await this.shared.insertInto('console_sessions').values(consoleSessionToRow(session)).execute();
  }

  async getConsoleSession(idHash: string): Promise<ConsoleSessionRecord | undefined> {
    const row = await this.shared
      .selectFrom('console_sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    return row ? consoleSessionFromRow(row) : undefined;
  }

  async deleteConsoleSession(idHash: string): Promise<boolean> {
    const r = await this.shared
      .deleteFrom('console_sessions')
      .where('id_hash', '=', idHash)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async deleteExpiredConsoleSessions(now: number): Promise<number> {
    const r = await this.shared
      .deleteFrom('console_sessions')
      .where('expires_at', '<=', now)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** The value stored under `name`, storing `candidate` first if there is none (first one wins). */
  async sharedSecret(name: string, candidate: string): Promise<string> {
    await this.shared
      .insertInto('shared_secrets')
      .values({ name, value: candidate, created_at: Date.now() })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await this.shared
      .selectFrom('shared_secrets')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return row.value;
  }

  // ---- recordings ----

  async putRecording(meta: RecordingMeta): Promise<void> {
    const row = recordingToRow(meta);
    const { id: _, ...rest } = row;
    await this.shared
      .insertInto('recordings')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet(rest))
      .execute();
  }

  async getRecording(id: string): Promise<RecordingMeta | undefined> {
    const row = await this.shared
      .selectFrom('recordings')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? recordingFromRow(row) : undefined;
  }

  async listRecordings(filter: RecordingFilter = {}): Promise<RecordingMeta[]> {
    const limit = Math.min(Math.max(1, filter.limit ?? DEFAULT_LIST_LIMIT), MAX_LIST_LIMIT);
    let query = this.shared.selectFrom('recordings').selectAll();
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
}
