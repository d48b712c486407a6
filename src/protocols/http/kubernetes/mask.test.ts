import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MASKED_VALUE, secretMask } from './mask.ts';

const secret = {
  kind: 'Secret',
  metadata: {
    name: 'db',
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"p":"c2VjcmV0"}}' },
  },
  data: { p: 'c2VjcmV0' },
  stringData: { q: 'plain' },
};

describe('Secret masking', () => {
  it('masks objects, lists, table rows and watch events', () => {
    const whole = secretMask('whole');
    for (const doc of [
      secret,
      { kind: 'SecretList', items: [{ ...secret, kind: undefined }] },
      { kind: 'Table', rows: [{ cells: ['db'], object: secret }] },
      { type: 'ADDED', object: secret },
    ]) {
      const out = whole.apply(Buffer.from(JSON.stringify(doc))).toString();
      assert.doesNotMatch(out, /c2VjcmV0|plain/);
      assert.match(out, new RegExp(Buffer.from(MASKED_VALUE).toString('base64')));
    }
  });

  it('refuses what it cannot parse', () => {
    assert.throws(() => secretMask('whole').apply(Buffer.from('not json')));
  });
});
