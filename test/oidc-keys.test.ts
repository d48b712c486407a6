/**
 * Issuer key rotation against a real provider: a token signed with a key the verifier has not
 * seen triggers a fresh JWKS fetch (after the cooldown), so a rotation needs no restart; a
 * token signed with a retired key that is no longer published is refused.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { OidcVerifier } from '../src/core/identity/oidc.ts';
import type { OidcIssuer } from '../src/core/policy/policy.ts';
import { startTestIdp, type TestIdp } from './support/oidc.ts';

let idp: TestIdp;

before(async () => {
  idp = await startTestIdp();
  idp.configure({ redirectUris: ['http://127.0.0.1/unused'] });
});

after(async () => {
  await idp?.close();
});

function issuer(): OidcIssuer {
  return {
    issuer: idp.issuer,
    audiences: ['airlock'],
    algorithms: ['RS256'],
    clockSkewMs: 0,
    nameClaim: 'sub',
    namePrefix: '',
    kind: 'service',
    require: {},
    claimRules: [],
    scopes: [],
  };
}

test('a rotated signing key is fetched on first sight; a retired one stops working', async () => {
  const verifier = new OidcVerifier([issuer()], { jwksCooldownMs: 0 });
  const before = await idp.workloadToken('airlock');
  assert.equal((await verifier.verify(before)).principal.name, 'ci-runner');

  idp.rotateKeys(true);
  const rotated = await idp.workloadToken('airlock');
  assert.equal((await verifier.verify(rotated)).principal.name, 'ci-runner', 'new key picked up');
  assert.equal((await verifier.verify(before)).principal.name, 'ci-runner', 'old key still published');

  idp.rotateKeys(false);
  const current = await idp.workloadToken('airlock');
  assert.equal((await verifier.verify(current)).principal.name, 'ci-runner');
  // The verifier refetches for the unknown kid of `current`; the first key is gone from the set.
  await assert.rejects(verifier.verify(before), /key the issuer does not publish/);
});

test('an unreachable issuer is reported as such, and discovery is retried on the next token', async () => {
  const down = new OidcVerifier([{ ...issuer(), issuer: 'http://127.0.0.1:9' }]);
  const token = await idp.workloadToken('airlock');
  // A token naming the unreachable issuer: re-encode the payload's iss (the signature is moot).
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, iss: 'http://127.0.0.1:9' })).toString('base64url')}.${s}`;
  await assert.rejects(down.verify(forged), (err: { code?: string; message?: string }) => {
    assert.equal(err.code, 'AIRLOCK_E_OIDC_UNAVAILABLE');
    assert.match(err.message ?? '', /discovery document/);
    return true;
  });
  await assert.rejects(down.verify(forged), /discovery document/);
});
