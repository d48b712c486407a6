import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { newRequest } from '../../store/store-contract.ts';
import { pendingRequests } from './pending.ts';

test('every pending request is visited once, across pages, newest first', async () => {
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  try {
    for (let i = 0; i < 23; i++) await store.createRequest(newRequest({ createdAt: 1_000 + i }));
    await store.updateRequest(5, ['pending'], { status: 'denied', decidedAt: 2_000, reason: 'no' });
    const seen: number[] = [];
    for await (const r of pendingRequests(store, 4)) seen.push(r.id);
    const expected = Array.from({ length: 23 }, (_, i) => 23 - i).filter((id) => id !== 5);
    assert.deepEqual(seen, expected);
  } finally {
    await store.close();
  }
});
