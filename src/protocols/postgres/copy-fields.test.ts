import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeField, joinRow, splitRow } from './copy-fields.ts';
import type { CopyFormat } from './lineage.ts';

const TEXT: CopyFormat = {
  format: 'text',
  delimiter: '\t',
  null: '\\N',
  quote: '"',
  escape: '"',
  header: false,
};
const CSV: CopyFormat = { format: 'csv', delimiter: ',', null: '', quote: '"', escape: '"', header: false };
const ODD_CSV: CopyFormat = {
  format: 'csv',
  delimiter: ';',
  null: 'NULL',
  quote: "'",
  escape: '\\',
  header: true,
};

test('rows as PostgreSQL writes them split into raw fields and values', () => {
  assert.deepEqual(splitRow('1\ta\\tb\\\\c\\nd\t\\N\t\\101\\x41', TEXT), [
    { raw: '1', value: '1' },
    { raw: 'a\\tb\\\\c\\nd', value: 'a\tb\\c\nd' },
    { raw: '\\N', value: null },
    { raw: '\\101\\x41', value: 'AA' },
  ]);
  assert.deepEqual(splitRow('1,"a ""q"", b",,""', CSV), [
    { raw: '1', value: '1' },
    { raw: '"a ""q"", b"', value: 'a "q", b' },
    { raw: '', value: null },
    { raw: '""', value: '' },
  ]);
  assert.throws(() => splitRow('1,"open', CSV));
});

test('any values encoded, joined and split come back the same (text, CSV, odd CSV options)', () => {
  for (const f of [TEXT, CSV, ODD_CSV]) {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({
            unit: fc.constantFrom('a', 'é', '\t', '\n', '\r', '\\', '"', "'", ',', ';', ' ', 'N', 'x', '1'),
          }),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        (values) => {
          const line = joinRow(
            values.map((v) => encodeField(v, f)),
            f,
          );
          assert.deepEqual(
            splitRow(line, f).map((x) => x.value),
            values,
          );
        },
      ),
      { numRuns: 500 },
    );
  }
});
