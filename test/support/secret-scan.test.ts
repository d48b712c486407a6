import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findLeaks, leaksIn } from './secret-scan.ts';

test('the secret scan finds a token as written and base64-encoded, and skips what it is told to', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-scan-'));
  try {
    const token = 'alk_test_scan_0123456789abcdef';
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets', 'agent.token'), token);
    writeFileSync(join(dir, 'clean.log'), 'nothing to see\n');
    assert.deepEqual(
      findLeaks(dir, { agent: token }, (p) => p.endsWith('secrets')),
      [],
    );
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'blob.bin'), Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(token)]));
    writeFileSync(join(dir, 'basic.log'), `Authorization: Basic ${Buffer.from(token).toString('base64')}`);
    const leaks = findLeaks(dir, { agent: token }, (p) => p.endsWith('secrets'));
    assert.deepEqual(leaks.map((l) => l.where).sort(), ['basic.log', 'data/blob.bin']);
    assert.ok(leaks.every((l) => !JSON.stringify(l).includes(token)));
    assert.deepEqual(leaksIn(`{"error":"bad token ${token}"}`, { agent: token }), ['agent']);
    assert.deepEqual(leaksIn('{"ok":true}', { agent: token }), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
