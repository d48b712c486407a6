import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findSecrets } from './secrets.ts';

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
