/**
 * The shared store: PostgreSQL through `pg`, behind Kysely with the same queries and migrations
 * as the embedded store, so several gateway replicas can keep one source of truth.
 *
 * What sharing adds over SQLite:
 * - Migrations run under a session-level advisory lock, so replicas starting together apply
 *   each migration once and the others wait, then find the schema current.
 * - Audit appends take a transaction-scoped advisory lock and read the chain's head inside it.
 *   Each replica hashes its batch against the head it last saw; when another replica appended
 *   in between, the batch is renumbered and rehashed onto the real head before it is inserted,
 *   so the log stays one gap-free chain and group commit keeps its one transaction per batch.
 * - Replica leases: every replica heartbeats a row (on the database's clock, so replicas'
 *   clocks need not agree) and records which pending requests it holds, so survivors can
 *   cancel the requests of a replica that died (see replica-leases.ts).
 */
import { randomUUID } from 'node:crypto';
import {
  Kysely,
  type Kysely as KyselyType,
  type Migration,
  type MigrationProvider,
  Migrator,
  PostgresDialect,
  sql,
} from 'kysely';
import pg from 'pg';
import type { ApprovalRequest, ApprovalVote, NewRequest, RequestStatus } from '../core/approvals/request.ts';
import { canonical } from '../core/audit/canonical.ts';
import { hashCanonicalData } from '../core/audit/chain.ts';
import type { RawAuditReader, RawAuditRecord } from '../core/audit/verify.ts';
import { AirlockError } from '../core/errors.ts';
import type { AuditRecord, RequestPatch, Store } from '../core/store.ts';
import { KyselyStore } from './kysely-store.ts';
import { migrateToLatest } from './migrations.ts';
import { newRequestRow, requestFromRow, requestPatchSet, type StoreSchema, voteRow } from './schema.ts';

/** Which replica holds which pending request, for leases. PostgreSQL only. */
interface RequestHoldersTable {
  request_id: number;
  replica_id: string;
}

interface ReplicasTable {
  id: string;
  started_at: number;
  heartbeat_at: number;
  /** Where the replica's API listens, for people reading the table. */
  info: string;
}

export interface PostgresSchema extends StoreSchema {
  airlock_request_holders: RequestHoldersTable;
  airlock_replicas: ReplicasTable;
}

/**
 * Advisory lock keys: (class, object) pairs in the two-int4 key space, with a class that spells
 * "ARLK" so they do not collide with locks other software takes on the same database.
 */
const LOCK_CLASS = 0x41524c4b;
const MIGRATION_LOCK = 1;
const AUDIT_LOCK = 2;

const _DEFAULT_LIST_LIMIT = 100;
/** Batches up to this size try the one-statement append (6 parameters a record). */
const FAST_APPEND_MAX = 1000;
/** After the fast path missed, how long to use the locked path directly. */
const CONTENDED_MS = 1_000;
const LOCKED_APPEND_ATTEMPTS = 5;
const MAX_CREATED_TRACKED = 100_000;
const MAX_LIST_LIMIT = 1000;
/** Rows per INSERT: 6 parameters each, well under PostgreSQL's 65535 bind parameters. */
const AUDIT_INSERT_CHUNK = 1000;

/** The database's clock in epoch milliseconds: one clock for every replica's leases. */
const DB_NOW_MS = sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;

// pg returns int8 as strings (to keep precision); every id, seq and time here is a safe integer.
const INT8_OID = 20;

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database (libpq-style query options accepted). */
  readonly connectionString: string;
  /** Identifies this process in leases. Default: a random UUID. */
  readonly replicaId?: string;
  /** Pool size. Default 10. */
  readonly maxConnections?: number;
}

/** Pending requests a dead replica held, found by lease. */
export interface OrphanedRequest {
  readonly requestId: number;
  readonly replicaId: string;
}

export class PostgresStore extends KyselyStore implements Store, RawAuditReader {
  readonly db: Kysely<PostgresSchema>;
  readonly replicaId: string;
  /** For the event bus, which needs its own dedicated connection. */
  readonly connectionString: string;
  /** Requests created through this store object (this replica), until they are final. */
  private readonly created = new Set<number>();
  /** Until then, audit appends go straight to the locked path (another replica is appending). */
  private auditContendedUntil = 0;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    const pool = openPool(options.connectionString, options.maxConnections ?? 10);
    const db = new Kysely<PostgresSchema>({ dialect: new PostgresDialect({ pool }) });
    super(db as unknown as Kysely<StoreSchema>);
    this.db = db;
    this.connectionString = options.connectionString;
    this.replicaId = options.replicaId ?? randomUUID();
  }

  /** Applies the shared migrations, then the PostgreSQL-only ones, under one advisory lock. */
  async migrate(): Promise<void> {
    try {
      await this.db.connection().execute(async (conn) => {
        await sql`SELECT pg_advisory_lock(${LOCK_CLASS}, ${MIGRATION_LOCK})`.execute(conn);
        try {
          await migrateToLatest(conn as unknown as KyselyType<unknown>, 'postgres');
          await migrateShared(conn as unknown as KyselyType<unknown>);
        } finally {
          await sql`SELECT pg_advisory_unlock(${LOCK_CLASS}, ${MIGRATION_LOCK})`.execute(conn);
        }
      });
    } catch (err) {
      throw unavailable(this.connectionString, 'could not be migrated', err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Kysely's destroy ends the pool.
    await this.db.destroy();
  }

  /** Cheap round trip for readiness checks. */
  async ping(): Promise<void> {
    await sql`SELECT 1`.execute(this.db);
  }

  async createRequest(request: NewRequest): Promise<ApprovalRequest> {
    const row = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('requests')
        .values(newRequestRow(request))
        .returningAll()
        .executeTakeFirstOrThrow();
      // A `wait` hold lives on the replica that created it (its caller's connection is here);
      // leases cancel it if this replica dies. A `retry` request has no connection to lose.
      if (request.review.hold === 'wait')
        await trx
          .insertInto('airlock_request_holders')
          .values({ request_id: Number(row.id), replica_id: this.replicaId })
          .execute();
      return row;
    });
    this.created.add(Number(row.id));
    // Bounded: a request this replica never hears the end of must not pin memory forever.
    if (this.created.size > MAX_CREATED_TRACKED)
      this.created.delete(this.created.values().next().value as number);
    return requestFromRow(row, []);
  }

  /** Whether the request was created on this replica (and is not known to be final yet). */
  createdHere(id: number): boolean {
    return this.created.has(id);
  }

  forgetCreated(id: number): void {
    this.created.delete(id);
  }

  async getRequest(id: number): Promise<ApprovalRequest | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    const row = await this.db
      .selectFrom('requests')
      .selectAll()
      .select(votesOf('requests.id'))
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? requestFromRow(row, row.votes.map(voteFromJson)) : undefined;
  }

  async updateRequest(
    id: number,
    from: readonly RequestStatus[],
    patch: RequestPatch,
  ): Promise<ApprovalRequest | undefined> {
    if (from.length === 0 || !Number.isSafeInteger(id)) return undefined;
    const set = requestPatchSet(patch);
    // One statement: the status test is in the UPDATE itself (under READ COMMITTED a racing
    // UPDATE waits for the row lock, then re-checks it), so two deciders cannot both win; the
    // votes come back with the row.
    const row = await this.db
      .with('u', (db) =>
        db
          .updateTable('requests')
          .set(Object.keys(set).length > 0 ? set : { status: sql<string>`status` })
          .where('id', '=', id)
          .where('status', 'in', [...from])
          .returningAll(),
      )
      .selectFrom('u')
      .selectAll()
      .select(votesOf('u.id'))
      .executeTakeFirst();
    return row ? requestFromRow(row, row.votes.map(voteFromJson)) : undefined;
  }

  async addApproval(id: number, vote: ApprovalVote): Promise<ApprovalRequest | undefined> {
    if (!Number.isSafeInteger(id)) return undefined;
    return this.db.transaction().execute(async (trx) => {
      // FOR SHARE: a decision committing on another replica waits for this vote, or this vote
      // sees the decision and is refused; a vote never lands on a decided request.
      const row = await trx
        .selectFrom('requests')
        .selectAll()
        .where('id', '=', id)
        .forShare()
        .executeTakeFirst();
      if (row?.status !== 'pending') return undefined;
      await trx
        .insertInto('request_approvals')
        .values(voteRow(id, vote))
        .onConflict((oc) => oc.columns(['request_id', 'by']).doNothing())
        .execute();
      return requestFromRow(row, await this.votes(trx as unknown as Kysely<StoreSchema>, id));
    });
  }

  /** Appends records exactly as given (their seq must be next), under the audit lock. */
  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${AUDIT_LOCK})`.execute(trx);
      await insertAudit(trx, records);
    });
  }

  /**
   * Appends onto the chain's current head: renumbers and rehashes the batch when another
   * replica appended since this one last saw the head. Returns the records as committed.
   *
   * Fast path, one round trip: a single INSERT that takes the audit lock if it is free and
   * inserts only if the batch follows the head (the record before it is there with the hash it
   * names, nothing after it). Its snapshot may predate a commit it did not wait for; then the
   * primary key on seq refuses the insert rather than fork the chain. When the fast path misses
   * (the head moved: another replica wrote, or holds the lock), the locked path runs, and is
   * used directly for a while since the other replica is likely still writing.
   */
  async appendAuditOnHead(records: readonly AuditRecord[]): Promise<readonly AuditRecord[]> {
    if (records.length === 0) return records;
    if (records.length <= FAST_APPEND_MAX && Date.now() >= this.auditContendedUntil) {
      try {
        if (await this.insertIfOnHead(records)) return records;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
      this.auditContendedUntil = Date.now() + CONTENDED_MS;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(async (trx) => {
          await sql`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${AUDIT_LOCK})`.execute(trx);
          const head = await trx
            .selectFrom('audit')
            .select(['seq', 'hash'])
            .orderBy('seq', 'desc')
            .limit(1)
            .executeTakeFirst();
          const first = records[0]!;
          const onHead = head
            ? first.seq === Number(head.seq) + 1 && first.prevHash === head.hash
            : first.seq === 1;
          const committed = onHead ? records : rechain(records, head);
          await insertAudit(trx, committed);
          return committed;
        });
      } catch (err) {
        // Fast-path appends take the lock too, so this is only a writer that ignores it (an
        // older Airlock during an upgrade): someone made progress; read the head again.
        if (!isUniqueViolation(err) || attempt >= LOCKED_APPEND_ATTEMPTS) throw err;
      }
    }
  }

  /** The fast path: true if the batch was inserted, false if it does not follow the head. */
  private async insertIfOnHead(records: readonly AuditRecord[]): Promise<boolean> {
    const first = records[0]!;
    const rows = records.map(
      (r) =>
        sql`(${r.seq}::bigint, ${r.at}::bigint, ${r.type}::text, ${r.dataJson ?? canonical(r.data)}::text, ${r.prevHash}::text, ${r.hash}::text)`,
    );
    const follows =
      first.seq === 1
        ? sql`true`
        : sql`exists (select 1 from audit where seq = ${first.seq - 1} and hash = ${first.prevHash})`;
    // The statement holds the audit lock while it inserts (or does nothing if a locked append
    // holds it), so a locked append never has its head taken from under it.
    const result = await sql`
      with l as (select pg_try_advisory_xact_lock(${LOCK_CLASS}, ${AUDIT_LOCK}) as ok)
      insert into audit (seq, at, type, data, prev_hash, hash)
      select v.seq, v.at, v.type, v.data, v.prev_hash, v.hash
      from (values ${sql.join(rows)}) as v (seq, at, type, data, prev_hash, hash), l
      where l.ok and ${follows} and not exists (select 1 from audit where seq >= ${first.seq})`.execute(
      this.db,
    );
    return Number(result.numAffectedRows ?? 0) === records.length;
  }

  /** The verifier's read path: rows with their data text exactly as stored. */
  async readAuditRaw(fromSeq: number, limit: number): Promise<RawAuditRecord[]> {
    const rows = await this.db
      .selectFrom('audit')
      .selectAll()
      .where('seq', '>=', fromSeq)
      .orderBy('seq')
      .limit(Math.max(1, limit))
      .execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      at: Number(r.at),
      type: r.type,
      dataJson: r.data,
      prevHash: r.prev_hash,
      hash: r.hash,
    }));
  }

  // ---- API tokens (looked up per use, so a revocation holds on every replica at once) ----

  // ---- console sessions (read by every replica; see src/server/console-sessions.ts) ----

  // ---- recordings ----

  // ---- replica leases ----

  /** Records (or renews) this replica's lease. */
  async heartbeat(info = ''): Promise<void> {
    await this.db
      .insertInto('airlock_replicas')
      .values({ id: this.replicaId, started_at: DB_NOW_MS, heartbeat_at: DB_NOW_MS, info })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: DB_NOW_MS }))
      .execute();
  }

  /** A clean shutdown: this replica's lease ends now, so nobody waits out its timeout. */
  async retire(): Promise<void> {
    await this.db.deleteFrom('airlock_replicas').where('id', '=', this.replicaId).execute();
  }

  /**
   * Pending requests held by replicas whose lease ran out more than `leaseMs` ago (by the
   * database's clock), or whose replica is gone from the table without retiring them.
   */
  async orphanedRequests(leaseMs: number): Promise<OrphanedRequest[]> {
    const rows = await this.db
      .selectFrom('airlock_request_holders as h')
      .innerJoin('requests as r', 'r.id', 'h.request_id')
      .leftJoin('airlock_replicas as p', 'p.id', 'h.replica_id')
      .select(['h.request_id', 'h.replica_id'])
      .where('r.status', '=', 'pending')
      .where('h.replica_id', '<>', this.replicaId)
      .where((eb) =>
        eb.or([eb('p.id', 'is', null), eb('p.heartbeat_at', '<', sql<number>`${DB_NOW_MS} - ${leaseMs}`)]),
      )
      .orderBy('h.request_id')
      .limit(MAX_LIST_LIMIT)
      .execute();
    return rows.map((r) => ({ requestId: Number(r.request_id), replicaId: r.replica_id }));
  }

  /** Forgets replicas whose lease ran out and that hold no pending request any more. */
  async pruneReplicas(leaseMs: number): Promise<void> {
    await this.db
      .deleteFrom('airlock_replicas as p')
      .where('p.heartbeat_at', '<', sql<number>`${DB_NOW_MS} - ${leaseMs}`)
      .where('p.id', '<>', this.replicaId)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('airlock_request_holders as h')
              .innerJoin('requests as r', 'r.id', 'h.request_id')
              .select('h.request_id')
              .whereRef('h.replica_id', '=', 'p.id')
              .where('r.status', '=', 'pending'),
          ),
        ),
      )
      .execute();
  }

  /**
   * Requests pending, decided since `decidedSince` (or approved with a grant open since then),
   * or named: what a bus compares to re-sync.
   */
  async requestStatuses(
    decidedSince: number,
    ids: readonly number[],
  ): Promise<{ id: number; status: RequestStatus }[]> {
    const rows = await this.db
      .selectFrom('requests')
      .select(['id', 'status'])
      .where((eb) => {
        const any = [
          eb('status', '=', 'pending'),
          // An approval unused for long (a retry grant) is still open while its window is.
          eb.and([eb('status', '=', 'approved'), eb('grant_until', '>=', decidedSince)]),
          eb('decided_at', '>=', decidedSince),
        ];
        if (ids.length > 0) any.push(eb('id', 'in', [...ids]));
        return eb.or(any);
      })
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: Number(r.id), status: r.status as RequestStatus }));
  }
}

async function insertAudit(trx: Kysely<PostgresSchema>, records: readonly AuditRecord[]): Promise<void> {
  const rows = records.map((r) => ({
    seq: r.seq,
    at: r.at,
    type: r.type,
    data: r.dataJson ?? canonical(r.data),
    prev_hash: r.prevHash,
    hash: r.hash,
  }));
  for (let i = 0; i < rows.length; i += AUDIT_INSERT_CHUNK)
    await trx
      .insertInto('audit')
      .values(rows.slice(i, i + AUDIT_INSERT_CHUNK))
      .execute();
}

/** The same records renumbered and rehashed to follow `head` (content and times unchanged). */
function rechain(
  records: readonly AuditRecord[],
  head: { seq: number; hash: string } | undefined,
): AuditRecord[] {
  let seq = head ? Number(head.seq) : 0;
  let prevHash = head ? head.hash : '0'.repeat(64);
  return records.map((r) => {
    seq += 1;
    const dataJson = r.dataJson ?? canonical(r.data);
    const hash = hashCanonicalData(seq, r.at, r.type, dataJson, prevHash);
    const out: AuditRecord = { seq, at: r.at, type: r.type, data: r.data, dataJson, prevHash, hash };
    prevHash = hash;
    return out;
  });
}

interface VoteJson {
  readonly by: string;
  readonly at: number | string;
  readonly note: string | null;
  /** JSON array text, or null. */
  readonly groups: string | null;
}

/** A request's votes as one JSON column, so a request is read in one round trip. */
function votesOf(idColumn: 'requests.id' | 'u.id') {
  return sql<VoteJson[]>`coalesce((
    select json_agg(json_build_object('by', v."by", 'at', v."at", 'note', v."note", 'groups', v."groups") order by v."at", v."by")
    from request_approvals v where v.request_id = ${sql.ref(idColumn)}), '[]'::json)`.as('votes');
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown })?.code === '23505';
}

function voteFromJson(v: VoteJson): ApprovalVote {
  return {
    by: v.by,
    at: Number(v.at),
    ...(v.note === null ? {} : { note: v.note }),
    ...(v.groups === null || v.groups === undefined ? {} : { groups: JSON.parse(v.groups) as string[] }),
  };
}

/** PostgreSQL-only schema (replica leases), tracked apart from the shared migrations. */
const SHARED_MIGRATIONS: Record<string, Migration> = {
  '0001_replica_leases': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('airlock_replicas')
        .ifNotExists()
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('info', 'text', (c) => c.notNull().defaultTo(''))
        .execute();
      await db.schema
        .createTable('airlock_request_holders')
        .ifNotExists()
        .addColumn('request_id', 'bigint', (c) =>
          c.primaryKey().references('requests.id').onDelete('cascade'),
        )
        .addColumn('replica_id', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('airlock_request_holders_replica')
        .ifNotExists()
        .on('airlock_request_holders')
        .column('replica_id')
        .execute();
      // Finding pending requests (leases, bus re-sync) must not scan the whole history.
      await db.schema
        .createIndex('requests_open')
        .ifNotExists()
        .on('requests')
        .column('id')
        .where(sql.ref('status'), 'in', ['pending', 'approved'])
        .execute();
      await db.schema
        .createIndex('requests_decided_at')
        .ifNotExists()
        .on('requests')
        .column('decided_at')
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('airlock_request_holders').ifExists().execute();
      await db.schema.dropTable('airlock_replicas').ifExists().execute();
    },
  },
};

class SharedProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return SHARED_MIGRATIONS;
  }
}

async function migrateShared(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: new SharedProvider(),
    migrationTableName: 'airlock_pg_migration',
    migrationLockTableName: 'airlock_pg_migration_lock',
  });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error;
}

/** Names the server and database, never the password in the URL. */
export function describeTarget(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'the configured server';
  }
}

function unavailable(connectionString: string, what: string, cause: unknown): AirlockError {
  if (cause instanceof AirlockError) return cause;
  const message = (cause as Error)?.message ?? String(cause);
  return new AirlockError(
    'AIRLOCK_E_STORE_UNAVAILABLE',
    `the PostgreSQL store at ${describeTarget(connectionString)} ${what}: ${message}`,
    {
      hint: 'check that PostgreSQL is reachable from this host and that the store URL names a database this user may create tables in',
      cause,
    },
  );
}

function openPool(connectionString: string, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    connectionTimeoutMillis: 10_000,
    // TCP keepalives: a store that vanished without a FIN (a failover, a cut link) is noticed.
    keepAlive: true,
    // Per-connection parser: the global pg.types registry is shared with adapters' clients.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary'
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle pooled connection that the server drops emits 'error' on the pool; the next
  // query gets a fresh connection, so this must not become an uncaught exception.
  pool.on('error', () => {});
  return pool;
}
