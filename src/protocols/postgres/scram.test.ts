import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScramClient } from './scram.ts';

// RFC 7677 section 3: the SCRAM-SHA-256 example exchange.
test('SCRAM-SHA-256 client reproduces the RFC 7677 example', () => {
  const c = new ScramClient('pencil', { user: 'user', nonce: 'rOprNGfwEbeRWgbNEkqO' });
  assert.equal(c.clientFirst(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  const serverFirst =
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
  assert.equal(
    c.clientFinal(serverFirst),
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  );
  c.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
});

test('SCRAM client rejects a wrong server signature and a nonce it did not start', () => {
  const c = new ScramClient('pencil', { user: 'user', nonce: 'rOprNGfwEbeRWgbNEkqO' });
  c.clientFirst();
  c.clientFinal('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
  assert.throws(() => c.verifyServerFinal('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='), /signature/);
  const d = new ScramClient('pencil', { nonce: 'abc' });
  d.clientFirst();
  assert.throws(() => d.clientFinal('r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'), /nonce/);
});
