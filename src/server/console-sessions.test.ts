import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { SignJWT } from 'jose';
import type { Principal } from '../core/action.ts';
import { isAirlockError } from '../core/errors.ts';
import { ApiTokens } from '../core/identity/api-tokens.ts';
import { CompositeAuthenticator } from '../core/identity/composite.ts';
import { hashToken, TokenRegistry } from '../core/identity/tokens.ts';
import { SqliteStore } from '../store/sqlite.ts';
import { ConsoleSessions } from './console-sessions.ts';

const ALICE_TOKEN = 'alk_test_console_sessions_alice_0123456789';
const alice: Principal = { name: 'alice', kind: 'human', groups: ['dba', 'admins'] };

const stores: SqliteStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});

async function setup(
  policyTokens = [{ name: 'alice', kind: 'human' as const, groups: ['dba'], hash: hashToken(ALICE_TOKEN) }],
) {
  const store = new SqliteStore({ filename: ':memory:' });
  stores.push(store);
  await store.migrate();
  const apiTokens = new ApiTokens(store, { admins: ['admins'] });
  const tokens = new CompositeAuthenticator({
    policyTokens: new TokenRegistry(policyTokens as never),
    apiTokens,
  });
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  // Two replicas: one store, each with its own cache.
  const replica = () => new ConsoleSessions({ store, recheck: tokens, cacheMs: 5_000, now: clock.now });
  return { store, apiTokens, tokens, clock, a: replica(), b: replica() };
}

test('a session opened on one replica is served by another; only hashes are stored', async () => {
  const { store, a, b } = await setup();
  const { id, session } = await a.open(alice, ALICE_TOKEN, 'token');
  const there = await b.get(id);
  assert.equal(there?.principal.name, 'alice');
  assert.deepEqual(there?.principal.groups, ['dba'], 'the principal as the policy says now');
  assert.equal(there?.csrf, session.csrf);
  assert.equal(there?.method, 'token');
  const row = await store.getConsoleSession(ConsoleSessions.key(id));
  assert.equal(row?.tokenHash, hashToken(ALICE_TOKEN));
  assert.doesNotMatch(JSON.stringify(row), new RegExp(`${ALICE_TOKEN}|${id}`));
  assert.equal(await b.get('not-a-session'), undefined);
  assert.equal(await b.get(undefined), undefined);
});

test('closing on one replica ends it at once for fresh reads, and within the cache time for others', async () => {
  const { a, b, clock } = await setup();
  const { id } = await a.open(alice, ALICE_TOKEN, 'token');
  assert.ok(await a.get(id));
  await b.close(id);
  assert.equal(await a.get(id, { fresh: true }), undefined);
  const { id: id2 } = await a.open(alice, ALICE_TOKEN, 'token');
  assert.ok(await a.get(id2));
  await b.close(id2);
  assert.ok(await a.get(id2), 'cached for a few seconds');
  clock.advance(5_001);
  assert.equal(await a.get(id2), undefined);
});

test('a token removed from the policy or a revoked API token ends the session', async () => {
  const { store, apiTokens, tokens, clock } = await setup();
  const { token, record } = await apiTokens.create(alice, { name: 'alice', description: 'laptop' });
  const a = new ConsoleSessions({ store, recheck: tokens, now: clock.now });
  const { id } = await a.open(await tokens.authenticate(token), token, 'token');
  assert.equal((await a.get(id, { fresh: true }))?.principal.name, 'alice');
  await apiTokens.revoke(alice, record.id);
  assert.equal(await a.get(id, { fresh: true }), undefined);
  assert.equal(await store.getConsoleSession(ConsoleSessions.key(id)), undefined, 'deleted');

  // The same store under a policy that no longer has alice's token.
  const later = new ConsoleSessions({
    store,
    recheck: new CompositeAuthenticator({ policyTokens: new TokenRegistry([]) }),
    now: clock.now,
  });
  const { id: id2 } = await a.open(alice, ALICE_TOKEN, 'token');
  assert.equal(await later.get(id2), undefined);
});

test('an OIDC session keeps only the ID token expiry and ends with it', async () => {
  const { store, a, b, clock } = await setup();
  const exp = Math.floor(clock.now() / 1000) + 60;
  const idToken = await new SignJWT({ sub: 'alice' })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode('k'.repeat(32)));
  const { id, session } = await a.open(alice, idToken, 'oidc');
  assert.equal(session.expiresAt, exp * 1000);
  const row = await store.getConsoleSession(ConsoleSessions.key(id));
  assert.equal(row?.credentialExpiresAt, exp * 1000);
  assert.equal(row?.tokenHash, undefined);
  assert.doesNotMatch(JSON.stringify(row), new RegExp(idToken.split('.')[2]!));
  assert.deepEqual((await b.get(id))?.principal, alice);
  clock.advance(61_000);
  assert.equal(await b.get(id), undefined);
  assert.equal(await a.get(id), undefined, 'the cache honours the expiry too');
});

test('a pass stands for the principal until released; anything else goes to the authenticator', async () => {
  const { a, tokens } = await setup();
  const auth = a.authenticator(tokens);
  const pass = a.pass(alice);
  assert.equal(await auth.authenticate(pass.credential), alice);
  pass.release();
  await assert.rejects(
    auth.authenticate(pass.credential),
    (e) => isAirlockError(e) && e.code === 'AIRLOCK_E_TOKEN_INVALID',
  );
  assert.equal((await auth.authenticate(ALICE_TOKEN)).name, 'alice');
  assert.equal(auth.principal('alice')?.name, 'alice', 'other methods reach the authenticator');
});

test('a session opened with a scoped API token cannot mint a wider one on another replica', async () => {
  const { store, apiTokens, tokens, clock } = await setup();
  const bob: Principal = { name: 'bob', kind: 'human', groups: ['dba'] };
  const { token } = await apiTokens.create(
    { ...bob, groups: ['dba', 'admins'] },
    {
      name: 'bob',
      groups: ['dba'],
      connections: ['app'],
    },
  );
  const a = new ConsoleSessions({ store, recheck: tokens, now: clock.now });
  const b = new ConsoleSessions({ store, recheck: tokens, now: clock.now });
  const { id } = await a.open(await tokens.authenticate(token), token, 'token');
  const session = await b.get(id);
  assert.ok(session);
  await assert.rejects(
    apiTokens.create(session.principal, { connections: ['other'] }),
    (e) => isAirlockError(e) && e.code === 'AIRLOCK_E_FORBIDDEN',
  );
});

test('a store that fails refuses the session (503), it never lets the call through', async () => {
  const { store, a } = await setup();
  const { id } = await a.open(alice, ALICE_TOKEN, 'token');
  await store.close();
  await assert.rejects(
    a.get(id, { fresh: true }),
    (e) => isAirlockError(e) && e.code === 'AIRLOCK_E_STORE_UNAVAILABLE' && e.status === 503,
  );
});
