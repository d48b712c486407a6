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
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { ApprovalRequest, ApprovalVote, NewRequest, RequestStatus } from '../core/approvals/request.ts';
import { canonical } from '../core/audit/canonical.ts';
import type { AuditSearch } from '../core/audit/search.ts';
import type { RawAuditReader, RawAuditRecord } from '../core/audit/verify.ts';
import { AirlockError } from '../core/errors.ts';
import type { AuditRecord, RequestPatch, Store } from '../core/store.ts';
import { KyselyStore } from './kysely-store.ts';
import { migrateToLatest } from './migrations.ts';
import {
  auditFromRow,
  newRequestRow,
  requestFromRow,
  requestPatchSet,
  type StoreSchema,
  voteRow,
} from './schema.ts';
import { SqliteAuditWriter } from './sqlite-audit-writer.ts';

export interface SqliteStoreOptions {
  /** A file path, or ':memory:'. */
  readonly filename: string;
}

export class SqliteStore extends KyselyStore implements Store, RawAuditReader {
  readonly db: Kysely<StoreSchema>;
  private readonly sqlite: Database.Database;
  private rawAuditStmt: Database.Statement<[number, number], unknown[]> | undefined;
  /** Audit batches commit on their own thread (file databases only; see sqlite-audit-writer.ts). */
  private readonly auditWriter: SqliteAuditWriter | undefined;
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    const memory = options.filename === ':memory:';
    const sqlite = openDatabase(options.filename, memory);
    const db = new Kysely<StoreSchema>({ dialect: new SqliteDialect({ database: sqlite }) });
    super(db);
    this.sqlite = sqlite;
    this.db = db;
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
      .values(newRequestRow(request))
      .returningAll()
      .executeTakeFirstOrThrow();
    return requestFromRow(row, []);
  }

  async getRequest(id: number): Promise<ApprovalRequest | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) return undefined;
      return requestFromRow(row, await this.votes(trx, id));
    });
  }

  async updateRequest(
    id: number,
    from: readonly RequestStatus[],
    patch: RequestPatch,
  ): Promise<ApprovalRequest | undefined> {
    if (from.length === 0 || !Number.isSafeInteger(id)) return undefined;
    const set = requestPatchSet(patch);
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
      return requestFromRow(row, await this.votes(trx, id));
    });
  }

  async addApproval(id: number, vote: ApprovalVote): Promise<ApprovalRequest | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    const v = voteRow(id, vote);
    return this.db.transaction().execute(async (trx) => {
      // Write first: the audit log commits from its own connection, and a transaction that read
      // before writing fails at once (SQLITE_BUSY, no wait) if that connection committed in
      // between. The vote lands only while the request is pending; the row is read afterwards,
      // under this transaction's write lock.
      await sql`INSERT INTO request_approvals (request_id, "by", at, note, groups)
        SELECT ${v.request_id}, ${v.by}, ${v.at}, ${v.note}, ${v.groups}
        WHERE EXISTS (SELECT 1 FROM requests WHERE id = ${id} AND status = 'pending')
        ON CONFLICT (request_id, "by") DO NOTHING`.execute(trx);
      const row = await trx.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirst();
      if (row?.status !== 'pending') return undefined;
      return requestFromRow(row, await this.votes(trx, id));
    });
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
      // Rows per INSERT: well under SQLite's bound-parameter limit.
      for (let i = 0; i < rows.length; i += 500) {
        await trx
          .insertInto('audit')
          .values(rows.slice(i, i + 500))
          .execute();
      }
    });
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
}

function openDatabase(filename: string, memory: boolean): Database.Database {
  if (!memory) mkdirSync(dirname(filename), { recursive: true });
  try {
    const sqlite = new Database(filename);
    if (!memory) sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    // Another process (a CLI running `audit verify`) may hold a read lock briefly.
    sqlite.pragma('busy_timeout = 5000');
    return sqlite;
  } catch (err) {
    throw new AirlockError(
      'AIRLOCK_E_STORE_UNAVAILABLE',
      `the SQLite store ${filename} could not be opened: ${(err as Error).message}`,
      {
        hint: 'check that the path is writable and not used by another program',
        cause: err,
      },
    );
  }
}
