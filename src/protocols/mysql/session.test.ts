/** Which peers may send the Airlock token in clear on a plain connection: this host's loopback only. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopback } from './session.ts';

test('loopback addresses, also IPv4-mapped, and nothing else', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(a), true, a);
  for (const a of [
    undefined,
    '',
    '10.0.0.1',
    '192.0.2.2',
    '::ffff:10.0.0.1',
    'fd00::2',
    '::',
    '0.0.0.0',
    '127.0.0.1.example.com',
    '1127.0.0.1',
  ])
    assert.equal(isLoopback(a), false, String(a));
});
