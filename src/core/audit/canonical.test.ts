import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonical } from './canonical.ts';
import { GENESIS, hashCanonicalData, hashRecord } from './chain.ts';

test('sorted keys, no whitespace, nested', () => {
  assert.equal(
    canonical({ b: 1, a: [true, null, 'x'], c: { z: 1, y: { b: 2, a: 1 } } }),
    '{"a":[true,null,"x"],"b":1,"c":{"y":{"a":1,"b":2},"z":1}}',
  );
  assert.equal(canonical({ a: undefined, b: 2 }), '{"b":2}');
  assert.equal(canonical([undefined]), '[null]');
  assert.equal(canonical(-0), '0');
  assert.equal(canonical('é"\n'), JSON.stringify('é"\n'));
  assert.equal(canonical(new Date(0)), '"1970-01-01T00:00:00.000Z"');
});

test('rejects what JSON cannot carry', () => {
  for (const bad of [
    Number.NaN,
    Number.POSITIVE_INFINITY,
    { x: Number.NEGATIVE_INFINITY },
    1n,
    () => 1,
    Symbol('s'),
  ]) {
    assert.throws(() => canonical(bad), TypeError);
  }
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => canonical(cyclic), /circular/);
});

test('canonical round-trips and does not depend on key insertion order', () => {
  const reversed = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(reversed)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .reverse()
              .map((k) => [k, reversed((v as Record<string, unknown>)[k])]),
          )
        : v;
  fc.assert(
    // JSON has no negative zero: -0 is written as 0, which is what a verifier re-reads.
    fc.property(
      fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown),
      (value) => {
        const text = canonical(value);
        assert.deepEqual(JSON.parse(text), value);
        assert.equal(canonical(JSON.parse(text)), text);
        assert.equal(canonical(reversed(value)), text);
        assert.doesNotMatch(text.replace(/"(?:[^"\\]|\\.)*"/g, '""'), /\s/);
      },
    ),
    { numRuns: 300 },
  );
});

test('hashCanonicalData agrees with hashRecord', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }),
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.string(),
      fc.dictionary(fc.string(), fc.jsonValue()),
      (seq, at, type, data) => {
        const r = { seq, at, type, data, prevHash: GENESIS };
        assert.equal(hashCanonicalData(seq, at, type, canonical(data), GENESIS), hashRecord(r));
        assert.match(hashRecord(r), /^[0-9a-f]{64}$/);
      },
    ),
    { numRuns: 200 },
  );
});
