import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isAirlockError } from '../errors.ts';
import type { OidcIssuer } from '../policy/policy.ts';
import { CompositeAuthenticator } from './composite.ts';
import { OidcVerifier } from './oidc.ts';
import { hashToken, TokenRegistry } from './tokens.ts';

const issuer: OidcIssuer = {
  issuer: 'https://idp.example',
  audiences: ['airlock'],
  // Keys from a closed loopback port: any token that gets as far as a key lookup fails there.
  jwksUri: 'http://127.0.0.1:9/jwks',
  algorithms: ['RS256'],
  clockSkewMs: 0,
  nameClaim: 'sub',
  namePrefix: '',
  kind: 'human',
  require: {},
  claimRules: [],
  scopes: [],
};

const auth = new CompositeAuthenticator({
  policyTokens: new TokenRegistry([
    { name: 'alice', kind: 'human', groups: ['dba'], hash: hashToken('alk_alice') },
  ]),
  oidc: new OidcVerifier([issuer]),
});

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Credentials shaped like JWTs (random headers and claims, some naming the issuer) and plain junk. */
const credential = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc
    .record({
      alg: fc.constantFrom('none', 'HS256', 'RS256', 'ES256', 'nonsense'),
      iss: fc.oneof(fc.constant(issuer.issuer), fc.webUrl(), fc.string()),
      aud: fc.oneof(fc.constant('airlock'), fc.string()),
      exp: fc.integer(),
      sig: fc.base64String({ maxLength: 60 }),
    })
    .map(
      ({ alg, iss, aud, exp, sig }) =>
        `${b64({ alg })}.${b64({ iss, aud, exp, sub: 'x' })}.${sig.replace(/[+/=]/g, '')}`,
    ),
);

test('no credential but a real one authenticates; refusals are AirlockErrors that never echo it', async () => {
  assert.equal((await auth.authenticate('alk_alice')).name, 'alice');
  await fc.assert(
    fc.asyncProperty(credential, async (c) => {
      fc.pre(c !== 'alk_alice');
      try {
        await auth.authenticate(c, { protocol: 'postgres' });
      } catch (err) {
        assert.ok(isAirlockError(err), String(err));
        if (c.length >= 12)
          assert.ok(!`${err.message} ${err.hint ?? ''}`.includes(c), 'the credential is not echoed');
        return;
      }
      assert.fail('a made-up credential authenticated');
    }),
    { numRuns: 300 },
  );
});
