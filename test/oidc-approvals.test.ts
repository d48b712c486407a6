/**
 * Approval rules in depth, with real psql callers: "one from each of these groups" where one
 * person in two groups counts once, "any N" counting distinct people, no self-approval even
 * for admins, revoking an approval before it is used, and revoking a grant ending the live
 * psql session that relied on it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { requestJson } from '../src/server/api.ts';
import {
  issuePersonToken,
  SUPPORT_ISSUES_TOKENS,
  startTestGateway,
  type TestGateway,
} from './support/gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';
import { stopAll } from './support/processes.ts';
import { psqlCommand, psqlSession } from './support/psql.ts';

const TEST_TIMEOUT = 120_000;
type RequestView = ReturnType<typeof requestJson>;

let upstream: PrivatePostgres;
let gw: TestGateway;
/** Tokens for people an admin creates: sam is in dba and security; root is an admin too. */
const people: Record<string, string> = {};

before(async () => {
  upstream = await startPostgres();
  gw = await startTestGateway(upstream, {
    identities: SUPPORT_ISSUES_TOKENS,
    rules: `
rules:
  - name: reads are free
    kinds: [read]
    effect: allow
  - name: orders need a DBA and security
    tables: [orders]
    kinds: [write]
    effect: review
    review: { groups: [dba, security], from: each, hold: retry, expires: 10m, window: 10m }
  - name: customers need two people
    tables: [customers]
    kinds: [write]
    effect: review
    review: { groups: [dba, security], approvals: 2, hold: retry, expires: 10m, window: 10m }
`,
  });
  for (const [name, groups] of [
    ['sam', ['dba', 'security']],
    ['root', ['dba', 'security', 'admins']],
  ] as const) {
    people[name] = await issuePersonToken(gw, name, groups);
  }
});

after(async () => {
  await gw?.close();
  await upstream?.stop();
  await stopAll();
});

/** Runs a write as `token` (retry hold: psql fails at once) and returns the request it created. */
async function held(token: string, sql: string, user = 'agent'): Promise<number> {
  const p = psqlCommand({ ...gw.pg, database: 'app', token, user }, sql);
  await p.waitForExit(60_000);
  const m = /approval required: request (\d+)/.exec(p.stderr());
  assert.ok(m, p.output());
  return Number(m[1]);
}

async function approve(id: number, as: string) {
  return gw.api<{ request: RequestView; error?: { code: string; message: string } }>(
    'POST',
    `/api/v1/requests/${id}/approve`,
    {},
    as,
  );
}

describe('approval rules in depth', { timeout: TEST_TIMEOUT }, () => {
  test('one from each group: two DBAs are not enough; a person in both groups fills only one', async () => {
    const a = await held(gw.tokens.agent, 'UPDATE orders SET total = total WHERE id = 5');
    assert.equal((await approve(a, 'alice')).body.request.status, 'pending');
    assert.equal((await approve(a, 'bob')).body.request.status, 'pending', 'no one from security yet');
    assert.equal((await approve(a, people.sam!)).body.request.status, 'approved');

    const b = await held(gw.tokens.agent, 'UPDATE orders SET total = total WHERE id = 6');
    const afterSam = await approve(b, people.sam!);
    assert.equal(afterSam.body.request.status, 'pending', 'sam is in both groups but is one person');
    assert.equal((await approve(b, 'alice')).body.request.status, 'approved');
  });

  test('any N: N distinct people; the same person twice is refused', async () => {
    const id = await held(gw.tokens.agent, 'UPDATE customers SET email = email WHERE id = 2');
    assert.equal((await approve(id, people.sam!)).body.request.status, 'pending');
    const again = await approve(id, people.sam!);
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body.error?.code, 'AIRLOCK_E_ALREADY_APPROVED');
    assert.equal((await approve(id, 'bob')).body.request.status, 'approved');
  });

  test('nobody approves their own request, admins included', async () => {
    const id = await held(people.root!, 'UPDATE customers SET email = email WHERE id = 3', 'root');
    const self = await approve(id, people.root!);
    assert.equal(self.status, 403, self.text);
    assert.equal(self.body.error?.code, 'AIRLOCK_E_SELF_APPROVAL');
    assert.match(self.body.error!.message, /root made request \d+ and cannot decide it/);
  });

  test('an approval revoked before use lets nothing through', async () => {
    const sql = 'UPDATE customers SET email = email WHERE id = 4';
    const id = await held(gw.tokens.agent, sql);
    await approve(id, 'alice');
    assert.equal((await approve(id, 'bob')).body.request.status, 'approved');
    const eveTry = await gw.api('POST', `/api/v1/requests/${id}/revoke`, { reason: 'no' }, 'eve');
    assert.equal(eveTry.status, 403, 'someone who could not review it may not revoke it');
    const revoked = await gw.api<{ request: RequestView }>(
      'POST',
      `/api/v1/requests/${id}/revoke`,
      { reason: 'wrong customer' },
      'alice',
    );
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.body.request.status, 'cancelled');
    assert.match(revoked.body.request.reason ?? '', /approval revoked by alice: wrong customer/);
    // The same statement is held again, as a new request.
    const again = await held(gw.tokens.agent, sql);
    assert.notEqual(again, id);
    const audit = await gw.gateway.store.readAudit(1, 5000);
    assert.ok(audit.some((r) => r.type === 'request.revoked' && r.data.requestId === id));
  });

  test('revoking a grant ends the live psql session that relied on it', async () => {
    const sql = 'UPDATE customers SET email = email WHERE id = 7;\n';
    const session = psqlSession({ ...gw.pg, database: 'app', token: gw.tokens.agent, user: 'agent' });
    session.write(sql);
    const m = await session.waitForOutput(/approval required: request (\d+)/, 30_000, 'stderr');
    const id = Number(m[1]);
    await approve(id, 'alice');
    assert.equal((await approve(id, 'bob')).body.request.status, 'approved');
    const before = session.stdout().length;
    session.write(sql);
    await session.waitForOutput(/UPDATE 1/, 30_000, 'stdout', before);

    const revoked = await gw.api('POST', `/api/v1/requests/${id}/revoke`, { reason: 'incident over' }, 'bob');
    assert.equal(revoked.status, 200, revoked.text);
    // psql reads the server's FATAL when it next talks to it.
    session.write('SELECT 1;\n');
    await session.waitForOutput(/approval was revoked/, 30_000, 'stderr');
    session.endInput();
    const exit = await session.waitForExit(30_000);
    assert.notEqual(exit.code, 0, 'psql ends: the server closed the connection');
  });
});
