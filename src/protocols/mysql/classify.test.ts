/** The MySQL classifier against the public evasion corpus, and the lexer's statement split. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MYSQL_EVASIONS } from '../../../test/corpus/mysql-evasions.ts';
import { kindOfParts } from '../../core/action.ts';
import { classifySql } from './classify.ts';
import { lexStatements } from './lexer.ts';

describe('MySQL classification', () => {
  test('the evasion corpus has at least 50 cases', () => {
    assert.ok(MYSQL_EVASIONS.length >= 50, `${MYSQL_EVASIONS.length} cases`);
  });

  for (const c of MYSQL_EVASIONS) {
    test(`${c.kind}: ${c.note} — ${JSON.stringify(c.sql).slice(0, 80)}`, () => {
      const r = classifySql(c.sql, { database: 'app' });
      const kind = r.empty ? 'empty' : kindOfParts(r.parts);
      assert.equal(kind, c.kind, r.parts.map((p) => `${p.kind} ${p.statement}: ${p.why}`).join('\n'));
    });
  }

  test('comments and layout do not change the identity; constants do', () => {
    const a = classifySql('DELETE FROM t WHERE id = 7');
    const b = classifySql('delete /* x */ FROM\n  t   WHERE id=7 -- y');
    assert.notEqual(a.normalized, classifySql('DELETE FROM t WHERE id = 8').normalized);
    assert.equal(a.normalized.replace(/delete/i, 'X'), b.normalized.replace(/delete/i, 'X'));
  });

  test('classification never throws and never calls unparsable text a read', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (sql) => {
        const r = classifySql(sql);
        for (const p of r.parts) if (p.statement === 'unparsed') assert.equal(p.kind, 'unknown');
      }),
      { numRuns: 500 },
    );
  });

  test('the lexer splits the same text the same way whatever it was glued from', () => {
    const piece = fc.constantFrom(
      'SELECT 1',
      "'a;b'",
      '`x;y`',
      '/* ; */',
      '# c\n',
      '-- c\n',
      '/*!50000 DELETE FROM t */',
      ';',
      ' ',
      '"q\\"q"',
      '--1',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const sql = pieces.join('');
        const once = lexStatements(sql);
        const twice = lexStatements(once.map((s) => s.text).join('\n;'));
        assert.equal(twice.length, once.length, sql);
      }),
      { numRuns: 300 },
    );
  });
});
