import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteStore } from '../store/sqlite.ts';
import type { Action, ActionKind, Principal } from './action.ts';
import { InProcessEventBus } from './approvals/bus.ts';
import { Approvals } from './approvals/service.ts';
import { AuditLog } from './audit/log.ts';
import { verifyChain } from './audit/verify.ts';
import { isAirlockError } from './errors.ts';
import { Gate } from './gate.ts';
import { parsePolicy } from './policy/load.ts';
import type { AuditRecord } from './store.ts';

const POLICY = `
public_url: http://127.0.0.1:7070
connections:
  prod-db:
    type: postgres
    upstream: { host: 127.0.0.1, database: app, user: app }
  agent-db:
    type: postgres
    upstream: { host: 127.0.0.1, database: app, user: app }
rules:
  - name: reads are free
    kinds: [read]
    effect: allow
  - name: writes need a DBA
    connections: [prod-db]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 15m, hold: wait }
  - name: agent writes retry
    connections: [agent-db]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 15m, hold: retry, window: 10m }
  - name: no drops outside migrations
    kinds: [schema]
    statements: [DropStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
`;

const agent: Principal = { name: 'agent', kind: 'agent', groups: ['bots'] };
const alice: Principal = { name: 'alice', kind: 'human', groups: ['dba'] };

function action(text: string, kind: ActionKind, o: Partial<Action> = {}): Action {
  const statement =
    { read: 'SelectStmt', write: 'DeleteStmt', schema: 'DropStmt' }[kind as string] ?? 'Unknown';
  return {
    protocol: 'postgres',
    connection: 'prod-db',
    principal: agent,
    sessionId: 'sess-1',
    source: '127.0.0.1:50000',
    kind,
    summary: text,
    normalized: text.toLowerCase(),
    parts: [{ kind, text, statement }],
    attributes: { database: 'app', password: 'hunter2', params: ['1'] },
    ...o,
  };
}

class FlakyStore extends SqliteStore {
  failing = false;
  constructor() {
    super({ filename: ':memory:' });
  }
  override async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    if (this.failing) throw new Error('database or disk is full');
    return super.appendAudit(records);
  }
}

async function setup() {
  const clock = { now: 1_700_000_000_000 };
  const now = () => clock.now;
  const store = new FlakyStore();
  await store.migrate();
  const audit = new AuditLog(store, { now, batchMs: 10_000 });
  await audit.init();
  const approvals = new Approvals({ store, audit, bus: new InProcessEventBus(), now });
  await approvals.start();
  const gate = new Gate({ policy: parsePolicy(POLICY), approvals, audit, now });
  const records = async () => {
    await audit.flush();
    return store.readAudit(1, 1000);
  };
  const close = async () => {
    await approvals.close();
    await audit.close();
    await store.close();
  };
  return { clock, store, audit, approvals, gate, records, close };
}

describe('Gate', () => {
  test('allowed reads are audited in a batch; the record names who, where and what', async () => {
    const t = await setup();
    const out = await t.gate.decide(action('SELECT 1', 'read'));
    assert.equal(out.verdict, 'allow');
    assert.equal(await t.store.auditCount(), 0, 'batched, not yet written');
    const [rec] = await t.records();
    assert.equal(rec!.type, 'action.allowed');
    assert.deepEqual(rec!.data.principal, { name: 'agent', kind: 'agent', groups: ['bots'] });
    for (const key of [
      'connection',
      'protocol',
      'sessionId',
      'kind',
      'summary',
      'fingerprint',
      'rule',
      'decision',
    ])
      assert.ok(key in rec!.data, key);
    assert.equal(rec!.data.summary, 'SELECT 1');
    assert.equal(rec!.data.rule, 'reads are free');
    await t.close();
  });

  test('deny is durable and carries the reason', async () => {
    const t = await setup();
    const out = await t.gate.decide(action('DROP TABLE orders', 'schema'));
    assert.equal(out.verdict, 'deny');
    assert.ok(out.verdict === 'deny' && out.reason === 'schema drops go through the migration pipeline');
    const [rec] = await t.store.readAudit(1, 1);
    assert.equal(rec!.type, 'action.denied');
    assert.equal(rec!.data.reason, 'schema drops go through the migration pipeline');
    await t.close();
  });

  test('review holds: request, message, approval, release', async () => {
    const t = await setup();
    const out = await t.gate.decide(action('DELETE FROM orders WHERE id = 7', 'write'));
    assert.equal(out.verdict, 'hold');
    if (out.verdict !== 'hold') return;
    assert.equal(out.mode, 'wait');
    assert.equal(out.url, `http://127.0.0.1:7070/requests/${out.request.id}`);
    assert.equal(
      out.message,
      `approval required: request ${out.request.id} (rule "writes need a DBA") — approve it at http://127.0.0.1:7070/requests/${out.request.id}`,
    );
    assert.equal(out.request.expiresAt, t.clock.now + 15 * 60_000);
    assert.equal(out.request.attributes.password, undefined, 'secrets never stored');
    const settled = t.gate.settled(out.request.id);
    await t.approvals.approve(out.request.id, alice);
    const s = await settled;
    assert.equal(s.status, 'approved');
    await t.gate.release(out.request.id);
    assert.equal((await t.approvals.get(out.request.id))?.status, 'executed');
    await assert.rejects(t.gate.release(out.request.id), /not approved/);
    const types = (await t.records()).map((r) => r.type);
    assert.deepEqual(types, [
      'request.created',
      'request.approval',
      'request.approved',
      'action.forwarded',
      'request.executed',
    ]);
    assert.ok((await verifyChain(t.store)).ok);
    await t.close();
  });

  test('settlement texts: denied, expired, cancelled on abort', async () => {
    const t = await setup();
    const held = async (text: string) => {
      const out = await t.gate.decide(action(text, 'write'));
      assert.equal(out.verdict, 'hold');
      return out.verdict === 'hold' ? out.request.id : -1;
    };
    const a = await held('DELETE FROM a');
    const pa = t.gate.settled(a);
    await t.approvals.deny(a, alice, 'use the archive job');
    assert.deepEqual(await pa.then((s) => [s.status, 'reason' in s && s.reason]), [
      'denied',
      'denied by alice: use the archive job',
    ]);

    const b = await held('DELETE FROM b');
    t.clock.now += 15 * 60_000;
    const sb = await t.gate.settled(b);
    assert.equal(sb.status, 'expired');
    assert.ok(sb.status === 'expired' && sb.reason === `request ${b} expired after 15m without a decision`);

    const c = await held('DELETE FROM c');
    const ac = new AbortController();
    const pc = t.gate.settled(c, ac.signal);
    ac.abort();
    const sc = await pc;
    assert.equal(sc.status, 'cancelled');
    assert.ok(sc.status === 'cancelled' && /the caller disconnected/.test(sc.reason));
    assert.equal((await t.approvals.get(c))?.status, 'cancelled');
    await t.close();
  });

  test('retry holds: an approved fingerprint passes within the window, a different statement does not', async () => {
    const t = await setup();
    const del = action('DELETE FROM orders WHERE id = 7', 'write', { connection: 'agent-db' });
    const first = await t.gate.decide(del);
    assert.equal(first.verdict, 'hold');
    if (first.verdict !== 'hold') return;
    assert.equal(first.mode, 'retry');
    await t.approvals.approve(first.request.id, alice);

    const again = await t.gate.decide({ ...del, sessionId: 'sess-2' });
    assert.deepEqual(
      [again.verdict, again.verdict === 'allow' && again.via, again.verdict === 'allow' && again.requestId],
      ['allow', 'grant', first.request.id],
    );
    assert.equal((await t.approvals.get(first.request.id))?.status, 'executed');
    const other = await t.gate.decide(action('DELETE FROM orders', 'write', { connection: 'agent-db' }));
    assert.equal(other.verdict, 'hold');
    const otherPrincipal = await t.gate.decide({ ...del, principal: { ...agent, name: 'agent-2' } });
    assert.equal(otherPrincipal.verdict, 'hold');

    t.clock.now += 10 * 60_000;
    assert.equal((await t.gate.decide(del)).verdict, 'hold', 'window closed');
    const grantUse = (await t.records()).find((r) => r.type === 'action.allowed');
    assert.equal(grantUse?.data.requestId, first.request.id);
    await t.close();
  });

  test('a held action approved with a window is still released after another session used the grant', async () => {
    const t = await setup();
    const del = action('DELETE FROM orders WHERE id = 8', 'write');
    const held = await t.gate.decide(del);
    assert.equal(held.verdict, 'hold');
    if (held.verdict !== 'hold') return;
    await t.approvals.approve(held.request.id, alice, { windowMs: 60_000 });
    const viaGrant = await t.gate.decide({ ...del, sessionId: 'sess-2' });
    assert.equal(viaGrant.verdict, 'allow');
    assert.equal((await t.approvals.get(held.request.id))?.status, 'executed');
    await t.gate.release(held.request.id);
    t.clock.now += 60_000;
    await assert.rejects(t.gate.release(held.request.id), /not approved/);
    await t.close();
  });

  test('fail closed: decide rejects while the audit store fails, and the chain continues afterwards', async () => {
    const t = await setup();
    await t.gate.decide(action('SELECT 1', 'read'));
    t.store.failing = true;
    const unavailable = (err: unknown) => isAirlockError(err) && err.code === 'AIRLOCK_E_AUDIT_UNAVAILABLE';
    await assert.rejects(t.gate.decide(action('DROP TABLE x', 'schema')), unavailable);
    await assert.rejects(t.gate.decide(action('DELETE FROM y', 'write')), unavailable);
    // Once the log is unhealthy reads are recorded durably too, and so refused.
    await assert.rejects(t.gate.decide(action('SELECT 2', 'read')), unavailable);
    assert.equal(t.audit.healthy, false);

    t.store.failing = false;
    assert.equal((await t.gate.decide(action('DROP TABLE x', 'schema'))).verdict, 'deny');
    assert.equal((await t.gate.decide(action('SELECT 3', 'read'))).verdict, 'allow');
    const records = await t.records();
    assert.deepEqual(
      records.map((r) => r.data.summary),
      ['SELECT 1', 'DROP TABLE x', 'SELECT 3'],
    );
    const v = await verifyChain(t.store);
    assert.ok(v.ok);
    // The write's request was withdrawn because it could not be audited.
    const [req] = await t.store.listRequests();
    assert.equal(req?.status, 'cancelled');
    await t.close();
  });

  test('sessions and auth failures are audited without secrets', async () => {
    const t = await setup();
    await t.gate.sessionOpened({
      sessionId: 'sess-9',
      protocol: 'postgres',
      connection: 'prod-db',
      principal: agent,
      attributes: { user: 'psql-user', application_name: 'psql', password: 'tok_secret' },
    });
    assert.equal(await t.store.auditCount(), 1, 'session.opened is durable');
    t.gate.sessionClosed('sess-9', { statements: 3 });
    t.gate.authFailed({
      protocol: 'postgres',
      source: '10.0.0.1',
      token: 'tok_secret',
      reason: 'unknown token',
    });
    const records = await t.records();
    assert.deepEqual(
      records.map((r) => r.type),
      ['session.opened', 'session.closed', 'auth.failed'],
    );
    const text = JSON.stringify(records);
    assert.ok(!text.includes('tok_secret'));
    assert.ok(text.includes('unknown token'));
    await t.close();
  });
});
