import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../core/action.ts';
import { fingerprintOf } from '../core/action.ts';
import { InProcessEventBus } from '../core/approvals/bus.ts';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import { Approvals } from '../core/approvals/service.ts';
import { AuditLog } from '../core/audit/log.ts';
import { TokenRegistry } from '../core/identity/tokens.ts';
import { parsePolicy } from '../core/policy/load.ts';
import { reviewSchema } from '../core/policy/schema.ts';
import type { Store } from '../core/store.ts';
import { initClassifier } from '../protocols/postgres/classify.ts';
import { openStore } from '../store/open.ts';
import { buildApi } from './api.ts';

const TOKENS = {
  agent: 'alk_test_agent_0123456789abcdef',
  alice: 'alk_test_alice_0123456789abcdef',
  bob: 'alk_test_bob_0123456789abcdef',
  eve: 'alk_test_eve_0123456789abcdef',
};

const policy = parsePolicy(
  `
public_url: https://airlock.example.com
identities:
  tokens:
    - { name: agent, token: ${TOKENS.agent}, kind: agent, groups: [agents] }
    - { name: alice, token: ${TOKENS.alice}, kind: human, groups: [dba] }
    - { name: bob, token: ${TOKENS.bob}, kind: human, groups: [dba] }
    - { name: eve, token: ${TOKENS.eve}, kind: human, groups: [support] }
defaults:
  review: { groups: [dba] }
connections:
  app:
    type: postgres
    upstream: { host: 127.0.0.1, port: 5432, database: app, user: app, password: "super-secret-upstream" }
rules:
  - name: reads are free
    kinds: [read]
    effect: allow
  - name: writes need a DBA
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 15m, hold: wait }
  - name: no drops
    statements: [DropStmt, TruncateStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
`,
  '/tmp/api-test.yaml',
);
const tokens = new TokenRegistry(policy.tokens);

let store: Store;
let audit: AuditLog;
let approvals: Approvals;
let app: FastifyInstance;

before(async () => {
  await initClassifier();
  store = await openStore('sqlite::memory:', '/tmp');
  audit = new AuditLog(store);
  await audit.init();
  approvals = new Approvals({ store, audit, bus: new InProcessEventBus() });
  await approvals.start();
  app = await buildApi({
    policy,
    store,
    approvals,
    tokens,
    listeners: () => ({ postgres: { host: '127.0.0.1', port: 15432 } }),
  });
});

after(async () => {
  await app.close();
  await approvals.stop();
  await audit.close();
  await store.close();
});

async function createRequest(
  by: keyof typeof TOKENS,
  summary = 'DELETE FROM orders WHERE id = 7',
): Promise<ApprovalRequest> {
  const principal = tokens.principal(by) as Principal;
  const now = Date.now();
  return approvals.create({
    fingerprint: fingerprintOf({ connection: 'app', principal, normalized: summary }),
    protocol: 'postgres',
    connection: 'app',
    principal,
    sessionId: 's1',
    source: '127.0.0.1:5555',
    kind: 'write',
    summary,
    parts: [
      {
        kind: 'write',
        text: summary,
        statement: 'DeleteStmt',
        tables: ['orders'],
        why: 'DELETE changes rows',
      },
    ],
    attributes: {},
    rule: { name: 'writes need a DBA', index: 1 },
    why: 'rule "writes need a DBA" matched write (DeleteStmt)',
    review: reviewSchema.parse({ groups: ['dba'] }),
    createdAt: now,
    expiresAt: now + 15 * 60_000,
  });
}

function call(method: 'GET' | 'POST', url: string, as?: keyof typeof TOKENS | string, payload?: unknown) {
  const token = as === undefined ? undefined : as in TOKENS ? TOKENS[as as keyof typeof TOKENS] : as;
  return app.inject({
    method,
    url,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
}

let pending: ApprovalRequest;
beforeEach(async () => {
  pending = await createRequest('agent');
});

test('health needs no token', async () => {
  const res = await call('GET', '/api/v1/health');
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), { ok: true });
});

test('requests need a token: 401 with a clear message and hint', async () => {
  const missing = await call('GET', '/api/v1/requests');
  assert.equal(missing.statusCode, 401);
  assert.equal(missing.json().error.code, 'AIRLOCK_E_TOKEN_MISSING');
  assert.match(missing.json().error.hint, /Bearer/);
  const bad = await call('GET', '/api/v1/requests', 'alk_not_a_real_token');
  assert.equal(bad.statusCode, 401);
  assert.equal(bad.json().error.code, 'AIRLOCK_E_TOKEN_INVALID');
  assert.doesNotMatch(bad.body, /alk_not_a_real_token/);
});

test('whoami says who the token belongs to and whether it reviews', async () => {
  const res = await call('GET', '/api/v1/whoami', 'alice');
  assert.deepEqual(res.json(), {
    name: 'alice',
    kind: 'human',
    groups: ['dba'],
    reviewer: true,
    breakGlass: null,
  });
  assert.equal((await call('GET', '/api/v1/whoami', 'agent')).json().reviewer, false);
});

test('only reviewers list and decide requests (403 otherwise)', async () => {
  for (const who of ['agent', 'eve'] as const) {
    const list = await call('GET', '/api/v1/requests', who);
    assert.equal(list.statusCode, 403);
    assert.equal(list.json().error.code, 'AIRLOCK_E_FORBIDDEN');
    const approve = await call('POST', `/api/v1/requests/${pending.id}/approve`, who, {});
    assert.equal(approve.statusCode, 403);
  }
});

test('a requester may read its own request, but not others', async () => {
  const own = await call('GET', `/api/v1/requests/${pending.id}`, 'agent');
  assert.equal(own.statusCode, 200);
  assert.equal(own.json().request.status, 'pending');
  const other = await createRequest('alice', 'UPDATE orders SET total = 0');
  const res = await call('GET', `/api/v1/requests/${other.id}`, 'agent');
  assert.equal(res.statusCode, 403);
  const missing = await call('GET', '/api/v1/requests/99999', 'agent');
  assert.equal(missing.statusCode, 403, 'a non-reviewer cannot tell missing from not-yours');
});

test('list and show pending requests with the full JSON shape', async () => {
  const res = await call('GET', '/api/v1/requests?status=pending&connection=app&limit=10', 'alice');
  assert.equal(res.statusCode, 200);
  const found = res.json().requests.find((r: { id: number }) => r.id === pending.id);
  assert.ok(found);
  assert.equal(found.status, 'pending');
  assert.equal(found.summary, 'DELETE FROM orders WHERE id = 7');
  assert.deepEqual(found.principal, { name: 'agent', kind: 'agent', groups: ['agents'] });
  assert.equal(found.url, `https://airlock.example.com/requests/${pending.id}`);
  assert.match(found.createdAt, /^\d{4}-\d\d-\d\dT/);
  assert.equal(found.decidedAt, null);
  assert.equal(found.rule.name, 'writes need a DBA');
  assert.equal(found.parts[0].statement, 'DeleteStmt');
  for (const key of [
    'id',
    'status',
    'connection',
    'protocol',
    'source',
    'kind',
    'why',
    'review',
    'expiresAt',
    'approvals',
    'deniedBy',
    'reason',
    'grantUntil',
  ])
    assert.ok(key in found, key);
  const one = await call('GET', `/api/v1/requests/${pending.id}`, 'bob');
  assert.equal(one.json().request.id, pending.id);
  assert.equal((await call('GET', '/api/v1/requests/99999', 'bob')).statusCode, 404);
  assert.equal((await call('GET', '/api/v1/requests/abc', 'bob')).statusCode, 400);
  assert.equal((await call('GET', '/api/v1/requests?status=bogus', 'bob')).statusCode, 400);
});

test('approve a request; approving it again is a conflict', async () => {
  const res = await call('POST', `/api/v1/requests/${pending.id}/approve`, 'alice', {
    note: 'looks fine',
    window: '5m',
  });
  assert.equal(res.statusCode, 200, res.body);
  const r = res.json().request;
  assert.equal(r.status, 'approved');
  assert.deepEqual(
    r.approvals.map((a: { by: string; note: string }) => [a.by, a.note]),
    [['alice', 'looks fine']],
  );
  assert.ok(Date.parse(r.grantUntil) > Date.now() + 4 * 60_000);
  const again = await call('POST', `/api/v1/requests/${pending.id}/approve`, 'bob', {});
  assert.equal(again.statusCode, 409);
  assert.equal(again.json().error.code, 'AIRLOCK_E_REQUEST_NOT_PENDING');
  const badWindow = await call(
    'POST',
    `/api/v1/requests/${(await createRequest('agent')).id}/approve`,
    'bob',
    { window: 'soon' },
  );
  assert.equal(badWindow.statusCode, 400);
});

test('self-approval is refused with AIRLOCK_E_SELF_APPROVAL', async () => {
  const mine = await createRequest('alice', 'UPDATE orders SET status = $$x$$');
  const res = await call('POST', `/api/v1/requests/${mine.id}/approve`, 'alice', {});
  assert.equal(res.statusCode, 403);
  assert.equal(res.json().error.code, 'AIRLOCK_E_SELF_APPROVAL');
  const deny = await call('POST', `/api/v1/requests/${mine.id}/deny`, 'alice', { reason: 'no' });
  assert.equal(deny.json().error.code, 'AIRLOCK_E_SELF_APPROVAL');
});

test('deny requires a non-empty reason, and the reason is recorded', async () => {
  for (const body of [{}, { reason: '' }, { reason: '   ' }]) {
    const res = await call('POST', `/api/v1/requests/${pending.id}/deny`, 'alice', body);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'AIRLOCK_E_BAD_REQUEST');
    assert.match(res.json().error.message, /reason/);
  }
  const res = await call('POST', `/api/v1/requests/${pending.id}/deny`, 'alice', {
    reason: 'use the archive job',
  });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().request.status, 'denied');
  assert.equal(res.json().request.reason, 'use the archive job');
  assert.equal(res.json().request.deniedBy, 'alice');
  const list = await call('GET', '/api/v1/requests?status=denied', 'bob');
  assert.ok(list.json().requests.some((r: { id: number }) => r.id === pending.id));
});

test('connections list the gateway address and never the upstream credential', async () => {
  const res = await call('GET', '/api/v1/connections', 'agent');
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json().connections, [
    {
      name: 'app',
      type: 'postgres',
      description: null,
      postgres: { host: '127.0.0.1', port: 15432, database: 'app' },
    },
  ]);
  assert.doesNotMatch(res.body, /super-secret-upstream|"port":5432\b/);
});

test('audit verify and audit records', async () => {
  const v = await call('GET', '/api/v1/audit/verify', 'alice');
  assert.equal(v.statusCode, 200);
  assert.equal(v.json().ok, true);
  assert.ok(v.json().count > 0);
  const records = await call('GET', '/api/v1/audit?from=1&limit=2', 'alice');
  assert.equal(records.json().records.length, 2);
  assert.equal(records.json().records[0].seq, 1);
  assert.equal((await call('GET', '/api/v1/audit', 'agent')).statusCode, 403);
});

test('policy test endpoint returns the decision per statement', async () => {
  const deny = await call('POST', '/api/v1/policy/test', 'alice', {
    as: 'agent',
    connection: 'app',
    sql: 'DROP TABLE orders',
  });
  assert.equal(deny.statusCode, 200, deny.body);
  assert.equal(deny.json().effect, 'deny');
  assert.equal(deny.json().reason, 'schema drops go through the migration pipeline');
  const mixed = await call('POST', '/api/v1/policy/test', 'alice', {
    as: 'agent',
    connection: 'app',
    sql: 'SELECT 1; DELETE FROM orders WHERE id = 7',
  });
  assert.equal(mixed.json().effect, 'review');
  assert.deepEqual(
    mixed.json().parts.map((p: { effect: string }) => p.effect),
    ['allow', 'review'],
  );
  const unknownConn = await call('POST', '/api/v1/policy/test', 'alice', {
    as: 'agent',
    connection: 'nope',
    sql: 'SELECT 1',
  });
  assert.equal(unknownConn.statusCode, 404);
  const missing = await call('POST', '/api/v1/policy/test', 'alice', { as: 'agent' });
  assert.equal(missing.statusCode, 400);
});

test('a store failure answers 503 with a clear message', async () => {
  const broken = await buildApi({
    policy,
    store,
    approvals: {
      get: () => Promise.reject(new Error('SQLITE_IOERR')),
      list: () => Promise.reject(new Error('SQLITE_IOERR')),
      approve: () => Promise.reject(new Error('SQLITE_IOERR')),
      deny: () => Promise.reject(new Error('SQLITE_IOERR')),
    },
    tokens,
    listeners: () => ({}),
  });
  const res = await broken.inject({
    method: 'GET',
    url: '/api/v1/requests',
    headers: { authorization: `Bearer ${TOKENS.alice}` },
  });
  assert.equal(res.statusCode, 503);
  assert.equal(res.json().error.code, 'AIRLOCK_E_STORE_UNAVAILABLE');
  assert.doesNotMatch(res.body, /SQLITE_IOERR/);
  await broken.close();
});

test('the request page is plain HTML, with details only for a reviewer token', async () => {
  const anon = await call('GET', `/requests/${pending.id}`);
  assert.equal(anon.statusCode, 200);
  assert.match(anon.headers['content-type'] as string, /text\/html/);
  assert.match(anon.body, new RegExp(`approve with: <code>airlock approve ${pending.id}</code>`));
  assert.doesNotMatch(anon.body, /DELETE FROM orders/);
  const reviewer = await call('GET', `/requests/${pending.id}`, 'alice');
  assert.match(reviewer.body, /DELETE FROM orders WHERE id = 7/);
  assert.match(reviewer.body, /writes need a DBA/);
  assert.match(reviewer.body, /agent/);
  const missing = await call('GET', '/requests/424242');
  assert.equal(missing.statusCode, 404);
});

test('unknown endpoints and malformed JSON get catalogue errors', async () => {
  const res = await call('GET', '/api/v1/nope', 'alice');
  assert.equal(res.statusCode, 404);
  assert.ok(res.json().error.code);
  const bad = await app.inject({
    method: 'POST',
    url: `/api/v1/requests/${pending.id}/deny`,
    headers: { authorization: `Bearer ${TOKENS.alice}`, 'content-type': 'application/json' },
    payload: '{not json',
  });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error.code, 'AIRLOCK_E_BAD_REQUEST');
});

test('history filters: decided statuses and a time range, on the server', async () => {
  const denied = await createRequest('agent', 'DELETE FROM orders WHERE id = 99');
  await approvals.deny(denied.id, tokens.principal('alice') as Principal, 'not today');
  const decided = await call('GET', '/api/v1/requests?status=decided&limit=500', 'alice');
  assert.equal(decided.statusCode, 200);
  const rows = decided.json().requests as { id: number; status: string }[];
  assert.ok(rows.some((r) => r.id === denied.id));
  assert.ok(rows.every((r) => r.status !== 'pending'));

  const created = Date.parse(
    (await call('GET', `/api/v1/requests/${denied.id}`, 'alice')).json().request.createdAt,
  );
  const inRange = await call(
    'GET',
    `/api/v1/requests?status=all&since=${new Date(created - 1000).toISOString()}&until=${created + 1000}`,
    'alice',
  );
  assert.ok((inRange.json().requests as { id: number }[]).some((r) => r.id === denied.id));
  const before = await call('GET', `/api/v1/requests?status=all&until=${created - 60_000}`, 'alice');
  assert.ok(!(before.json().requests as { id: number }[]).some((r) => r.id === denied.id));

  const bad = await call('GET', '/api/v1/requests?since=yesterday-ish', 'alice');
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().error.message, /since/);
});

test('the request JSON carries adapter attributes, protocol fields and the estimated rows', async () => {
  const principal = tokens.principal('agent') as Principal;
  const now = Date.now();
  const r = await approvals.create({
    fingerprint: fingerprintOf({ connection: 'app', principal, normalized: 'DELETE FROM big' }),
    protocol: 'postgres',
    connection: 'app',
    principal,
    sessionId: 's2',
    kind: 'write',
    summary: 'DELETE FROM big',
    parts: [{ kind: 'write', text: 'DELETE FROM big', statement: 'DeleteStmt', tables: ['big'] }],
    attributes: { estimatedRows: 1200, parameters: ['7'] },
    rule: { name: 'writes need a DBA', index: 1 },
    why: 'w',
    review: reviewSchema.parse({ groups: ['dba'] }),
    createdAt: now,
    expiresAt: now + 60_000,
  });
  const res = (await call('GET', `/api/v1/requests/${r.id}`, 'alice')).json().request;
  assert.equal(res.estimatedRows, 1200);
  assert.deepEqual(res.attributes.parameters, ['7']);
  assert.deepEqual(res.parts[0].fields, {});
});

test('a caller that stops halfway through a request body is answered 408 and cut off', async () => {
  const slow = await buildApi({
    policy,
    store,
    approvals,
    tokens,
    listeners: () => ({}),
    requestTimeoutMs: 300,
  });
  try {
    await slow.listen({ host: '127.0.0.1', port: 0 });
    const { port } = slow.server.address() as { port: number };
    const { connect } = await import('node:net');
    const socket = connect(port, '127.0.0.1');
    socket.write(
      `POST /api/v1/requests/1/approve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.alice}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"note":`,
    );
    let reply = '';
    socket.on('data', (d) => {
      reply += d.toString();
    });
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    assert.match(reply, /^HTTP\/1\.1 408/);
  } finally {
    await slow.close();
  }
});
