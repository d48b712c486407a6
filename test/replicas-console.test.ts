/**
 * The reviewer console across replicas: two gateways sharing a private PostgreSQL store, in
 * front of a private target database, as a load balancer would spread one browser's calls. A
 * session cookie set by A works on B (who am I, approving a held psql statement with the CSRF
 * token); an event stream ticket from A opens the stream on B; signing out on B ends the
 * session on A; an API token revoked through B ends the console session opened with it on A.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CSRF_HEADER, readCookie, SESSION_COOKIE } from '../src/server/console.ts';
import type { Gateway } from '../src/server/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand } from './support/psql.ts';
import { type Replica, type ReplicaSetup, replicaOf, setupReplicas } from './support/replicas.ts';

const TIMEOUT = 120_000;

let storeDb: PrivatePostgres;
let target: PrivatePostgres;
let setup: ReplicaSetup;
let a: Gateway;
let b: Gateway;
let A: Replica;
let B: Replica;

interface SignedIn {
  readonly cookie: string;
  readonly csrf: string;
}

/** A call as the console makes it: the cookie, and the CSRF token on writes. */
async function browser<T = unknown>(
  replica: Replica,
  method: string,
  path: string,
  session: SignedIn,
  body?: unknown,
): Promise<{ status: number; body: T; text: string }> {
  const headers: Record<string, string> = { cookie: session.cookie };
  if (method !== 'GET') headers[CSRF_HEADER] = session.csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(replica.api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // keep the text
  }
  return { status: res.status, body: parsed as T, text };
}

async function signIn(replica: Replica, token: string): Promise<SignedIn> {
  const res = await fetch(`${replica.api}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const value = readCookie((res.headers.get('set-cookie') ?? '').split(';')[0], SESSION_COOKIE);
  assert.ok(value, 'a session cookie');
  const body = (await res.json()) as { csrf: string };
  return { cookie: `${SESSION_COOKIE}=${value}`, csrf: body.csrf };
}

before(async () => {
  [storeDb, target] = await Promise.all([startPostgres({ sample: false }), startPostgres()]);
  await storeDb.psql('CREATE DATABASE airlock', { db: 'postgres' });
  setup = setupReplicas(target, storeDb.connectionString('airlock'));
  a = await setup.start();
  b = await setup.start();
  A = replicaOf('A', a);
  B = replicaOf('B', b);
});

after(async () => {
  await a?.close();
  await b?.close();
  await stopAll();
  await storeDb?.stop();
  await target?.stop();
  setup?.remove();
});

describe('console sessions across replicas', () => {
  test('a cookie from A works on B: who am I, and approving a held statement with the CSRF token', {
    timeout: TIMEOUT,
  }, async () => {
    const alice = await signIn(A, setup.tokens.alice);
    const who = await browser<{ principal: { name: string; reviewer: boolean }; csrf: string }>(
      B,
      'GET',
      '/api/v1/session',
      alice,
    );
    assert.equal(who.status, 200, who.text);
    assert.equal(who.body.principal.name, 'alice');
    assert.equal(who.body.principal.reviewer, true);
    assert.equal(who.body.csrf, alice.csrf, 'one session, one CSRF token');

    // Nothing secret in the store: no session id, no token.
    const c = await storeDb.client({ db: 'airlock' });
    try {
      const rows = JSON.stringify((await c.query('SELECT * FROM console_sessions')).rows);
      assert.doesNotMatch(rows, new RegExp(alice.cookie.split('=')[1]!));
      assert.doesNotMatch(rows, new RegExp(setup.tokens.alice));
    } finally {
      await c.end();
    }

    const p = psqlCommand(setup.via(A), 'DELETE FROM orders WHERE id = 4');
    const notice = (await p.waitForOutput(/NOTICE:.*request \d+[^\n]*/i, 30_000, 'stderr'))[0];
    const id = Number(/request (\d+)/i.exec(notice)?.[1]);
    assert.ok(id > 0, notice);
    const noCsrf = await fetch(`${B.api}/api/v1/requests/${id}/approve`, {
      method: 'POST',
      headers: { cookie: alice.cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(noCsrf.status, 403, 'the CSRF guard holds on B too');
    const approved = await browser(B, 'POST', `/api/v1/requests/${id}/approve`, alice, {});
    assert.equal(approved.status, 200, approved.text);
    const exit = await p.waitForExit(30_000);
    assert.equal(exit.code, 0, p.output());
    assert.match(p.stdout(), /DELETE 1/);
  });

  test('an event stream ticket from A opens the stream on B', { timeout: TIMEOUT }, async () => {
    const bob = await signIn(A, setup.tokens.bob);
    const t = await browser<{ ticket: string }>(A, 'POST', '/api/v1/events/ticket', bob);
    assert.equal(t.status, 200, t.text);
    const ctl = new AbortController();
    const stream = await fetch(`${B.api}/api/v1/events?ticket=${encodeURIComponent(t.body.ticket)}`, {
      signal: ctl.signal,
    });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    const dec = new TextDecoder();
    let seen = '';
    while (!/event: ready/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += dec.decode(value, { stream: true });
    }
    assert.match(seen, /"principal":"bob"/);
    ctl.abort();
    const forged = `${t.body.ticket.slice(0, -2)}xx`;
    assert.equal((await fetch(`${B.api}/api/v1/events?ticket=${encodeURIComponent(forged)}`)).status, 401);
  });

  test('signing out on B ends the session on A at once', { timeout: TIMEOUT }, async () => {
    const carol = await signIn(A, setup.tokens.carol);
    assert.equal((await browser(A, 'GET', '/api/v1/whoami', carol)).status, 200);
    const out = await browser(B, 'DELETE', '/api/v1/session', carol);
    assert.equal(out.status, 200, out.text);
    assert.equal((await browser(A, 'GET', '/api/v1/session', carol)).status, 401);
    // A write through A reads the store, so A's few seconds of cache do not keep it alive.
    assert.equal((await browser(A, 'POST', '/api/v1/requests/999999/approve', carol, {})).status, 401);
    assert.equal((await browser(A, 'POST', '/api/v1/events/ticket', carol)).status, 401);
  });

  test('an API token revoked through B ends the console session opened with it on A', {
    timeout: TIMEOUT,
  }, async () => {
    const created = await setup.api<{ token: string; record: { id: string } }>(
      A,
      'POST',
      '/api/v1/tokens',
      { description: 'console' },
      'alice',
    );
    assert.equal(created.status, 201, created.text);
    const session = await signIn(A, created.body.token);
    assert.equal((await browser(B, 'GET', '/api/v1/session', session)).status, 200);
    const revoked = await setup.api(
      B,
      'DELETE',
      `/api/v1/tokens/${created.body.record.id}`,
      undefined,
      'alice',
    );
    assert.ok(revoked.status === 200, revoked.text);
    assert.equal((await browser(A, 'GET', '/api/v1/session', session)).status, 401);
  });
});
