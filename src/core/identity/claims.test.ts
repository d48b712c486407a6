import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OidcIssuer } from '../policy/policy.ts';
import { claimsMatch, principalFromClaims } from './claims.ts';
import { looksLikeJwt } from './oidc.ts';

const issuer: OidcIssuer = {
  issuer: 'https://token.example',
  audiences: ['airlock'],
  algorithms: ['RS256'],
  clockSkewMs: 60_000,
  nameClaim: 'sub',
  namePrefix: 'gh:',
  kind: 'human',
  groupsClaim: 'groups',
  require: { repository_owner: ['acme'] },
  claimRules: [
    { when: { repository: ['acme/*'], ref: ['refs/heads/main'] }, kind: 'service', groups: ['deployers'] },
    { when: { environment: ['prod*'] }, kind: 'agent', groups: ['prod'] },
  ],
  scopes: [],
};

test('claim rules add groups, the first kind wins, the groups claim is read as array or string', () => {
  const p = principalFromClaims(issuer, {
    sub: 'repo:acme/app',
    repository_owner: 'acme',
    repository: 'acme/app',
    ref: 'refs/heads/main',
    environment: 'production',
    groups: 'ops  dev,bad group',
  });
  assert.equal(p.name, 'gh:repo:acme/app');
  assert.equal(p.kind, 'service');
  assert.deepEqual([...p.groups].sort(), ['bad', 'deployers', 'dev', 'group', 'ops', 'prod']);
  const q = principalFromClaims(issuer, {
    sub: 'x',
    repository_owner: 'acme',
    groups: ['a', '../evil path'],
  });
  assert.equal(q.kind, 'human');
  assert.deepEqual(q.groups, ['a']);
});

test('required claims and the name claim must be present', () => {
  assert.throws(
    () => principalFromClaims(issuer, { sub: 'x', repository_owner: 'evil' }),
    /not one Airlock accepts/,
  );
  assert.throws(() => principalFromClaims(issuer, { repository_owner: 'acme' }), /no "sub" claim/);
});

test('claim matching: arrays match by any element, numbers and booleans as text, absent never matches', () => {
  assert.ok(claimsMatch({ a: ['x', 'y'] }, { a: ['y'] }));
  assert.ok(claimsMatch({ n: 42, b: true }, { n: ['4*'], b: ['true'] }));
  assert.ok(!claimsMatch({}, { a: ['*'] }));
  assert.ok(!claimsMatch({ a: { nested: 'x' } }, { a: ['*'] }));
});

test('JWT shape detection', () => {
  assert.ok(looksLikeJwt('eyJhbGciOiJub25lIn0.eyJ9.'));
  assert.ok(!looksLikeJwt('alk_abc.def'));
  assert.ok(!looksLikeJwt('eyJ.a.b.c'));
});
