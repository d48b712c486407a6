import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MYSQL_EVASIONS } from '../../../test/corpus/mysql-evasions.ts';
import { classifySql } from './classify.ts';
import { classifyShaped, shapeOf, shapeReusable } from './shape.ts';

const OPTS = { database: 'app' };

describe('shapeOf', () => {
  test('literals become their class; case, identifiers and other tokens stay exact', () => {
    const a = shapeOf("SELECT id FROM orders WHERE id = 7 AND note = 'x''y'", OPTS);
    const b = shapeOf("SELECT   id FROM orders\nWHERE id = 123456 AND note = 'other' -- c", OPTS);
    assert.ok(a && b);
    assert.equal(a.key, b.key);
    assert.notEqual(a.key, shapeOf("SELECT id FROM Orders WHERE id = 7 AND note = 'x'", OPTS)?.key);
    assert.notEqual(a.key, shapeOf("select id FROM orders WHERE id = 7 AND note = 'x'", OPTS)?.key);
    assert.notEqual(a.key, shapeOf("SELECT id FROM orders WHERE id = 7 AND note = ''", OPTS)?.key);
    assert.notEqual(a.key, shapeOf("SELECT id FROM orders WHERE id = 0 AND note = 'x'", OPTS)?.key);
    assert.notEqual(a.key, shapeOf("SELECT id FROM orders WHERE id = 7 AND note = 'x'", {})?.key);
  });

  test('gives up on what it does not reuse', () => {
    for (const sql of [
      'SELECT 1; SELECT 2',
      '/*!50000 SELECT 1 */',
      'SELECT 1 /*! , LOAD_FILE("/etc/passwd") */',
      'SHOW TABLES',
      'SET @a = 1',
      'EXPLAIN SELECT 1',
      "SELECT 'unterminated",
      'SELECT 1 /* open',
      'SELECT "a\0b"',
      '',
      '   ',
    ])
      assert.equal(shapeOf(sql, OPTS), undefined, sql);
    // Numbers other than plain integers stay in the key as written.
    assert.match(shapeOf('SELECT 0x1f, 1e5, 007, 12345678901', OPTS)!.key, /0x1f.*1e5.*007.*12345678901/s);
  });
});

const table = fc.constantFrom('orders', 'Orders', 'app.orders', '`orders`', 'customers', 'audit_notes', 'o');
const column = fc.constantFrom('id', 'total', 'ID', '`note`', 'customer', 'o.id');
const str = fc
  .string({ maxLength: 10 })
  .map((s) => `'${s.replace(/[\\'\0]/g, '').replace(/[^\x20-\x7e]/g, '')}'`);
const literal = fc.oneof(
  fc.integer({ min: 0, max: 999_999_999 }).map(String),
  fc.integer({ min: 0, max: 99_999 }).map((n) => `${n}.${n % 97}`),
  str,
  fc.constant("''"),
  fc.constant("'it''s'"),
  fc.constant("'a\\'b'"),
  fc.constant('0x1f'),
  fc.constant('1e3'),
  fc.constant('NULL'),
);
const fn = fc.constantFrom(
  '',
  'UPPER',
  'LOAD_FILE',
  'SLEEP',
  'my_func',
  'GET_LOCK',
  'CONCAT',
  'NEXTVAL',
  'MD5',
);
const call = fc.tuple(fn, literal).map(([f, v]) => (f === '' ? v : `${f}(${v})`));
const ws = fc.constantFrom(' ', '  ', '\n', '\t', ' /* c */ ', ' -- c\n', ' # c\n');
const statement = fc.oneof(
  fc.tuple(column, table, column, call).map(([c, t, w, v]) => `SELECT ${c} FROM ${t} WHERE ${w} = ${v}`),
  fc.tuple(column, call, table, literal).map(([c, v, t, l]) => `SELECT ${c}, ${v} FROM ${t} LIMIT ${l}`),
  fc.tuple(table, call).map(([t, v]) => `SELECT * FROM ${t} WHERE id = ${v} FOR UPDATE`),
  fc.tuple(table, call).map(([t, v]) => `SELECT * FROM ${t} WHERE id = ${v} INTO OUTFILE '/tmp/x'`),
  fc.tuple(table, call, literal).map(([t, v, w]) => `UPDATE ${t} SET total = total + ${v} WHERE id = ${w}`),
  fc.tuple(table, call, literal).map(([t, v, w]) => `INSERT INTO ${t} (id, note) VALUES (${v}, ${w})`),
  fc
    .tuple(table, literal, call)
    .map(
      ([t, v, w]) => `INSERT INTO ${t} (id, note) VALUES (${v}, ${w}) ON DUPLICATE KEY UPDATE note = ${w}`,
    ),
  fc.tuple(table, call, literal).map(([t, v, w]) => `REPLACE INTO ${t} VALUES (${v}, ${w})`),
  fc.tuple(table, call).map(([t, v]) => `DELETE FROM ${t} WHERE id IN (${v}, ${v})`),
  fc.tuple(table, literal).map(([t, v]) => `SELECT (SELECT MAX(id) FROM ${t}) + ${v}`),
  fc.tuple(literal).map(([v]) => `SELECT ${v} INTO @x`),
  fc.tuple(table, literal).map(([t, v]) => `DELETE ${t} FROM ${t} JOIN customers c ON c.id = ${v}`),
);
const text = fc
  .tuple(statement, ws, fc.boolean(), fc.boolean())
  .map(([s, w, semi, lead]) => `${lead ? w : ''}${s.replace(/ /g, w)}${semi ? ';' : ''}`);

describe('the shape cache never changes a classification', () => {
  test('cached results equal fresh ones, for statements of every shape (property)', () => {
    fc.assert(
      fc.property(fc.array(text, { minLength: 2, maxLength: 6 }), (texts) => {
        for (const sql of texts) classifyShaped(sql, OPTS);
        for (const sql of texts) assert.deepEqual(classifyShaped(sql, OPTS), classifySql(sql, OPTS), sql);
      }),
      { numRuns: 300 },
    );
  });

  test('statements that classify differently never share an entry (property)', () => {
    let shared = 0;
    // b is a with other numbers and other string contents: mostly the same shape.
    const other = (sql: string, salt: number) =>
      sql.replace(/\b[1-9][0-9]*\b/g, (n) => String(Number(n) + salt)).replace(/'([a-z])/g, "'$1z");
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 1000 }), fc.boolean(), (a, salt, swap) => {
        const b = other(a, salt);
        const [x, y] = swap ? [b, a] : [a, b];
        classifyShaped(x, OPTS);
        const fromCache = classifyShaped(y, OPTS);
        const kx = shapeOf(x, OPTS)?.key;
        if (kx === undefined || kx !== shapeOf(y, OPTS)?.key || !shapeReusable(x, OPTS)) return;
        shared++;
        const fx = classifySql(x, OPTS).parts.map(({ text: _t, ...f }) => f);
        const fy = classifySql(y, OPTS).parts.map(({ text: _t, ...f }) => f);
        assert.deepEqual(fx, fy, `${x} / ${y}`);
        assert.deepEqual(fromCache, classifySql(y, OPTS), y);
      }),
      { numRuns: 500 },
    );
    assert.ok(shared > 100, `only ${shared} pairs shared a reusable entry`);
  });

  test('the same statement with other literal values of one class shares the entry', () => {
    const a = 'SELECT id, customer, total FROM orders WHERE id = 7';
    classifyShaped(a, OPTS);
    assert.ok(shapeReusable(a, OPTS));
    const b = classifyShaped('SELECT id, customer, total FROM orders WHERE id = 8', OPTS);
    assert.equal(b.parts[0]!.text, 'SELECT id, customer, total FROM orders WHERE id = 8');
    assert.equal(
      b.normalized,
      'SELECT id , customer , total FROM orders WHERE id = 8',
      'the identity keeps values',
    );
    assert.deepEqual(b, classifySql('SELECT id, customer, total FROM orders WHERE id = 8', OPTS));
  });

  test('a shape the parser cannot read is never reused (its message quotes the text)', () => {
    const a = "SELECT * FROM orders LIMIT 'a'";
    classifyShaped(a, OPTS);
    assert.equal(shapeReusable(a, OPTS), false);
    const b = "SELECT * FROM orders LIMIT 'b'";
    assert.equal(classifyShaped(b, OPTS).parts[0]!.kind, 'unknown');
    assert.deepEqual(classifyShaped(b, OPTS), classifySql(b, OPTS));
  });

  test('the evasion corpus classifies the same with a warm cache', () => {
    for (const c of MYSQL_EVASIONS) classifyShaped(c.sql, OPTS);
    for (const c of MYSQL_EVASIONS)
      assert.deepEqual(classifyShaped(c.sql, OPTS), classifySql(c.sql, OPTS), c.sql);
  });
});

describe('the exact-text cache', () => {
  test('a statement no template serves is classified once per text and database, for every session', () => {
    for (const sql of [
      'BEGIN',
      'COMMIT',
      "SET NAMES 'utf8mb4'",
      'CREATE TABLE t_cache (id int)',
      'USE other',
    ]) {
      const first = classifyShaped(sql, OPTS);
      assert.equal(classifyShaped(sql, OPTS), first, sql);
      assert.deepEqual(first, classifySql(sql, OPTS), sql);
    }
    // The database is part of the key: USE of the connection's own database is not admin.
    assert.notEqual(classifyShaped('USE other', OPTS).parts[0]!.kind, 'read');
    assert.deepEqual(
      classifyShaped('USE other', { database: 'other' }),
      classifySql('USE other', { database: 'other' }),
    );
    assert.notDeepEqual(
      classifyShaped('USE other', { database: 'other' }),
      classifyShaped('USE other', OPTS),
    );
  });

  test('statements with placeholders instead of values are kept per text', () => {
    const first = classifyShaped('SELECT k FROM sbtest1 WHERE id = ?', OPTS);
    assert.equal(classifyShaped('SELECT k FROM sbtest1 WHERE id = ?', OPTS), first);
    assert.deepEqual(first, classifySql('SELECT k FROM sbtest1 WHERE id = ?', OPTS));
  });

  test('statements with literal values are rebuilt from their template each time, not kept per text', () => {
    classifyShaped('SELECT k FROM sbtest1 WHERE id = 1', OPTS);
    const a = classifyShaped('SELECT k FROM sbtest1 WHERE id = 4242', OPTS);
    const b = classifyShaped('SELECT k FROM sbtest1 WHERE id = 4242', OPTS);
    assert.notEqual(a, b);
    assert.deepEqual(a, b);
    assert.deepEqual(a, classifySql('SELECT k FROM sbtest1 WHERE id = 4242', OPTS));
  });
});
