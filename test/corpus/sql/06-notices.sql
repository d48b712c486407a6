-- Notices, warnings and the settings that filter them.
DO $$ BEGIN RAISE NOTICE 'a notice with %', 42; END $$;
DO $$ BEGIN RAISE WARNING 'a warning'; RAISE INFO 'some info'; END $$;
DO $$ BEGIN RAISE NOTICE 'with detail' USING DETAIL = 'the detail', HINT = 'the hint'; END $$;
SET client_min_messages = warning;
DO $$ BEGIN RAISE NOTICE 'filtered out'; RAISE WARNING 'still shown'; END $$;
RESET client_min_messages;
DROP TABLE IF EXISTS surely_not_here;
CREATE TEMP TABLE n (id serial PRIMARY KEY, v text UNIQUE);
DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 'here' USING ERRCODE = 'P0001'; END $$;
\echo :SQLSTATE
