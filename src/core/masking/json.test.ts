import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parsePolicy } from '../policy/load.ts';
import { maskJsonBody } from './json.ts';
import { jsonPathMatches, parseJsonPath } from './json-path.ts';
import { maskerFor } from './masker.ts';

const POLICY = `
connections:
  api:
    type: http
    upstream: { url: "http://127.0.0.1:1" }
masking:
  - connections: [api]
    columns: [password_hint]
    json_paths: ["$.customer.ssn", "$.items[*].card", "$..iban", "$.meta['x-secret']"]
    strategy: redact
  - connections: [api]
    detectors: [email, credit_card]
    strategy: partial
`;
const agent = { name: 'agent', groups: ['agents'] };

test('JSON paths: members, elements, wildcards, descendants', () => {
  const m = (p: string, v: (string | number)[]) => jsonPathMatches(parseJsonPath(p), v);
  assert.ok(m('$.a.b', ['a', 'b']));
  assert.ok(!m('$.a.b', ['a', 'b', 'c']));
  assert.ok(m('$.items[*].card', ['items', 3, 'card']));
  assert.ok(m('$.items[2]', ['items', 2]));
  assert.ok(!m('$.items[2]', ['items', 1]));
  assert.ok(m('$..iban', ['accounts', 0, 'iban']));
  assert.ok(m('$..iban', ['iban']));
  assert.ok(m('$.*.token_*', ['x', 'token_a']));
  assert.ok(m("$['odd name'].x", ['odd name', 'x']));
  for (const bad of ['a.b', '$', '$.a[?(@.x)]', '$.a[1:2]', '$.a[', '$.a b'])
    assert.throws(() => parseJsonPath(bad), Error, bad);
});

test('policy: json_paths alone make a rule; a bad path is reported when the policy loads', () => {
  const base = 'connections:\n  api:\n    type: http\n    upstream: { url: "http://h" }\n';
  assert.equal(parsePolicy(`${base}masking:\n  - json_paths: ["$.a"]\n`).masking?.[0]?.jsonPaths?.[0], '$.a');
  assert.throws(() => parsePolicy(`${base}masking:\n  - json_paths: ["a.b"]\n`), /start with \$/);
});

test('a JSON body is masked by path, by field name and by detectors', () => {
  const masker = maskerFor(parsePolicy(POLICY).masking, 'api', agent)!;
  const body = {
    customer: { name: 'Jane', ssn: '123-45-6789', contact: 'jane@example.com' },
    items: [{ card: 4111111111111111, sku: 'A' }, { card: { last: '1111' } }],
    accounts: [{ iban: 'DE89370400440532013000' }],
    password_hint: 'dog',
    meta: { 'x-secret': true, free: 'text 4111 1111 1111 1111' },
    byMail: { 'bob@example.org': 1 },
    n: null,
  };
  const out = JSON.parse(maskJsonBody(masker, Buffer.from(JSON.stringify(body))).toString());
  assert.equal(out.customer.ssn, '[redacted value]');
  assert.equal(out.customer.name, 'Jane');
  assert.equal(out.customer.contact, 'j***@example.com');
  assert.equal(out.items[0].card, '[redacted value]');
  assert.equal(out.items[0].sku, 'A');
  assert.deepEqual(out.items[1].card, { last: '[redacted value]' });
  assert.equal(out.accounts[0].iban, '[redacted value]');
  assert.equal(out.password_hint, '[redacted value]');
  assert.equal(out.meta['x-secret'], '[redacted value]');
  assert.equal(out.meta.free, 'text **** **** **** 1111');
  assert.deepEqual(Object.keys(out.byMail), ['b**@example.org']);
  assert.equal(out.n, null);
});

test('a body with nothing to mask is passed byte for byte; non-JSON and deep nesting are refused', () => {
  const masker = maskerFor(parsePolicy(POLICY).masking, 'api', agent)!;
  const raw = Buffer.from('{ "a" : 1,\n "b": "plain" }');
  assert.equal(maskJsonBody(masker, raw), raw);
  assert.equal(maskJsonBody(masker, Buffer.from('  ')).toString(), '  ');
  assert.throws(() => maskJsonBody(masker, Buffer.from('<html>')), /not valid JSON/);
  assert.throws(
    () => maskJsonBody(masker, Buffer.from(`${'['.repeat(100)}${']'.repeat(100)}`)),
    /nested deeper/,
  );
});

test('no value a path names survives masking (property)', () => {
  const masker = maskerFor(parsePolicy(POLICY).masking, 'api', agent)!;
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string(), fc.integer(), fc.boolean()), { maxLength: 5 }), (cards) => {
      const body = { items: cards.map((card) => ({ card })), accounts: [{ deep: { iban: cards } }] };
      const out = JSON.parse(maskJsonBody(masker, Buffer.from(JSON.stringify(body))).toString());
      for (const i of out.items) assert.equal(i.card, '[redacted value]');
      for (const v of out.accounts[0].deep.iban) assert.equal(v, '[redacted value]');
    }),
    { numRuns: 200 },
  );
});
