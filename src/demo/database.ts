/**
 * The demo's target database: PGlite (PostgreSQL compiled to WASM, in this process), seeded
 * once with fake customers and orders. Card numbers are the well-known test numbers that no
 * bank issues, so the masking demo has something to mask without holding anything real.
 */
import { PGlite } from '@electric-sql/pglite';

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Ken', 'Margaret', 'Linus', 'Radia', 'Dennis'];
const LAST = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Dijkstra',
  'Liskov',
  'Thompson',
  'Hamilton',
  'Torvalds',
  'Perlman',
  'Ritchie',
];
const CARDS = [
  '4111 1111 1111 1111',
  '5555 5555 5555 4444',
  '3782 822463 10005',
  '6011 1111 1111 1117',
  '4012 8888 8888 1881',
];
const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'refunded'];

/** Opens (and on first use seeds) the demo database; `dataDir` undefined keeps it in memory. */
export async function openDemoDatabase(dataDir?: string): Promise<PGlite> {
  const db = dataDir === undefined ? await PGlite.create() : await PGlite.create({ dataDir });
  const existing = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'customers'",
  );
  if ((existing.rows[0]?.n ?? 0) === 0) await seed(db);
  return db;
}

async function seed(db: PGlite): Promise<void> {
  const customers: string[] = [];
  for (let i = 0; i < 20; i++) {
    const first = FIRST[i % FIRST.length]!;
    const last = LAST[(i * 3 + Math.floor(i / FIRST.length)) % LAST.length]!;
    const email = `${first}.${last}${i >= FIRST.length ? i : ''}@example.com`.toLowerCase();
    const card = CARDS[i % CARDS.length]!;
    const day = String(1 + (i % 28)).padStart(2, '0');
    customers.push(`('${first} ${last}', '${email}', '${card}', '2024-01-${day} 09:00:00+00')`);
  }
  const orders: string[] = [];
  for (let i = 0; i < 50; i++) {
    const customer = 1 + ((i * 7) % 20);
    const total = (((i * 37) % 500) + 9.99).toFixed(2);
    const status = STATUSES[i % STATUSES.length]!;
    const day = String(1 + (i % 28)).padStart(2, '0');
    orders.push(`(${customer}, ${total}, '${status}', '2024-02-${day} 12:00:00+00')`);
  }
  await db.exec(`
    BEGIN;
    CREATE TABLE customers (
      id serial PRIMARY KEY,
      name text NOT NULL,
      email text NOT NULL UNIQUE,
      card_number text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE orders (
      id serial PRIMARY KEY,
      customer_id integer NOT NULL REFERENCES customers(id),
      total numeric(10,2) NOT NULL,
      status text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO customers (name, email, card_number, created_at) VALUES ${customers.join(',\n')};
    INSERT INTO orders (customer_id, total, status, created_at) VALUES ${orders.join(',\n')};
    COMMIT;
  `);
}
