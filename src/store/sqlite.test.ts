import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { NewRequest } from '../core/approvals/request.ts';
import { GENESIS, hashRecord } from '../core/audit/chain.ts';
import { isAirlockError } from '../core/errors.ts';
import type { AuditRecord } from '../core/store.ts';
import { openStore } from './open.ts';
import { SqliteStore } from './sqlite.ts';

function newRequest(overrides: Partial<NewRequest> = {}): NewRequest {
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

function chain(n: number, start = 1, prev = GENESIS): AuditRecord[] {
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

describe('SqliteStore', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-store-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('migrations are idempotent and keep data', async () => {
    const file = join(dir, 'nested', 'a.db');
    const s1 = new SqliteStore({ filename: file });
    await s1.migrate();
    await s1.migrate();
    await s1.createRequest(newRequest());
    await s1.close();
    const s2 = new SqliteStore({ filename: file });
    await s2.migrate();
    assert.equal((await s2.listRequests()).length, 1);
    await s2.close();
    const raw = new Database(file);
    const applied = raw.prepare('SELECT name FROM kysely_migration').all() as { name: string }[];
    assert.deepEqual(
      applied.map((r) => r.name),
      ['0001_requests_and_audit'],
    );
    assert.equal((raw.pragma('journal_mode', { simple: true }) as string).toLowerCase(), 'wal');
    raw.close();
  });

  test('request CRUD, filters and compare-and-set', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
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
    await store.close();
  });

  test('audit append, head, read, count; a batch is all or nothing', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
    assert.equal(await store.auditHead(), undefined);
    const records = chain(1200);
    await store.appendAudit(records);
    assert.equal(await store.auditCount(), 1200);
    assert.deepEqual(await store.auditHead(), records[1199]);
    assert.deepEqual(await store.readAudit(1000, 3), records.slice(999, 1002));
    // A batch that collides with an existing seq leaves nothing behind.
    const bad = [...chain(2, 1201, records[1199]!.hash), records[0]!];
    await assert.rejects(store.appendAudit(bad));
    assert.equal(await store.auditCount(), 1200);
    await store.close();
  });
});

describe('openStore', () => {
  test('sqlite file relative to the base dir, creating parents', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-open-'));
    try {
      const store = await openStore('sqlite:./data/deep/airlock.db', dir);
      assert.equal(await store.auditCount(), 0);
      await store.close();
      assert.ok(existsSync(join(dir, 'data', 'deep', 'airlock.db')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('sqlite::memory:', async () => {
    const store = await openStore('sqlite::memory:', '/nonexistent');
    assert.equal((await store.createRequest(newRequest())).id, 1);
    await store.close();
  });

  test('other schemes are a config error naming the supported stores', async () => {
    for (const url of ['mysql://x', 'nonsense']) {
      await assert.rejects(openStore(url, '/tmp'), (err: unknown) => {
        assert.ok(isAirlockError(err));
        assert.equal(err.code, 'AIRLOCK_E_CONFIG_INVALID');
        assert.match(err.describe(), /sqlite:.*postgres:\/\//);
        return true;
      });
    }
  });
});
