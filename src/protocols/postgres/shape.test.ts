import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { POSTGRES_EVASIONS } from '../../../test/corpus/postgres-evasions.ts';
import { classifySql, classifySqlUncached, initClassifier } from './classify.ts';
import { shapeOf } from './shape.ts';

before(async () => {
  await initClassifier();
});

describe('shapeOf', () => {
  test('folds case and whitespace, replaces literals by class', () => {
    const a = shapeOf("SELECT * FROM t WHERE id = 7 AND name = 'x''y' LIMIT 0");
    const b = shapeOf("select *   from T\nwhere ID = 12345 and NAME = 'other' limit 0;");
    assert.ok(a && b);
    assert.notEqual(a.key, b.key, 'the semicolon is part of the shape');
    assert.equal(a.key, 'select * from t where id = ?int and name = ?str limit ?zero');
    assert.deepEqual(
      a.literals.map((l) => [l.cls, l.value]),
      [
        ['int', '7'],
        ['str', "x'y"],
        ['zero', '0'],
      ],
    );
    assert.equal(shapeOf("SELECT 2147483648, 1.50, $1, ''")?.key, 'select ?big, ?dec, $1, ?empty');
  });

  test('gives up on everything it does not read exactly as PostgreSQL does', () => {
    for (const sql of [
      'SELECT 1 -- c',
      'SELECT /* c */ 1',
      'SELECT "Quoted"',
      "SELECT E'a\\nb'",
      "SELECT U&'d\\0061t'",
      "SELECT B'101'",
      "SELECT X'ff'",
      "SELECT N'x'",
      'SELECT $$x$$',
      'SELECT $a$x$a$',
      "SELECT 'a'\n'b'",
      "SELECT 'a' 'b'",
      'SELECT 1e5',
      'SELECT 0x1f',
      'SELECT 1_000',
      'SELECT 123abc',
      'SELECT .5',
      'SELECT 1.',
      'SELECT 007',
      "SELECT 'a\\'",
      "SELECT 'ünï'",
      'SELECT 1; SELECT 2',
      'SELECT 1;;',
      "SELECT 'unterminated",
      'SELECT a$b',
      '',
      '   ',
    ])
      assert.equal(shapeOf(sql), undefined, sql);
  });
});

const ident = fc.constantFrom('t', 'orders', 'public.customers', 'pgbench_accounts', 'T', 'Orders');
const column = fc.constantFrom('id', 'a', 'abalance', 'ID', 'name');
const literal = fc.oneof(
  fc.integer({ min: 0, max: 2147483647 }).map(String),
  fc.bigInt({ min: 2147483648n, max: 10n ** 30n }).map(String),
  fc.tuple(fc.nat(99999), fc.nat(999)).map(([a, b]) => `${a}.${b}`),
  fc.string({ maxLength: 12 }).map((s) => `'${s.replace(/[^\x20-\x7e]|\\/g, '').replace(/'/g, "''")}'`),
  fc.constant("''"),
  fc.constant('0'),
);
const ws = fc.constantFrom(' ', '  ', '\n', '\t', ' \n ');
const statement = fc.oneof(
  fc.tuple(column, ident, column, literal).map(([c, t, w, v]) => `SELECT ${c} FROM ${t} WHERE ${w} = ${v}`),
  fc.tuple(column, ident, literal, literal).map(([c, t, v, l]) => `select ${c}, ${v} from ${t} limit ${l}`),
  fc.tuple(ident, literal, literal).map(([t, v, w]) => `UPDATE ${t} SET a = a + ${v} WHERE id = -${w}`),
  fc.tuple(ident, literal, literal).map(([t, v, w]) => `INSERT INTO ${t} (id, name) VALUES (${v}, ${w})`),
  fc.tuple(ident, literal).map(([t, v]) => `DELETE FROM ${t} WHERE id IN (${v}, ${v})`),
  fc.tuple(literal, literal).map(([a, b]) => `SELECT ${a}::int8 + ${b}, ${a} || ${b}`),
  fc.tuple(literal).map(([a]) => `SELECT * FROM t WHERE x = ${a} FOR UPDATE`),
  fc.tuple(literal).map(([a]) => `SELECT nextval('s'), ${a}`),
  fc.tuple(literal).map(([a]) => `SELECT evil(${a})`),
  fc.tuple(literal, literal).map(([a, b]) => `SELECT ${a}::numeric(10, 2), interval ${b}`),
  fc.tuple(literal).map(([a]) => `SELECT 1::float(${a})`),
  fc.tuple(literal).map(([a]) => `EXPLAIN (ANALYZE ${a}) DELETE FROM t`),
  fc.tuple(literal).map(([a]) => `SET search_path = ${a}, pg_catalog`),
  fc.tuple(literal).map(([a]) => `SELECT set_config('role', ${a}, false)`),
  fc.tuple(literal).map(([a]) => `WITH x AS (DELETE FROM t WHERE id = ${a} RETURNING *) SELECT * FROM x`),
);
const text = fc
  .tuple(statement, ws, fc.boolean(), fc.boolean())
  .map(([s, w, semi, lead]) => `${lead ? w : ''}${s.replace(/ /g, w)}${semi ? ';' : ''}`);

describe('the shape cache never changes a classification', () => {
  test('cached results equal fresh ones, for statements of every shape (property)', () => {
    fc.assert(
      fc.property(fc.array(text, { minLength: 2, maxLength: 6 }), (texts) => {
        // The first texts fill the cache; every text must then classify exactly as fresh.
        for (const sql of texts) classifySql(sql);
        for (const sql of texts) assert.deepEqual(classifySql(sql), classifySqlUncached(sql), sql);
      }),
      { numRuns: 400 },
    );
  });

  test('the evasion corpus classifies the same with a warm cache', () => {
    for (const c of POSTGRES_EVASIONS) classifySql(c.sql);
    for (const c of POSTGRES_EVASIONS)
      assert.deepEqual(classifySql(c.sql), classifySqlUncached(c.sql), c.sql);
  });

  test('two texts of one shape with different kinds never share an entry', () => {
    // Constants decide these statements' kinds, so their shapes are never reused.
    const pairs = [
      ["EXPLAIN (ANALYZE 'off') DELETE FROM t", "EXPLAIN (ANALYZE 'on') DELETE FROM t"],
      ["SET default_transaction_read_only = 'on'", "SET default_transaction_read_only = 'off'"],
      ["SET search_path = 'a', 'pg_catalog'", "SET search_path = 'pg_catalog', 'a'"],
    ];
    for (const [a, b] of pairs) {
      assert.equal(shapeOf(a!)?.key, shapeOf(b!)?.key, 'same shape');
      classifySql(a!);
      assert.notEqual(classifySql(a!).parts[0]!.kind, classifySql(b!).parts[0]!.kind, `${a} / ${b}`);
      assert.deepEqual(classifySql(b!), classifySqlUncached(b!));
    }
  });
});
