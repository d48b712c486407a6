/**
 * Masking through the gateway with psql, for what the other masking tests leave to unit tests:
 * the `hash` strategy (stable, keyed by the deployment's salt) on a catalog-resolved column, and
 * the detectors for phone numbers, national IDs, JWTs, cloud access keys and private keys in
 * values of any column.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { maskText } from '../src/core/masking/strategy.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';

const SALT = 'salt-of-this-deployment';

const MASKING = `
masking:
  - connections: [app]
    columns: ["public.people.customer_ref"]
    strategy: hash
    salt: "${SALT}"
  - connections: [app]
    detectors: [phone, national_id, jwt, cloud_key, private_key]
    strategy: redact
`;

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLXBhcnQ';
const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const GITHUB_TOKEN = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789';
const PEM = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';

/** Each row's `secret` holds one kind of finding; `label` is what replaces it. */
const FINDINGS: readonly { readonly id: number; readonly value: string; readonly label: string }[] = [
  { id: 1, value: '+44 20 7946 0958', label: 'phone' },
  { id: 2, value: '(415) 555-0132', label: 'phone' },
  { id: 3, value: '123-45-6789', label: 'national_id' },
  { id: 4, value: 'AB 12 34 56 C', label: 'national_id' },
  { id: 5, value: JWT, label: 'jwt' },
  { id: 6, value: AWS_KEY, label: 'cloud_key' },
  { id: 7, value: GITHUB_TOKEN, label: 'cloud_key' },
  { id: 8, value: PEM, label: 'private_key' },
];

let upstream: PrivatePostgres;
let gw: TestGateway;

before(async () => {
  upstream = await startPostgres();
  const rows = FINDINGS.map(
    (f) => `(${f.id}, 'CR-${f.id % 2}', 'before ' || ${quote(f.value)} || ' after')`,
  ).join(', ');
  await upstream.psql(
    `CREATE TABLE people (id int PRIMARY KEY, customer_ref text, secret text);
     INSERT INTO people VALUES ${rows};
     ALTER TABLE people OWNER TO app_rw;`,
    { db: 'app' },
  );
  gw = await startTestGateway(upstream, { extra: MASKING });
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

function quote(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

async function psqlRows(sql: string): Promise<string[][]> {
  const p = psqlCommand(gw.target('agent'), sql, [
    '-A',
    '-t',
    '-F',
    '\t',
    '-R',
    '\x1e',
    '-v',
    'ON_ERROR_STOP=1',
  ]);
  const exit = await p.waitForExit(60_000);
  assert.equal(exit.code, 0, p.stderr());
  return p
    .stdout()
    .replace(/\n$/, '')
    .split('\x1e')
    .map((r) => r.split('\t'));
}

test('hash: a column is replaced by its keyed digest, equal for equal values, in every session', async () => {
  const first = await psqlRows('SELECT id, customer_ref FROM people ORDER BY id');
  const again = await psqlRows('SELECT customer_ref AS r, id FROM people ORDER BY id');
  assert.equal(first.length, FINDINGS.length);
  for (const [i, [id, ref]] of first.entries()) {
    const value = `CR-${Number(id) % 2}`;
    assert.equal(ref, maskText(value, { strategy: 'hash', salt: SALT, label: 'value' }), `row ${id}`);
    assert.notEqual(ref, maskText(value, { strategy: 'hash', salt: 'another deployment', label: 'value' }));
    assert.equal(again[i]?.[0], ref, 'the same value hashes the same in another session');
  }
  assert.equal(new Set(first.map((r) => r[1])).size, 2, 'different values hash differently');
});

test('detectors: phone numbers, national IDs, JWTs, cloud keys and private keys are redacted', async () => {
  const rows = await psqlRows('SELECT id, secret FROM people ORDER BY id');
  assert.deepEqual(
    rows,
    FINDINGS.map((f) => [String(f.id), `before [redacted ${f.label}] after`]),
  );
  // Computed from the column, the values are still found.
  const joined = await psqlRows("SELECT string_agg(secret, ' | ' ORDER BY id) FROM people");
  for (const f of FINDINGS) assert.ok(!joined[0]![0]!.includes(f.value.split('\n')[0]!), f.label);
});
