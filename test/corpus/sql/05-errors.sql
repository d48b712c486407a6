-- Errors inside and outside transactions, and the transaction status after each.
SELECT 1/0;
\echo :SQLSTATE
SELECT 'still fine' AS after_error;
BEGIN;
SELECT 1 AS in_tx;
SELECT no_such_column FROM (SELECT 1) AS t;
\echo :SQLSTATE
SELECT 'ignored' AS aborted;
\echo :SQLSTATE
ROLLBACK;
BEGIN;
CREATE TEMP TABLE sp (v int);
INSERT INTO sp VALUES (1);
SAVEPOINT a;
INSERT INTO sp VALUES (1/0);
ROLLBACK TO SAVEPOINT a;
INSERT INTO sp VALUES (2);
RELEASE SAVEPOINT a;
COMMIT;
SELECT * FROM sp ORDER BY v;
BEGIN;
SELECT 1;
COMMIT;
COMMIT;
ROLLBACK;
SELECT 'syntax' 'error';
SELEC 1;
SELECT * FROM missing_table;
SELECT 'x'::int;
SELECT repeat('a', -1) IS NULL AS null_for_negative;
CREATE TEMP TABLE u (id int PRIMARY KEY);
INSERT INTO u VALUES (1);
INSERT INTO u VALUES (1);
BEGIN;
INSERT INTO u VALUES (2);
COMMIT;
SELECT count(*) FROM u;
SELECT 1; SELECT 1/0; SELECT 3;
