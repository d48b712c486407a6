import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { findSecrets, maskSecretsInDiff } from './secrets.ts';

describe('secrets in pushed lines', () => {
  it('finds keys in added lines only, and masks them', () => {
    const patch = [
      'diff --git a/a.env b/a.env',
      '--- a/a.env',
      '+++ b/a.env',
      '-OLD=AKIAIOSFODNN7EXAMPLF',
      '+AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE',
      '+++ b/key.pem',
      '+-----BEGIN OPENSSH PRIVATE KEY-----',
      '+token: ghp_abcdefghijklmnopqrstuvwxyz0123456789',
    ].join('\n');
    const found = findSecrets(patch);
    assert.deepEqual(
      found.map((f) => [f.file, f.detector]),
      [
        ['a.env', 'aws_access_key'],
        ['key.pem', 'private_key'],
        ['key.pem', 'github_token'],
      ],
    );
    for (const f of found) assert.doesNotMatch(f.masked, /IOSFODNN7EXAMPL|abcdefghijklmnop/);
  });
});

test('a diff shown to reviewers has its secrets masked, keys from BEGIN to END', () => {
  const patch = [
    'diff --git a/k b/k',
    '+++ b/k',
    '@@ -0,0 +1,5 @@',
    '+token = ghp_abcdefghijklmnopqrstuvwxyz0123456789',
    '+-----BEGIN OPENSSH PRIVATE KEY-----',
    '+b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ',
    '+-----END OPENSSH PRIVATE KEY-----',
    ' plain line',
  ].join('\n');
  const out = maskSecretsInDiff(patch);
  assert.doesNotMatch(out, /abcdefghijklmnopqrstuvwxyz|b3BlbnNz/);
  assert.deepEqual(out.split('\n').slice(3), [
    '+token = ghp_************************89',
    '+[private key masked]',
    '+[private key masked]',
    '+[private key masked]',
    ' plain line',
  ]);
});
