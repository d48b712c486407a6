import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, test } from 'node:test';
import { SqliteStore } from '../store/sqlite.ts';
import { sharedTicketKey, TicketSigner } from './events.ts';

const stores: SqliteStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});

test('every process on one store derives the same ticket key; another store, another key', async () => {
  const store = new SqliteStore({ filename: ':memory:' });
  const other = new SqliteStore({ filename: ':memory:' });
  stores.push(store, other);
  await store.migrate();
  await other.migrate();
  const [k1, k2] = await Promise.all([sharedTicketKey(store), sharedTicketKey(store)]);
  assert.deepEqual(k1, k2);
  assert.equal(k1.length, 32);
  assert.notDeepEqual(await sharedTicketKey(other), k1);
});

test('a ticket carries its principal: any signer with the key resolves it without a lookup', () => {
  const key = Buffer.alloc(32, 7);
  const issued = new TicketSigner(key).issue(
    { name: 'oidc:alice', kind: 'human', groups: ['dba', 'oncall'] },
    1_000,
  );
  assert.deepEqual(new TicketSigner(key).verifyPrincipal(issued.ticket, 2_000), {
    name: 'oidc:alice',
    kind: 'human',
    groups: ['dba', 'oncall'],
  });
  assert.equal(new TicketSigner(key).verify(issued.ticket, 2_000), 'oidc:alice');
  assert.equal(new TicketSigner(Buffer.alloc(32, 8)).verifyPrincipal(issued.ticket, 2_000), undefined);
  assert.equal(new TicketSigner(key).verifyPrincipal(issued.ticket, 61_001), undefined, 'stale');
});

test('a ticket whose claims were changed, or that lacks kind or groups, is refused', () => {
  const key = Buffer.alloc(32, 7);
  const signer = new TicketSigner(key);
  const { ticket } = signer.issue({ name: 'eve', kind: 'human', groups: ['support'] }, 1_000);
  const [, mac] = ticket.split('.');
  const widened = Buffer.from(
    JSON.stringify({ n: 'eve', k: 'human', g: ['dba'], e: 61_000, r: 'x' }),
  ).toString('base64url');
  assert.equal(signer.verifyPrincipal(`${widened}.${mac}`, 2_000), undefined);
  // Correctly signed but malformed claims (kind or groups missing or wrong) are refused too.
  for (const claims of [
    { n: 'eve', e: 61_000, r: 'x' },
    { n: 'eve', k: 'root', g: [], e: 61_000, r: 'x' },
    { n: 'eve', k: 'human', g: 'dba', e: 61_000, r: 'x' },
    { n: 'eve', k: 'human', g: [1], e: 61_000, r: 'x' },
  ]) {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const sig = createHmac('sha256', key).update(body).digest('base64url');
    assert.equal(signer.verifyPrincipal(`${body}.${sig}`, 2_000), undefined, JSON.stringify(claims));
  }
});
