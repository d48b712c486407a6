/**
 * Schema migrations, kept in code (no migration files to ship or lose) and run with Kysely's
 * Migrator, which records what has been applied in its own `kysely_migration` table. Each
 * migration is written once for both stores; `flavor` covers the few spots where SQLite and
 * PostgreSQL differ (auto-increment ids, 64-bit integers).
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import { AirlockError } from '../core/errors.ts';

export type StoreFlavor = 'sqlite' | 'postgres';

/** Times are epoch milliseconds; they overflow 32-bit integers, so PostgreSQL needs bigint. */
function timeType(flavor: StoreFlavor): 'integer' | 'bigint' {
  return flavor === 'postgres' ? 'bigint' : 'integer';
}

export function migrations(flavor: StoreFlavor): Record<string, Migration> {
  const time = timeType(flavor);
  return {
    '0001_requests_and_audit': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('requests')
          .ifNotExists()
          .addColumn('id', flavor === 'postgres' ? 'bigserial' : 'integer', (c) =>
            flavor === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('protocol', 'text', (c) => c.notNull())
          .addColumn('connection', 'text', (c) => c.notNull())
          // Denormalized from `principal` so listing by requester does not parse JSON.
          .addColumn('principal_name', 'text', (c) => c.notNull())
          .addColumn('principal', 'text', (c) => c.notNull())
          .addColumn('session_id', 'text', (c) => c.notNull())
          .addColumn('source', 'text')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('summary', 'text', (c) => c.notNull())
          .addColumn('parts', 'text', (c) => c.notNull())
          .addColumn('attributes', 'text', (c) => c.notNull())
          .addColumn('rule', 'text', (c) => c.notNull())
          .addColumn('why', 'text', (c) => c.notNull())
          .addColumn('review', 'text', (c) => c.notNull())
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('expires_at', time, (c) => c.notNull())
          .addColumn('decided_at', time)
          .addColumn('denied_by', 'text')
          .addColumn('reason', 'text')
          .addColumn('grant_until', time)
          .execute();
        await db.schema
          .createIndex('requests_fingerprint')
          .ifNotExists()
          .on('requests')
          .column('fingerprint')
          .execute();
        await db.schema
          .createIndex('requests_status_grant')
          .ifNotExists()
          .on('requests')
          .columns(['status', 'grant_until'])
          .execute();

        await db.schema
          .createTable('request_approvals')
          .ifNotExists()
          .addColumn('request_id', time, (c) => c.notNull().references('requests.id').onDelete('cascade'))
          .addColumn('by', 'text', (c) => c.notNull())
          .addColumn('at', time, (c) => c.notNull())
          .addColumn('note', 'text')
          .addUniqueConstraint('request_approvals_one_vote', ['request_id', 'by'])
          .execute();

        await db.schema
          .createTable('audit')
          .ifNotExists()
          .addColumn('seq', time, (c) => c.primaryKey())
          .addColumn('at', time, (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('prev_hash', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('audit').ifExists().execute();
        await db.schema.dropTable('request_approvals').ifExists().execute();
        await db.schema.dropTable('requests').ifExists().execute();
      },
    },
    '0002_api_tokens': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('api_tokens')
          .ifNotExists()
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('hash', 'text', (c) => c.notNull().unique())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('groups', 'text', (c) => c.notNull())
          .addColumn('connections', 'text')
          .addColumn('description', 'text')
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('expires_at', time)
          .addColumn('revoked_at', time)
          .addColumn('revoked_by', 'text')
          .execute();
        await db.schema
          .createIndex('api_tokens_name')
          .ifNotExists()
          .on('api_tokens')
          .column('name')
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('api_tokens').ifExists().execute();
      },
    },
    '0003_vote_groups': {
      async up(db: Kysely<unknown>) {
        // JSON array of the reviewer groups the voter was in; null for votes cast before.
        await db.schema.alterTable('request_approvals').addColumn('groups', 'text').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('request_approvals').dropColumn('groups').execute();
      },
    },
    '0003_recordings': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('recordings')
          .ifNotExists()
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('session_id', 'text', (c) => c.notNull())
          .addColumn('connection', 'text', (c) => c.notNull())
          .addColumn('protocol', 'text')
          .addColumn('principal', 'text')
          .addColumn('format', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('started_at', time, (c) => c.notNull())
          .addColumn('ended_at', time)
          .addColumn('bytes', time, (c) => c.notNull())
          .addColumn('sha256', 'text')
          .addColumn('dropped_bytes', time, (c) => c.notNull())
          .addColumn('path', 'text', (c) => c.notNull())
          .addColumn('audit_seq', time)
          .addColumn('error', 'text')
          .execute();
        await db.schema
          .createIndex('recordings_session')
          .ifNotExists()
          .on('recordings')
          .columns(['session_id', 'started_at'])
          .execute();
        await db.schema
          .createIndex('recordings_started')
          .ifNotExists()
          .on('recordings')
          .columns(['started_at', 'id'])
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('recordings').ifExists().execute();
      },
    },
    '0004_console_sessions': {
      async up(db: Kysely<unknown>) {
        // Console sign-ins, so any replica serves them; only hashes of ids and tokens.
        await db.schema
          .createTable('console_sessions')
          .ifNotExists()
          .addColumn('id_hash', 'text', (c) => c.primaryKey())
          .addColumn('principal', 'text', (c) => c.notNull())
          .addColumn('csrf', 'text', (c) => c.notNull())
          .addColumn('method', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text')
          .addColumn('credential_expires_at', time)
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('expires_at', time, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('console_sessions_expires')
          .ifNotExists()
          .on('console_sessions')
          .column('expires_at')
          .execute();
        // Keys every replica must agree on (event stream tickets), created once.
        await db.schema
          .createTable('shared_secrets')
          .ifNotExists()
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('created_at', time, (c) => c.notNull())
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('shared_secrets').ifExists().execute();
        await db.schema.dropTable('console_sessions').ifExists().execute();
      },
    },
  };
}

class InCodeProvider implements MigrationProvider {
  constructor(private readonly flavor: StoreFlavor) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.flavor);
  }
}

/** Applies every pending migration; a no-op when the schema is current. */
export async function migrateToLatest(db: Kysely<unknown>, flavor: StoreFlavor): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new InCodeProvider(flavor) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new AirlockError(
      'AIRLOCK_E_STORE_UNAVAILABLE',
      `the store schema could not be migrated${failed ? ` (migration ${failed} failed)` : ''}: ${(error as Error).message ?? error}`,
      { hint: 'check that the store is writable and was not created by a newer Airlock', cause: error },
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
