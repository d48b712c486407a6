-- COPY FROM STDIN and TO STDOUT in text, CSV and binary, and psql's \copy.
CREATE TEMP TABLE items (id int PRIMARY KEY, name text, price numeric(8, 2), tags text[], seen timestamptz);
COPY items FROM STDIN;
1	apple	1.25	{red,fruit}	2024-01-01 10:00:00+00
2	tab\there	0.00	{}	\N
3	back\\slash	99.99	{"a b"}	2024-06-30 23:59:59+00
\.
COPY items (id, name) FROM STDIN (FORMAT csv, HEADER true);
id,name
4,"quoted, with comma"
5,"multi
line"
\.
SELECT count(*) FROM items;
COPY items TO STDOUT;
COPY items TO STDOUT (FORMAT csv, HEADER true, FORCE_QUOTE *);
COPY (SELECT id, upper(name) FROM items WHERE id > 2 ORDER BY id) TO STDOUT (FORMAT csv);
COPY items FROM STDIN;
6	bad row	not-a-number	{}	\N
\.
SELECT count(*) FROM items;
\copy items TO '/tmp/airlock-transparency-items.csv' WITH (FORMAT csv)
CREATE TEMP TABLE items2 (LIKE items);
\copy items2 FROM '/tmp/airlock-transparency-items.csv' WITH (FORMAT csv)
SELECT * FROM items2 ORDER BY id;
\copy (SELECT id, name FROM items2 ORDER BY id DESC) TO STDOUT
COPY (SELECT generate_series(1, 3) AS n) TO STDOUT (FORMAT binary);
