-- LISTEN/NOTIFY delivery to the session that listens.
LISTEN ch_one;
LISTEN "Ch Two";
NOTIFY ch_one;
NOTIFY ch_one, 'with payload';
SELECT pg_notify('Ch Two', 'from a function');
BEGIN;
NOTIFY ch_one, 'delivered at commit';
SELECT 'before commit' AS step;
COMMIT;
UNLISTEN ch_one;
NOTIFY ch_one, 'not heard';
SELECT pg_listening_channels();
UNLISTEN *;
