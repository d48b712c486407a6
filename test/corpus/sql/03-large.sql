-- Large results: psql reads them whole, then again in FETCH_COUNT batches through a cursor.
SELECT i, md5(i::text) AS h, repeat('x', i % 50) AS pad FROM generate_series(1, 60000) AS i;
\set FETCH_COUNT 1000
SELECT i, md5(i::text) AS h FROM generate_series(1, 30000) AS i;
\unset FETCH_COUNT
SELECT count(*), sum(length(repeat('y', i % 1000))) FROM generate_series(1, 100000) AS i;
SELECT string_agg(md5(i::text), '') AS one_big_value FROM generate_series(1, 20000) AS i;
