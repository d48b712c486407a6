import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TextCache } from './text-cache.ts';

test('computes once per key and keeps at most maxEntries', () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ maxLength: 4 }), { maxLength: 200 }),
      fc.integer({ min: 1, max: 20 }),
      (keys, max) => {
        const cache = new TextCache<string>(max);
        let computed = 0;
        for (const k of keys) {
          const v = cache.getOrCompute(k, (key) => {
            computed++;
            return `v:${key}`;
          });
          assert.equal(v, `v:${k}`);
          assert.ok(cache.size <= max);
        }
        assert.ok(computed <= keys.length);
        // A key asked twice in a row is computed once.
        if (keys.length > 0) {
          const before = computed;
          cache.getOrCompute(keys[0]!, () => {
            computed++;
            return `v:${keys[0]}`;
          });
          cache.getOrCompute(keys[0]!, () => {
            computed++;
            return 'never';
          });
          assert.ok(computed - before <= 1);
        }
      },
    ),
  );
});

test('long keys are computed each time, never kept', () => {
  const cache = new TextCache<number>(10, 8);
  let n = 0;
  assert.equal(
    cache.getOrCompute('x'.repeat(9), () => ++n),
    1,
  );
  assert.equal(
    cache.getOrCompute('x'.repeat(9), () => ++n),
    2,
  );
  assert.equal(cache.size, 0);
  assert.equal(
    cache.getOrCompute('short', () => ++n),
    3,
  );
  assert.equal(
    cache.getOrCompute('short', () => ++n),
    3,
  );
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
