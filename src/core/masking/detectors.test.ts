import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DETECTORS, type DetectorName, detect, luhnValid } from './detectors.ts';

const ALL = new Set<DetectorName>(DETECTORS);

function found(text: string, only?: DetectorName): string[] {
  return detect(text, only ? new Set([only]) : ALL).map((f) => `${f.detector}:${text.slice(f.start, f.end)}`);
}

test('Luhn check', () => {
  assert.equal(luhnValid('4111111111111111'), true);
  assert.equal(luhnValid('4111111111111112'), false);
  assert.equal(luhnValid('79927398713'), true);
});

test('each detector finds its values and leaves look-alikes alone', () => {
  const cases: [DetectorName, string, string[]][] = [
    ['email', 'write to jane.doe+x@mail.example.co.uk today', ['email:jane.doe+x@mail.example.co.uk']],
    ['email', 'user@localhost is not an address with a domain', []],
    ['credit_card', 'card 4111 1111 1111 1111 ok', ['credit_card:4111 1111 1111 1111']],
    ['credit_card', 'amex 3782-822463-10005', ['credit_card:3782-822463-10005']],
    ['credit_card', 'order 4111111111111112 fails Luhn', []],
    ['credit_card', 'id 1234567890123452 has no card prefix', []],
    ['national_id', 'ssn 123-45-6789', ['national_id:123-45-6789']],
    ['national_id', 'never issued 000-12-3456 666-12-3456 912-12-3456', []],
    ['national_id', 'NINO AB 12 34 56 C', ['national_id:AB 12 34 56 C']],
    ['phone', 'call +44 20 7946 0958 or (415) 555-0132', ['phone:+44 20 7946 0958', 'phone:(415) 555-0132']],
    ['phone', 'on 2024-01-15 at 10:30', []],
    [
      'jwt',
      'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc_DEF-123',
      ['jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc_DEF-123'],
    ],
    ['cloud_key', 'AKIAIOSFODNN7EXAMPLE', ['cloud_key:AKIAIOSFODNN7EXAMPLE']],
    [
      'cloud_key',
      'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      ['cloud_key:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    ],
    [
      'cloud_key',
      'key=AIzaSyA1234567890abcdefghijklmnopqrstuv',
      ['cloud_key:AIzaSyA1234567890abcdefghijklmnopqrstuv'],
    ],
    [
      'cloud_key',
      'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
      ['cloud_key:ghp_abcdefghijklmnopqrstuvwxyz0123456789'],
    ],
    [
      'cloud_key',
      'AccountName=x;AccountKey=' + 'a'.repeat(86) + '==;',
      ['cloud_key:' + 'a'.repeat(86) + '=='],
    ],
    [
      'private_key',
      'k: -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done',
      ['private_key:-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----'],
    ],
    [
      'private_key',
      'cut -----BEGIN PRIVATE KEY-----\nMIIE',
      ['private_key:-----BEGIN PRIVATE KEY-----\nMIIE'],
    ],
  ];
  for (const [d, text, want] of cases) assert.deepEqual(found(text, d), want, `${d}: ${text}`);
});

test('plain words and numbers are not findings', () => {
  for (const t of ['hello world', '42', 'Customer 17', '2024-11-21 18:00:00+00', '3.14159', 'a@b'])
    assert.deepEqual(found(t), [], t);
});

test('spans are ordered, inside the text and never overlap (property)', () => {
  const piece = fc.oneof(
    fc.string(),
    fc.constantFrom(
      'x@example.com',
      '4111 1111 1111 1111',
      '123-45-6789',
      '+1 415 555 0132',
      'AKIAIOSFODNN7EXAMPLE',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig',
      '-----BEGIN PRIVATE KEY-----',
      ' ',
      '-',
      '@',
    ),
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
      const text = pieces.join('');
      const spans = detect(text, ALL);
      let end = 0;
      for (const s of spans) {
        assert.ok(s.start >= end && s.end > s.start && s.end <= text.length);
        end = s.end;
      }
    }),
    { numRuns: 500 },
  );
});

test('long hostile input is scanned quickly enough to finish', () => {
  // Bounded repetition keeps these linear; the test only needs to complete.
  detect(`${'a'.repeat(100_000)}@`, ALL);
  detect('1 '.repeat(50_000), ALL);
  detect('eyJ'.repeat(30_000), ALL);
});
