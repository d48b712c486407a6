-- Many data types, in psql's aligned and unaligned formats.
SET extra_float_digits = 0;
SELECT 1::int2 AS i2, 2147483647::int4 AS i4, 9223372036854775807::int8 AS i8,
       123456789012345678901234567890.123456789::numeric AS big, 'NaN'::numeric AS nan,
       1.5::float4 AS f4, 1e300::float8 AS f8, '-Infinity'::float8 AS ninf;
SELECT true AS t, false AS f, NULL::bool AS n;
SELECT 'plain'::text, 'padded'::char(10), 'vc'::varchar(5), 'nm'::name, E'tab\there' AS esc, '' AS empty;
SELECT 'ünïcødé ✓ 日本語'::text AS utf8;
SELECT '\x00ff10'::bytea AS hex, decode('aGVsbG8=', 'base64') AS b64;
SELECT '2024-02-29'::date, '23:59:59.999999'::time, '2024-02-29 12:34:56.789+05:30'::timestamptz,
       '2024-02-29 12:34:56'::timestamp, '1 year 2 months 3 days 04:05:06.7'::interval,
       'infinity'::timestamptz AS inf;
SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid;
SELECT '{"a": [1, 2, {"b": null}], "c": "d"}'::json AS j, '{"z": 1, "a": [true, 1.50]}'::jsonb AS jb;
SELECT jsonb_pretty('{"x": {"y": [1, 2]}}');
SELECT ARRAY[1, 2, NULL]::int[] AS ints, ARRAY['a b', 'c"d', NULL]::text[] AS texts, '{{1,2},{3,4}}'::int[][] AS matrix;
SELECT int4range(1, 10), '[2024-01-01,2024-02-01)'::daterange, numrange(1.5, 2.5, '[]');
SELECT '192.168.0.1/24'::inet, '10.0.0.0/8'::cidr, '08:00:2b:01:02:03'::macaddr;
SELECT '(1,2)'::point, '((0,0),(1,1))'::box, '<(0,0),5>'::circle;
SELECT 'B101'::bit(4) AS bits, X'1F'::bit varying AS hexbits;
SELECT 'fat & rat'::tsquery, to_tsvector('english', 'The quick brown foxes');
SELECT '<a><b>x</b></a>'::xml;
SELECT 12.34::money;
SELECT ROW(1, 'two', NULL, ARRAY[3]) AS rec;
SELECT 'regclass'::regtype, 'pg_class'::regclass, 'now'::regproc;
SELECT x, x * x AS sq, repeat('*', x) AS bar FROM generate_series(1, 5) AS x;
\pset format unaligned
SELECT 'unaligned' AS mode, 1 AS n UNION ALL SELECT 'again', 2;
\pset format aligned
\x on
SELECT 1 AS a, 'expanded' AS b, NULL AS c;
\x off
\pset null '(null)'
SELECT NULL::text AS shown_null;
