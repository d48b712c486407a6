import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import ssh2 from 'ssh2';
import { fingerprint, hostKeyPath, loadOrCreateHostKey, parsePin, publicKeyOf } from './host-keys.ts';

test('the host key is generated once, private to its owner, and then kept', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-hostkey-'));
  try {
    const path = hostKeyPath({ store: 'sqlite:./data/airlock.db', baseDir: dir });
    assert.equal(path, join(dir, 'data', 'ssh_host_ed25519_key'));
    const first = loadOrCreateHostKey(path);
    assert.equal(first.created, true);
    assert.equal(statSync(path).mode & 0o077, 0, 'no access for group or others');
    const second = loadOrCreateHostKey(path);
    assert.equal(second.created, false);
    assert.equal(publicKeyOf(second.key).fingerprint, publicKeyOf(first.key).fingerprint);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pins: fingerprint, known_hosts line and bare key match the key; others and @revoked do not', () => {
  const a = ssh2.utils.generateKeyPairSync('ed25519');
  const b = ssh2.utils.generateKeyPairSync('ed25519');
  const blobOf = (pub: string) => Buffer.from(pub.split(' ')[1]!, 'base64');
  const blob = blobOf(a.public);
  const other = blobOf(b.public);
  const fp = fingerprint(blob);
  assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
  for (const pin of [fp, `[10.0.0.7]:22,web-1 ${a.public}`, a.public, `web-1 ${a.public} comment here`]) {
    assert.equal(parsePin(pin).matches(blob), true, pin);
    assert.equal(parsePin(pin).matches(other), false, pin);
  }
  assert.equal(parsePin(`@revoked web-1 ${a.public}`).matches(blob), false);
  assert.equal(parsePin(`@cert-authority *.example ${a.public}`).matches(blob), false);
});
