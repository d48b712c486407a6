import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicy } from '../policy/load.ts';
import { maskerFor } from './masker.ts';
import { maskText } from './strategy.ts';

const POLICY = `
connections:
  prod:
    type: postgres
    upstream: { host: 127.0.0.1, database: app, user: app }
  other:
    type: postgres
    upstream: { host: 127.0.0.1, database: app, user: app }
masking:
  - connections: [prod]
    columns: ["*.email", "public.customers.card_number"]
    detectors: [email, credit_card]
    strategy: partial
    exempt: { groups: [dpo] }
  - connections: [prod]
    columns: [secrets.*]
    strategy: hash
    salt: pepper
  - columns: [ssn]
    detectors: [ssn]
    strategy: full
`;

const agent = { name: 'agent', groups: ['agents'] };

test('rules narrow to connection and principal', () => {
  const p = parsePolicy(POLICY);
  assert.equal(p.masking?.length, 3);
  assert.equal(p.masking?.[2]?.strategy, 'redact');
  assert.deepEqual(p.masking?.[2]?.detectors, ['national_id']);
  const m = maskerFor(p.masking, 'prod', agent)!;
  assert.equal(
    m.column({ schema: 'public', table: 'customers', column: 'card_number', output: 'x' })?.strategy,
    'partial',
  );
  assert.equal(
    m.column({ schema: 'other', table: 'customers', column: 'card_number', output: 'card_number' }),
    undefined,
  );
  // `*.email` also matches a computed column by its name.
  assert.equal(m.column({ output: 'email' })?.strategy, 'partial');
  assert.equal(
    m.column({ schema: 'public', table: 'secrets', column: 'value', output: 'v' })?.strategy,
    'hash',
  );
  // Stricter wins: ssn is redacted everywhere.
  assert.equal(m.column({ output: 'ssn' })?.strategy, 'redact');
  const dpo = maskerFor(p.masking, 'prod', { name: 'd', groups: ['dpo'] })!;
  assert.equal(dpo.column({ output: 'email' }), undefined);
  assert.equal(dpo.column({ output: 'ssn' })?.strategy, 'redact');
  const other = maskerFor(p.masking, 'other', agent)!;
  assert.equal(other.column({ output: 'email' }), undefined);
  assert.equal(other.scan('me@example.com 123-45-6789'), 'me@example.com [redacted national_id]');
});

test('scan masks detected spans with the detector strategy', () => {
  const m = maskerFor(parsePolicy(POLICY).masking, 'prod', agent)!;
  assert.equal(
    m.scan('mail jane@example.com card 4111 1111 1111 1111!'),
    'mail j***@example.com card **** **** **** 1111!',
  );
  assert.equal(m.scan('nothing here'), 'nothing here');
});

test('strategies', () => {
  assert.equal(
    maskText('4111-1111-1111-1234', { strategy: 'partial', label: 'value' }),
    '****-****-****-1234',
  );
  assert.equal(maskText('abc', { strategy: 'partial', label: 'value' }), '***');
  assert.equal(maskText('x', { strategy: 'redact', label: 'email' }), '[redacted email]');
  const h1 = maskText('a@b.co', { strategy: 'hash', salt: 's1', label: 'email' });
  assert.equal(h1, maskText('a@b.co', { strategy: 'hash', salt: 's1', label: 'email' }));
  assert.notEqual(h1, maskText('a@b.co', { strategy: 'hash', salt: 's2', label: 'email' }));
  assert.match(h1, /^hash:[0-9a-f]{16}$/);
  for (const s of ['partial', 'redact', 'hash'] as const)
    assert.doesNotMatch(maskText('a\tb\n"c\\,d', { strategy: s, salt: 'x', label: 'value' }), /[\t\n"\\,]/);
});

test('policy errors: unknown detector, hash without salt, nothing to mask, unknown connection', () => {
  const base = 'connections:\n  prod:\n    type: postgres\n    upstream: { host: h, database: d, user: u }\n';
  assert.throws(() => parsePolicy(`${base}masking:\n  - detectors: [dna]\n`), /unknown detector "dna"/);
  assert.throws(() => parsePolicy(`${base}masking:\n  - columns: [a]\n    strategy: hash\n`), /needs a salt/);
  assert.throws(() => parsePolicy(`${base}masking:\n  - strategy: partial\n`), /name columns, detectors/);
  assert.throws(
    () => parsePolicy(`${base}masking:\n  - connections: [nope]\n    columns: [a]\n`),
    /unknown connection "nope"/,
  );
});
