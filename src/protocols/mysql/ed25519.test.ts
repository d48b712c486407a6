/** The ed25519 signer agrees with Node's own Ed25519 when given the key a seed expands to. */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { test } from 'node:test';
import { signWithExpandedKey } from './ed25519.ts';

test('signatures match node:crypto Ed25519 for the same expanded key', () => {
  for (let i = 0; i < 5; i++) {
    const seed = randomBytes(32);
    const message = randomBytes(32);
    // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
    const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
    const expected = sign(null, message, createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
    const az = createHash('sha512').update(seed).digest();
    assert.equal(signWithExpandedKey(az, message).toString('hex'), expected.toString('hex'));
  }
});
