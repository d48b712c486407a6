import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import type { Store } from '../store.ts';
import { AuditLog } from './log.ts';
import { type AuditSearch, searchAudit } from './search.ts';

const PRINCIPALS = ['agent', 'ci', 'alice'];
const CONNECTIONS = ['prod-db', 'web-1'];
const KINDS = ['read', 'write', 'schema'];
const DECISIONS = ['allow', 'review', 'deny'];

async function makeLog(n: number): Promise<SqliteStore> {
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  let t = 1_000_000;
  const log = new AuditLog(store, { now: () => (t += 1000) });
  await log.init();
  for (let i = 0; i < n; i++)
    log.appendLater(i % 7 === 0 ? 'request.created' : 'action.allowed', {
      principal: { name: PRINCIPALS[i % 3], kind: 'agent', groups: [] },
      connection: CONNECTIONS[i % 2],
      kind: KINDS[i % 3],
      decision: DECISIONS[(i >> 1) % 3],
      ...(i % 7 === 0 ? { requestId: i } : {}),
      summary: i % 50 === 0 ? `DELETE FROM orders WHERE id = ${i}` : `SELECT ${i}`,
    });
  await log.close();
  return store;
}

/** The same store without its searchAudit, so the generic scan runs. */
function scanOnly(store: Store): Store {
  return new Proxy(store, {
    get: (target, prop, receiver) =>
      prop === 'searchAudit' ? undefined : Reflect.get(target, prop, receiver),
  });
}

describe('audit search', () => {
  test('filters, time ranges and paging agree between the store query and the scan', async () => {
    const store = await makeLog(3000);
    const queries: AuditSearch[] = [
      { principal: 'agent' },
      { principal: 'ci', connection: 'web-1', kind: 'write' },
      { decision: 'deny', limit: 7 },
      { type: 'request.created', requestId: 1400 },
      { text: 'DELETE FROM orders' },
      { since: 1_000_000 + 1000 * 1000, until: 1_000_000 + 1000 * 1100, principal: 'alice' },
      { kind: 'schema', before: 1500, limit: 25 },
    ];
    for (const q of queries) {
      const a = await searchAudit(store, q);
      const b = await searchAudit(scanOnly(store), q);
      assert.deepEqual(
        a.records.map((r) => r.seq),
        b.records.map((r) => r.seq),
        JSON.stringify(q),
      );
      assert.equal(a.next, b.next);
      assert.ok(a.records.length > 0, JSON.stringify(q));
      for (let i = 1; i < a.records.length; i++) assert.ok(a.records[i]!.seq < a.records[i - 1]!.seq);
    }
    const deletes = await searchAudit(store, { text: 'DELETE FROM orders' });
    assert.equal(deletes.records.length, 60);
    const range = await searchAudit(store, {
      since: 1_000_000 + 1000 * 1000,
      until: 1_000_000 + 1000 * 1100,
    });
    assert.deepEqual([range.records.at(-1)!.seq, range.records[0]!.seq], [1000, 1099]);
    // Paging: the pages of 100 together are exactly the whole result, newest first.
    const all: number[] = [];
    let before: number | undefined;
    do {
      const page = await searchAudit(store, { principal: 'agent', limit: 100, before });
      all.push(...page.records.map((r) => r.seq));
      before = page.next;
    } while (before !== undefined);
    assert.equal(all.length, 1000);
    assert.equal(new Set(all).size, 1000);
    await store.close();
  });
});
