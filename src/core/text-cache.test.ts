import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TextCache } from './text-cache.ts';

test('keeps what was set until it is full, and never more than maxEntries', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.string({ maxLength: 4 }), fc.integer()), { maxLength: 200 }),
      fc.integer({ min: 1, max: 20 }),
      (entries, max) => {
        const cache = new TextCache<number>(max);
        for (const [k, v] of entries) {
          cache.set(k, v);
          assert.equal(cache.get(k), v);
          assert.ok(cache.size <= max);
        }
      },
    ),
  );
});

test('long keys are never kept', () => {
  const cache = new TextCache<number>(10, 8);
  cache.set('x'.repeat(9), 1);
  assert.equal(cache.get('x'.repeat(9)), undefined);
  assert.equal(cache.size, 0);
  cache.set('short', 3);
  assert.equal(cache.get('short'), 3);
  assert.equal(cache.size, 1);
});

test('a full cache is emptied before a new key goes in; updating a kept key is not', () => {
  const cache = new TextCache<number>(2);
  cache.set('a', 1);
  cache.set('b', 2);
  cache.set('b', 3);
  assert.equal(cache.size, 2);
  cache.set('c', 4);
  assert.equal(cache.size, 1);
  assert.equal(cache.get('a'), undefined);
  assert.equal(cache.get('c'), 4);
});
