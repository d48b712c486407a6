/**
 * The Store contract, run against every implementation (sqlite.test.ts, postgres.test.ts):
 * what core relies on — request CRUD and compare-and-set, the audit log's all-or-nothing
 * batches, recordings — must hold the same whichever store is configured.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NewRequest } from '../core/approvals/request.ts';
import { GENESIS, hashRecord } from '../core/audit/chain.ts';
import { verifyChain } from '../core/audit/verify.ts';
import type { AuditRecord, Store } from '../core/store.ts';

export function newRequest(overrides: Partial<NewRequest> = {}): NewRequest {
  return {
    fingerprint: 'f'.repeat(64),
    protocol: 'postgres',
    connection: 'prod-db',
    principal: { name: 'agent', kind: 'agent', groups: ['bots'] },
    sessionId: 's1',
    source: '127.0.0.1:5000',
    kind: 'write',
    summary: 'DELETE FROM orders WHERE id = 7',
    parts: [
      { kind: 'write', text: 'DELETE FROM orders WHERE id = 7', statement: 'DeleteStmt', tables: ['orders'] },
    ],
    attributes: { database: 'app' },
    rule: { name: 'writes need a DBA', index: 1 },
    why: 'rule "writes need a DBA" matched write (DeleteStmt)',
    review: { groups: ['dba'], approvals: 1, expires: 900_000, hold: 'wait', window: 900_000 },
    createdAt: 1_000,
    expiresAt: 901_000,
    ...overrides,
  };
}

export function chain(n: number, start = 1, prev = GENESIS): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let seq = start; seq < start + n; seq++) {
    const content = {
      seq,
      at: 1_700_000_000_000 + seq,
      type: 'action.allowed',
      data: { n: seq, s: 'x' },
      prevHash: prev,
    };
    const hash = hashRecord(content);
    out.push({ ...content, hash });
    prev = hash;
  }
  return out;
}

/** Registers the contract's tests; `fresh` opens a new, migrated, empty store (the caller closes it). */
export function storeContract(fresh: () => Promise<Store>): void {
  test('request CRUD, filters and compare-and-set', async () => {
    const store = await fresh();
    const a = await store.createRequest(newRequest());
    const b = await store.createRequest(
      newRequest({ connection: 'other', principal: { name: 'bob', kind: 'human', groups: [] } }),
    );
    assert.equal(a.id, 1);
    assert.equal(b.id, 2);
    assert.equal(a.status, 'pending');
    assert.deepEqual(await store.getRequest(1), a);
    assert.equal(await store.getRequest(99), undefined);
    assert.deepEqual(
      (await store.listRequests()).map((r) => r.id),
      [2, 1],
    );
    assert.deepEqual(
      (await store.listRequests({ connection: 'prod-db' })).map((r) => r.id),
      [1],
    );
    assert.deepEqual(
      (await store.listRequests({ principal: 'bob' })).map((r) => r.id),
      [2],
    );
    assert.deepEqual(
      (await store.listRequests({ beforeId: 2 })).map((r) => r.id),
      [1],
    );
    assert.deepEqual(
      (await store.listRequests({ limit: 1 })).map((r) => r.id),
      [2],
    );
    // The time window is the same on every store (PostgreSQL once ignored `until`).
    const c = await store.createRequest(newRequest({ createdAt: a.createdAt + 10_000 }));
    assert.deepEqual(
      (await store.listRequests({ until: a.createdAt + 5_000 })).map((r) => r.id),
      [2, 1],
    );
    assert.deepEqual(
      (await store.listRequests({ since: a.createdAt + 5_000 })).map((r) => r.id),
      [c.id],
    );

    const voted = await store.addApproval(1, { by: 'alice', at: 2_000, note: 'ok' });
    assert.deepEqual(voted?.approvals, [{ by: 'alice', at: 2_000, note: 'ok' }]);
    const again = await store.addApproval(1, { by: 'alice', at: 3_000 });
    assert.equal(again?.approvals.length, 1, 'one vote per person');

    const approved = await store.updateRequest(1, ['pending'], {
      status: 'approved',
      decidedAt: 2_000,
      grantUntil: 10_000,
    });
    assert.equal(approved?.status, 'approved');
    assert.equal(approved?.grantUntil, 10_000);
    assert.equal(approved?.approvals.length, 1);
    assert.equal(await store.updateRequest(1, ['pending'], { status: 'denied' }), undefined, 'CAS loses');
    assert.equal(await store.addApproval(1, { by: 'carol', at: 3_000 }), undefined, 'no votes once decided');
    assert.equal((await store.getRequest(1))?.status, 'approved');
    assert.deepEqual(
      (await store.listRequests({ status: ['approved'] })).map((r) => r.id),
      [1],
    );
    assert.deepEqual(
      (await store.activeGrants(5_000)).map((r) => r.id),
      [1],
    );
    assert.deepEqual(await store.activeGrants(10_000), []);
    const executed = await store.updateRequest(1, ['approved'], { status: 'executed' });
    assert.equal(executed?.status, 'executed');
    assert.deepEqual(
      (await store.activeGrants(5_000)).map((r) => r.id),
      [1],
    );
  });

  test('audit append, head, read, count; a batch is all or nothing', async () => {
    const store = await fresh();
    assert.equal(await store.auditHead(), undefined);
    const records = chain(1200);
    await store.appendAudit(records);
    assert.equal(await store.auditCount(), 1200);
    assert.deepEqual(await store.auditHead(), records[1199]);
    assert.deepEqual(await store.readAudit(1000, 3), records.slice(999, 1002));
    const bad = [...chain(2, 1201, records[1199]!.hash), records[0]!];
    await assert.rejects(store.appendAudit(bad));
    assert.equal(await store.auditCount(), 1200);
    const verified = await verifyChain(store);
    assert.equal(verified.ok, true, JSON.stringify(verified));
    assert.equal(verified.ok && verified.count, 1200);
    assert.equal(verified.ok && verified.headHash, records[1199]!.hash);
  });

  test('recordings: put replaces by id; list newest first with paging', async () => {
    const store = await fresh();
    const base = {
      sessionId: 's1',
      connection: 'app',
      protocol: 'postgres',
      principal: 'agent',
      format: 'events-jsonl' as const,
      status: 'open' as const,
      endedAt: undefined,
      bytes: 0,
      sha256: undefined,
      droppedBytes: 0,
      auditSeq: undefined,
      error: undefined,
    };
    await store.putRecording({ ...base, id: 'r1', startedAt: 1_000, path: 'r1' });
    await store.putRecording({ ...base, id: 'r2', startedAt: 2_000, path: 'r2' });
    const sealed = {
      ...base,
      id: 'r1',
      startedAt: 1_000,
      path: 'r1',
      status: 'closed' as const,
      endedAt: 5_000,
      bytes: 42,
      sha256: 'a'.repeat(64),
      auditSeq: 7,
    };
    await store.putRecording(sealed);
    assert.deepEqual(await store.getRecording('r1'), sealed);
    assert.equal(await store.getRecording('nope'), undefined);
    assert.deepEqual(
      (await store.listRecordings()).map((r) => r.id),
      ['r2', 'r1'],
    );
    assert.deepEqual(
      (await store.listRecordings({ before: { startedAt: 2_000, id: 'r2' } })).map((r) => r.id),
      ['r1'],
    );
  });

  test('votes keep the reviewer groups the voter was in', async () => {
    const store = await fresh();
    await store.createRequest(newRequest());
    await store.addApproval(1, { by: 'sam', at: 2_000, groups: ['dba', 'security'] });
    const r = await store.getRequest(1);
    assert.deepEqual(r?.approvals, [{ by: 'sam', at: 2_000, groups: ['dba', 'security'] }]);
  });

  test('API tokens: create, find by hash, list by name, revoke once', async () => {
    const store = await fresh();
    const base = {
      kind: 'service' as const,
      groups: ['ci'],
      createdBy: 'eve',
    };
    await store.createApiToken({ ...base, id: 'tok_a', name: 'bot', createdAt: 1_000, hash: 'a'.repeat(64) });
    await store.createApiToken({
      ...base,
      id: 'tok_b',
      name: 'alice',
      connections: ['app'],
      description: 'laptop',
      createdAt: 2_000,
      expiresAt: 9_000,
      hash: 'b'.repeat(64),
    });
    const found = await store.findApiToken('b'.repeat(64));
    assert.equal(found?.id, 'tok_b');
    assert.deepEqual(found?.connections, ['app']);
    assert.equal(found?.expiresAt, 9_000);
    assert.equal(await store.findApiToken('c'.repeat(64)), undefined);
    assert.deepEqual(
      (await store.listApiTokens()).map((t) => t.id),
      ['tok_b', 'tok_a'],
    );
    assert.deepEqual(
      (await store.listApiTokens({ name: 'bot' })).map((t) => t.id),
      ['tok_a'],
    );
    const revoked = await store.revokeApiToken('tok_a', 5_000, 'eve');
    assert.equal(revoked?.revokedAt, 5_000);
    assert.equal((await store.revokeApiToken('tok_a', 6_000, 'bob'))?.revokedBy, 'eve', 'revoked once');
    assert.equal(await store.revokeApiToken('tok_zzz', 6_000, 'bob'), undefined);
  });

  test('console sessions: create, get by id hash, delete, prune expired', async () => {
    const store = await fresh();
    const base = {
      principal: { name: 'alice', kind: 'human' as const, groups: ['dba'] },
      csrf: 'c'.repeat(32),
      method: 'token',
      createdAt: 1_000,
    };
    await store.createConsoleSession({
      ...base,
      idHash: 'a'.repeat(64),
      tokenHash: 't'.repeat(64),
      expiresAt: 5_000,
    });
    await store.createConsoleSession({
      ...base,
      idHash: 'b'.repeat(64),
      method: 'oidc',
      credentialExpiresAt: 4_000,
      expiresAt: 9_000,
    });
    assert.deepEqual(await store.getConsoleSession('a'.repeat(64)), {
      ...base,
      idHash: 'a'.repeat(64),
      tokenHash: 't'.repeat(64),
      credentialExpiresAt: undefined,
      expiresAt: 5_000,
    });
    const oidc = await store.getConsoleSession('b'.repeat(64));
    assert.equal(oidc?.credentialExpiresAt, 4_000);
    assert.equal(oidc?.tokenHash, undefined);
    await assert.rejects(
      store.createConsoleSession({ ...base, idHash: 'a'.repeat(64), expiresAt: 5_000 }),
      'an id is never reused',
    );
    assert.equal(await store.getConsoleSession('z'.repeat(64)), undefined);
    assert.equal(await store.deleteExpiredConsoleSessions(5_000), 1);
    assert.equal(await store.getConsoleSession('a'.repeat(64)), undefined);
    assert.equal(await store.deleteConsoleSession('b'.repeat(64)), true);
    assert.equal(await store.deleteConsoleSession('b'.repeat(64)), false);
  });

  test('shared secrets: the first value stored wins', async () => {
    const store = await fresh();
    assert.equal(await store.sharedSecret('k', 'first'), 'first');
    assert.equal(await store.sharedSecret('k', 'second'), 'first');
    const raced = await Promise.all([store.sharedSecret('j', 'x'), store.sharedSecret('j', 'y')]);
    assert.equal(raced[0], raced[1]);
  });
}
