import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import type { Principal } from '../action.ts';
import { AuditLog } from '../audit/log.ts';
import { verifyChain } from '../audit/verify.ts';
import { isAirlockError } from '../errors.ts';
import { InProcessEventBus, type RequestEvent } from './bus.ts';
import type { NewRequest } from './request.ts';
import { Approvals, formatDuration } from './service.ts';

const agent: Principal = { name: 'agent', kind: 'agent', groups: ['bots', 'dba'] };
const alice: Principal = { name: 'alice', kind: 'human', groups: ['dba'] };
const bob: Principal = { name: 'bob', kind: 'human', groups: ['dba', 'oncall'] };
const eve: Principal = { name: 'eve', kind: 'human', groups: ['sales'] };

async function setup() {
  const clock = { now: 1_000_000 };
  const now = () => clock.now;
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  const audit = new AuditLog(store, { now });
  await audit.init();
  const bus = new InProcessEventBus();
  const events: RequestEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const approvals = new Approvals({ store, audit, bus, now });
  await approvals.start();
  const request = (o: Partial<NewRequest> = {}): NewRequest => ({
    fingerprint: 'fp-delete-7',
    protocol: 'postgres',
    connection: 'prod-db',
    principal: agent,
    sessionId: 's1',
    kind: 'write',
    summary: 'DELETE FROM orders WHERE id = 7',
    parts: [{ kind: 'write', text: 'DELETE FROM orders WHERE id = 7', statement: 'DeleteStmt' }],
    attributes: {},
    rule: { name: 'writes need a DBA', index: 1 },
    why: 'matched',
    review: { groups: ['dba'], approvals: 1, expires: 900_000, hold: 'wait', window: 600_000 },
    createdAt: clock.now,
    expiresAt: clock.now + 900_000,
    ...o,
  });
  const close = async () => {
    await approvals.close();
    await audit.close();
    await store.close();
  };
  return { clock, store, audit, bus, events, approvals, request, close };
}

function code(expected: string) {
  return (err: unknown) => {
    assert.ok(isAirlockError(err), String(err));
    assert.equal(err.code, expected);
    return true;
  };
}

async function auditTypes(store: SqliteStore): Promise<string[]> {
  return (await store.readAudit(1, 1000)).map((r) => r.type);
}

describe('Approvals', () => {
  test('quorum of two distinct people', async () => {
    const t = await setup();
    const r = await t.approvals.create(
      t.request({ review: { groups: ['dba'], approvals: 2, expires: 900_000, hold: 'wait', window: 0 } }),
    );
    const first = await t.approvals.approve(r.id, alice, { note: 'looks right' });
    assert.equal(first.status, 'pending');
    await assert.rejects(t.approvals.approve(r.id, alice), code('AIRLOCK_E_ALREADY_APPROVED'));
    const second = await t.approvals.approve(r.id, bob);
    assert.equal(second.status, 'approved');
    assert.deepEqual(
      second.approvals.map((v) => v.by),
      ['alice', 'bob'],
    );
    assert.equal(second.approvals[0]!.note, 'looks right');
    await assert.rejects(
      t.approvals.approve(r.id, { ...bob, name: 'carol' }),
      code('AIRLOCK_E_REQUEST_NOT_PENDING'),
    );
    assert.deepEqual(await auditTypes(t.store), [
      'request.created',
      'request.approval',
      'request.approval',
      'request.approved',
    ]);
    assert.deepEqual(
      t.events.map((e) => e.status),
      ['pending', 'pending', 'approved'],
    );
    assert.ok((await verifyChain(t.store)).ok);
    await t.close();
  });

  test('the requester cannot decide their own request, even as a reviewer', async () => {
    const t = await setup();
    const r = await t.approvals.create(t.request());
    assert.deepEqual(t.approvals.canReview(agent, r).ok, false);
    await assert.rejects(t.approvals.approve(r.id, agent), code('AIRLOCK_E_SELF_APPROVAL'));
    await assert.rejects(t.approvals.deny(r.id, agent, 'nope'), code('AIRLOCK_E_SELF_APPROVAL'));
    assert.equal((await t.approvals.get(r.id))?.status, 'pending');
    await t.close();
  });

  test('only members of the review groups may decide', async () => {
    const t = await setup();
    const r = await t.approvals.create(t.request());
    const check = t.approvals.canReview(eve, r);
    assert.equal(check.ok, false);
    assert.ok(!check.ok && /reviewers are members of group dba/.test(check.message));
    await assert.rejects(t.approvals.approve(r.id, eve), code('AIRLOCK_E_NOT_A_REVIEWER'));
    await assert.rejects(t.approvals.deny(r.id, eve, 'no'), code('AIRLOCK_E_NOT_A_REVIEWER'));
    assert.deepEqual(t.approvals.canReview(alice, r), { ok: true });
    await t.close();
  });

  test('deny needs a reason and is final', async () => {
    const t = await setup();
    const r = await t.approvals.create(t.request());
    await assert.rejects(t.approvals.deny(r.id, alice, '   '), code('AIRLOCK_E_BAD_REQUEST'));
    const denied = await t.approvals.deny(r.id, alice, ' use the archive job instead ');
    assert.equal(denied.status, 'denied');
    assert.equal(denied.deniedBy, 'alice');
    assert.equal(denied.reason, 'use the archive job instead');
    await assert.rejects(t.approvals.approve(r.id, bob), code('AIRLOCK_E_REQUEST_NOT_PENDING'));
    await assert.rejects(t.approvals.deny(r.id, bob, 'again'), code('AIRLOCK_E_REQUEST_NOT_PENDING'));
    await assert.rejects(t.approvals.approve(999, bob), code('AIRLOCK_E_REQUEST_NOT_FOUND'));
    const denial = (await t.store.readAudit(1, 10)).find((r) => r.type === 'request.denied');
    assert.equal(denial?.data.reason, 'use the archive job instead');
    await t.close();
  });

  test('pending requests expire: lazily on read, and by the sweep', async () => {
    const t = await setup();
    const a = await t.approvals.create(t.request());
    const b = await t.approvals.create(t.request({ fingerprint: 'other', expiresAt: t.clock.now + 60_000 }));
    t.clock.now += 60_000;
    assert.equal(await t.approvals.sweep(), 1);
    const expired = await t.store.getRequest(b.id);
    assert.equal(expired?.status, 'expired');
    assert.equal(expired?.reason, 'expired after 1m without a decision');
    t.clock.now += 900_000;
    const lazily = await t.approvals.get(a.id);
    assert.equal(lazily?.status, 'expired');
    await assert.rejects(t.approvals.approve(a.id, alice), code('AIRLOCK_E_REQUEST_NOT_PENDING'));
    assert.deepEqual(
      (await t.approvals.list({ status: ['pending'] })).map((r) => r.id),
      [],
    );
    assert.equal((await auditTypes(t.store)).filter((x) => x === 'request.expired').length, 2);
    await t.close();
  });

  test('the expiry timer fires on its own', async () => {
    const t = await setup();
    // Real clock for this one: the timer is a real setTimeout.
    const approvals = new Approvals({ store: t.store, audit: t.audit, bus: t.bus });
    await approvals.start();
    const r = await approvals.create(t.request({ createdAt: Date.now(), expiresAt: Date.now() + 30 }));
    // The expiry timer is unref'd (it must not keep a stopping gateway alive); hold the loop open.
    const keepAlive = setTimeout(() => {}, 5_000);
    const settled = await approvals.waitFor(r.id);
    clearTimeout(keepAlive);
    assert.equal(settled.status, 'expired');
    await approvals.close();
    await t.close();
  });

  test('grant window: the same fingerprint passes until it closes, a different one never', async () => {
    const t = await setup();
    const retry = {
      groups: ['dba'],
      approvals: 1,
      expires: 900_000,
      hold: 'retry' as const,
      window: 600_000,
    };
    const r = await t.approvals.create(t.request({ review: retry }));
    assert.equal(t.approvals.findGrant('fp-delete-7'), undefined);
    const approved = await t.approvals.approve(r.id, alice);
    assert.equal(approved.grantUntil, t.clock.now + 600_000);
    const grant = t.approvals.findGrant('fp-delete-7');
    assert.equal(grant?.requestId, r.id);
    assert.equal(t.approvals.findGrant('fp-delete-everything'), undefined);
    t.clock.now += 599_999;
    assert.ok(t.approvals.findGrant('fp-delete-7'));
    t.clock.now += 1;
    assert.equal(t.approvals.findGrant('fp-delete-7'), undefined);
    await t.close();
  });

  test('wait holds grant nothing unless a window is given; grants survive a restart', async () => {
    const t = await setup();
    const a = await t.approvals.create(t.request());
    await t.approvals.approve(a.id, alice);
    assert.equal(t.approvals.findGrant('fp-delete-7'), undefined);
    const b = await t.approvals.create(t.request({ fingerprint: 'fp-b' }));
    await t.approvals.approve(b.id, alice, { windowMs: 60_000 });
    assert.equal(t.approvals.findGrant('fp-b')?.requestId, b.id);
    // A second gateway process over the same store learns the grant at start.
    const other = new Approvals({
      store: t.store,
      audit: t.audit,
      bus: new InProcessEventBus(),
      now: () => t.clock.now,
    });
    await other.start();
    assert.equal(other.findGrant('fp-b')?.requestId, b.id);
    await other.close();
    await t.close();
  });

  test('grants approved elsewhere arrive through the bus', async () => {
    const t = await setup();
    const listener = new Approvals({ store: t.store, audit: t.audit, bus: t.bus, now: () => t.clock.now });
    await listener.start();
    const r = await t.approvals.create(t.request());
    await t.approvals.approve(r.id, alice, { windowMs: 60_000 });
    // The listener re-reads the row asynchronously.
    for (let i = 0; i < 20 && !listener.findGrant('fp-delete-7'); i++)
      await new Promise((res) => setTimeout(res, 5));
    assert.equal(listener.findGrant('fp-delete-7')?.requestId, r.id);
    await listener.close();
    await t.close();
  });

  test('waitFor resolves on decision and rejects on abort; cancel and markExecuted', async () => {
    const t = await setup();
    const r = await t.approvals.create(t.request());
    const waiting = t.approvals.waitFor(r.id);
    setTimeout(() => void t.approvals.approve(r.id, bob), 5);
    assert.equal((await waiting).status, 'approved');
    assert.equal((await t.approvals.waitFor(r.id)).status, 'approved', 'already decided');
    const executed = await t.approvals.markExecuted(r.id);
    assert.equal(executed.status, 'executed');
    assert.equal((await t.approvals.markExecuted(r.id)).status, 'executed', 'idempotent');

    const c = await t.approvals.create(t.request({ fingerprint: 'c' }));
    const ac = new AbortController();
    const w = t.approvals.waitFor(c.id, ac.signal);
    ac.abort(new Error('gone'));
    await assert.rejects(w, /gone/);
    const cancelled = await t.approvals.cancel(c.id, 'the caller disconnected');
    assert.equal(cancelled.status, 'cancelled');
    await assert.rejects(t.approvals.cancel(c.id, 'again'), code('AIRLOCK_E_REQUEST_NOT_PENDING'));
    await assert.rejects(t.approvals.markExecuted(c.id), code('AIRLOCK_E_REQUEST_NOT_PENDING'));
    await assert.rejects(t.approvals.waitFor(404), code('AIRLOCK_E_REQUEST_NOT_FOUND'));
    const types = await auditTypes(t.store);
    for (const type of ['request.executed', 'request.cancelled']) assert.ok(types.includes(type), type);
    await t.close();
  });

  test('racing approvals produce one decision', async () => {
    const t = await setup();
    const r = await t.approvals.create(t.request());
    const results = await Promise.allSettled([
      t.approvals.approve(r.id, alice),
      t.approvals.approve(r.id, bob),
    ]);
    assert.equal((await t.approvals.get(r.id))?.status, 'approved');
    assert.equal((await auditTypes(t.store)).filter((x) => x === 'request.approved').length, 1);
    assert.ok(results.some((x) => x.status === 'fulfilled'));
    await t.close();
  });

  test('formatDuration', () => {
    assert.equal(formatDuration(900_000), '15m');
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(86_400_000), '1d');
    assert.equal(formatDuration(1500), '1500ms');
  });
});
