import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { flatText } from './flat-text.ts';

test('the text is the same text, whatever it was built from', () => {
  fc.assert(
    fc.property(fc.array(fc.string(), { maxLength: 30 }), (pieces) => {
      let built = '';
      for (const p of pieces) built += p;
      assert.equal(flatText(built), pieces.join(''));
    }),
  );
  assert.equal(flatText(''), '');
});
