import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { ApiTokens } from './api-tokens.ts';

async function setup() {
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  let now = 1_000_000;
  const tokens = new ApiTokens(store, { admins: ['admins'], now: () => now });
  return { store, tokens, advance: (ms: number) => (now += ms) };
}

const alice = { name: 'alice', kind: 'human' as const, groups: ['dba'] };

test('a token made with an expiring, scoped token never outlives or widens it', async () => {
  const { store, tokens } = await setup();
  try {
    const parent = await tokens.create(alice, { ttlMs: 60_000, connections: ['app'] });
    const viaParent = await tokens.authenticate(parent.token, { connection: 'app' });
    assert.ok(viaParent);
    const child = await tokens.create(viaParent, {});
    assert.equal(child.record.expiresAt, parent.record.expiresAt, 'no expiry asked: the parent’s');
    assert.deepEqual(child.record.connections, ['app'], 'scope inherited');
    const longer = await tokens.create(viaParent, { ttlMs: 3_600_000 });
    assert.equal(longer.record.expiresAt, parent.record.expiresAt, 'capped at the parent’s');
    await assert.rejects(tokens.create(viaParent, { connections: ['billing'] }), /not valid for billing/);
    // Not through a token: alice decides freely within her own groups.
    const own = await tokens.create(alice, {});
    assert.equal(own.record.expiresAt, undefined);
  } finally {
    await store.close();
  }
});

test('refusals: expired, revoked, out of scope; unknown tokens fall through', async () => {
  const { store, tokens, advance } = await setup();
  try {
    const t = await tokens.create(alice, { ttlMs: 1_000, connections: ['app'] });
    await assert.rejects(
      tokens.authenticate(t.token, { connection: 'billing' }),
      /not valid for connection "billing"/,
    );
    assert.equal(await tokens.authenticate('alk_unknown'), undefined);
    advance(1_000);
    await assert.rejects(
      tokens.authenticate(t.token),
      (e: { code?: string }) => e.code === 'AIRLOCK_E_TOKEN_EXPIRED',
    );
    const u = await tokens.create(alice, {});
    await tokens.revoke(alice, u.record.id);
    await assert.rejects(
      tokens.authenticate(u.token),
      (e: { code?: string }) => e.code === 'AIRLOCK_E_TOKEN_REVOKED',
    );
    await assert.rejects(
      tokens.revoke({ name: 'bob', kind: 'human', groups: ['dba'] }, u.record.id),
      /no token .* you can revoke/,
    );
  } finally {
    await store.close();
  }
});
