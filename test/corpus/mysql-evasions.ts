/**
 * A public corpus of MySQL/MariaDB texts that try to look more harmless than they are, with the
 * kind the MySQL classifier must give the whole text (the most restrictive of its statements).
 * `empty` marks texts with no statement at all (the server answers "Query was empty").
 */
import type { ActionKind } from '../../src/core/action.ts';

export interface EvasionCase {
  readonly sql: string;
  readonly kind: ActionKind | 'empty';
  readonly note: string;
}

export const MYSQL_EVASIONS: readonly EvasionCase[] = [
  // Executable comments are code
  { sql: '/*!DROP*/ TABLE t', kind: 'schema', note: 'the keyword itself inside an executable comment' },
  { sql: '/*!50000 DROP TABLE t */', kind: 'schema', note: 'versioned executable comment' },
  {
    sql: '/*!99999 DROP TABLE t */',
    kind: 'schema',
    note: 'a version newer than the server: still treated as code (more restrictive)',
  },
  { sql: '/*M!100000 DROP TABLE t */', kind: 'schema', note: 'MariaDB-only executable comment' },
  { sql: '/*M! DELETE FROM t */', kind: 'write', note: 'MariaDB executable comment without a version' },
  {
    sql: 'SELECT 1 /*!, LOAD_FILE("/etc/passwd") */',
    kind: 'admin',
    note: 'a function call hidden in an executable comment',
  },
  {
    sql: 'SELECT * FROM t /*!50000 INTO OUTFILE "/tmp/x" */',
    kind: 'admin',
    note: 'INTO OUTFILE hidden in an executable comment',
  },
  {
    sql: 'SELECT 1 /*!50000 ; DROP TABLE t */',
    kind: 'unknown',
    note: 'a statement separator inside an executable comment',
  },
  { sql: 'SELECT 1 /*! /* x */ */', kind: 'unknown', note: 'a comment nested in an executable comment' },
  { sql: 'SELECT 1 /*!50000 ', kind: 'unknown', note: 'an unterminated executable comment' },
  {
    sql: '/*!40101 SET NAMES utf8mb4 */',
    kind: 'read',
    note: 'the mysqldump preamble: a safe character set',
  },
  {
    sql: '/*!40101 SET SQL_MODE="NO_AUTO_VALUE_ON_ZERO" */',
    kind: 'admin',
    note: 'sql_mode changes how the server reads SQL',
  },
  // Comments that are comments
  {
    sql: 'SELECT 1 /* ; DELETE FROM t */',
    kind: 'read',
    note: 'a statement inside a block comment is not a statement',
  },
  { sql: 'SELECT 1 # ; DELETE FROM t', kind: 'read', note: '# comment to the end of the line' },
  { sql: 'SELECT 1 -- ; DELETE FROM t', kind: 'read', note: '-- followed by a space is a comment' },
  { sql: 'SELECT 1 #\n; DELETE FROM t', kind: 'write', note: 'the # comment ends at the newline' },
  { sql: 'SELECT 1 -- x\n; DELETE FROM t', kind: 'write', note: 'the -- comment ends at the newline' },
  { sql: 'SELECT 1 --1; DELETE FROM t', kind: 'write', note: '--1 is minus minus one, not a comment' },
  {
    sql: 'SELECT 1 --\tx\n; DELETE FROM t',
    kind: 'write',
    note: '-- followed by a tab is a comment that ends at the newline',
  },
  { sql: 'SELECT 1-/**/-1; DELETE FROM t', kind: 'write', note: 'a comment between two minus signs' },
  { sql: '/* c */ DELETE /* c */ FROM /**/ t', kind: 'write', note: 'comments between keywords' },
  { sql: 'SELECT 1 /* unterminated', kind: 'unknown', note: 'an unterminated comment' },
  { sql: '-- only a comment', kind: 'empty', note: 'comment only' },
  { sql: '  ;  ; ', kind: 'empty', note: 'empty statements only' },
  { sql: '', kind: 'empty', note: 'empty text' },
  // Quoting
  { sql: "SELECT 'a; DROP TABLE t'", kind: 'read', note: 'a statement inside a string is a string' },
  {
    sql: "SELECT 'a\\'; DROP TABLE t; -- '",
    kind: 'read',
    note: 'a backslash-escaped quote keeps the string open',
  },
  { sql: "SELECT 'a\\\\'; DROP TABLE t", kind: 'schema', note: 'an escaped backslash closes the string' },
  { sql: "SELECT 'a''; DROP TABLE t; -- '", kind: 'read', note: 'a doubled quote keeps the string open' },
  { sql: 'SELECT "a; DROP TABLE t"', kind: 'read', note: 'double-quoted string (default sql_mode)' },
  { sql: 'SELECT `a;b` FROM t', kind: 'read', note: 'a backtick identifier containing a semicolon' },
  {
    sql: 'SELECT 1 FROM `t`; DELETE FROM `t`',
    kind: 'write',
    note: 'backtick identifiers in a second statement',
  },
  { sql: "SELECT 'unterminated", kind: 'unknown', note: 'an unterminated string' },
  { sql: 'SELECT 1\0; DROP TABLE t', kind: 'unknown', note: 'a NUL byte' },
  // Several statements
  { sql: 'SELECT 1; DELETE FROM t', kind: 'write', note: 'a write after a read' },
  { sql: 'SELECT 1;DROP TABLE t', kind: 'schema', note: 'no space after the separator' },
  { sql: 'BEGIN; UPDATE t SET a = 1; COMMIT', kind: 'write', note: 'a write inside a transaction' },
  // Statement types
  { sql: 'REPLACE INTO t VALUES (1)', kind: 'write', note: 'REPLACE deletes and inserts' },
  { sql: 'INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = 2', kind: 'write', note: 'upsert' },
  {
    sql: "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
    kind: 'transfer',
    note: 'a client file sent to the server',
  },
  {
    sql: "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
    kind: 'admin',
    note: 'a server file read into a table',
  },
  { sql: "LOAD XML LOCAL INFILE '/x.xml' INTO TABLE t", kind: 'transfer', note: 'LOAD XML is LOAD DATA too' },
  { sql: "SELECT * FROM t INTO OUTFILE '/tmp/x'", kind: 'admin', note: 'writes a file on the server' },
  { sql: "SELECT * FROM t INTO DUMPFILE '/tmp/x'", kind: 'admin', note: 'writes a file on the server' },
  { sql: "SELECT LOAD_FILE('/etc/passwd')", kind: 'admin', note: 'reads a file on the server' },
  { sql: "SELECT load_file('/etc/passwd')", kind: 'admin', note: 'function names are case-insensitive' },
  { sql: 'SET GLOBAL general_log = 1', kind: 'admin', note: 'changes the server for everyone' },
  { sql: 'SET @@global.max_connections = 1', kind: 'admin', note: 'global variable by @@global' },
  { sql: 'SET sql_log_bin = 0', kind: 'admin', note: 'hides writes from replication' },
  { sql: 'SET foreign_key_checks = 0', kind: 'admin', note: 'turns off constraints' },
  {
    sql: 'SET NAMES gbk',
    kind: 'admin',
    note: 'a multi-byte character set can hide quotes from the classifier',
  },
  { sql: 'SET CHARACTER SET big5', kind: 'admin', note: 'likewise' },
  { sql: 'SET NAMES utf8mb4', kind: 'read', note: 'a safe character set' },
  { sql: 'SET autocommit = 0', kind: 'read', note: 'a harmless session setting' },
  { sql: 'SET @x = (SELECT COUNT(*) FROM t)', kind: 'unknown', note: 'a subquery in SET' },
  { sql: 'SET @x = 5', kind: 'read', note: 'a user variable' },
  { sql: 'SET PASSWORD = PASSWORD("x")', kind: 'privilege', note: 'changes a password' },
  { sql: 'HANDLER t OPEN', kind: 'read', note: 'the low-level read interface' },
  { sql: 'LOCK TABLES t WRITE', kind: 'write', note: 'blocks other sessions' },
  { sql: 'KILL 42', kind: 'admin', note: 'ends another connection' },
  { sql: 'KILL QUERY 42', kind: 'admin', note: 'ends another query' },
  { sql: 'FLUSH PRIVILEGES', kind: 'admin', note: 'server administration' },
  { sql: 'SHUTDOWN', kind: 'admin', note: 'stops the server' },
  { sql: "INSTALL SONAME 'ha_x'", kind: 'admin', note: 'loads code into the server' },
  { sql: "GRANT ALL ON *.* TO 'x'@'%'", kind: 'privilege', note: 'grants privileges' },
  { sql: "REVOKE ALL ON *.* FROM 'x'@'%'", kind: 'privilege', note: 'revokes privileges' },
  { sql: "CREATE USER 'x'@'%' IDENTIFIED BY 'y'", kind: 'privilege', note: 'creates an account' },
  { sql: "DROP USER 'x'@'%'", kind: 'privilege', note: 'drops an account' },
  { sql: 'CALL p(1)', kind: 'unknown', note: 'a stored procedure can do anything' },
  { sql: 'DO SLEEP(1)', kind: 'unknown', note: 'DO evaluates expressions for their side effects' },
  { sql: 'SELECT my_function(1) FROM t', kind: 'unknown', note: 'a stored function can write' },
  { sql: 'SELECT db.f(1)', kind: 'unknown', note: 'a schema-qualified function' },
  { sql: 'SELECT GET_LOCK("x", 10)', kind: 'write', note: 'takes a named server lock' },
  { sql: 'SELECT * FROM t FOR UPDATE', kind: 'write', note: 'locks rows' },
  {
    sql: 'SELECT * FROM t LOCK IN SHARE MODE',
    kind: 'unknown',
    note: 'locks rows; the grammar does not know it, so unknown (never read)',
  },
  { sql: 'TRUNCATE t', kind: 'schema', note: 'removes every row' },
  { sql: 'ALTER TABLE t ADD c int', kind: 'schema', note: 'schema change' },
  { sql: 'RENAME TABLE a TO b', kind: 'schema', note: 'schema change' },
  {
    sql: 'CREATE DEFINER = root PROCEDURE p() SELECT 1',
    kind: 'privilege',
    note: 'code that runs as another account',
  },
  {
    sql: 'CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1',
    kind: 'schema',
    note: 'server-side code',
  },
  {
    sql: 'CREATE PROCEDURE p() BEGIN DELETE FROM t; END',
    kind: 'unknown',
    note: 'a compound statement split by our lexer does not parse',
  },
  { sql: 'USE mysql', kind: 'admin', note: 'switches to another database' },
  // Dynamic SQL
  { sql: "PREPARE s FROM 'DELETE FROM t'", kind: 'write', note: 'the prepared text is classified' },
  { sql: "PREPARE s FROM 'SELECT 1'", kind: 'read', note: 'the prepared text is classified' },
  { sql: 'PREPARE s FROM @sql', kind: 'unknown', note: 'the text comes from a variable' },
  {
    sql: "PREPARE s FROM '/*!DROP*/ TABLE t'",
    kind: 'schema',
    note: 'an executable comment inside the prepared text',
  },
  {
    sql: "PREPARE s FROM 'SELECT 1; DROP TABLE t'",
    kind: 'unknown',
    note: 'more than one statement in the prepared text',
  },
  { sql: 'EXECUTE s', kind: 'unknown', note: 'without the session, EXECUTE is unknown' },
  { sql: 'EXPLAIN DELETE FROM t', kind: 'write', note: 'EXPLAIN of a write is judged as the write' },
  { sql: 'ANALYZE DELETE FROM t', kind: 'write', note: 'MariaDB ANALYZE runs the statement' },
  // Things that must stay reads
  { sql: 'SELECT * FROM t WHERE a = 1', kind: 'read', note: 'a plain read' },
  {
    sql: 'SELECT COUNT(*), SUM(a), CONCAT(b, c) FROM t GROUP BY d',
    kind: 'read',
    note: 'built-in functions',
  },
  { sql: 'SHOW TABLES', kind: 'read', note: 'metadata' },
  { sql: 'DESCRIBE t', kind: 'read', note: 'metadata' },
  { sql: 'select @@version_comment limit 1', kind: 'read', note: 'what the mariadb client sends at start' },
  { sql: 'WITH x AS (SELECT 1 AS a) SELECT a FROM x', kind: 'read', note: 'a common table expression' },
];
