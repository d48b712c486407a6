import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import { SessionMasker } from '../../core/masking/masker.ts';
import type { RelationInfo } from './catalog.ts';
import { initClassifier } from './classify.ts';
import { ColumnMasks } from './column-masks.ts';
import { lineageOf } from './lineage.ts';
import { shapeOf } from './shape.ts';

before(() => initClassifier());

const masker = new SessionMasker([
  {
    index: 0,
    columns: ['public.users.email'],
    detectors: [],
    strategy: 'redact',
    exempt: { principals: [], groups: [] },
  } as unknown as ConstructorParameters<typeof SessionMasker>[0][number],
]);

const RELATIONS: Record<string, RelationInfo[]> = {
  users: [{ schema: 'public', table: 'users', kind: 'r', columns: ['id', 'email', 'name'] }],
  people: [
    {
      schema: 'public',
      table: 'people',
      kind: 'v',
      columns: ['id', 'contact'],
      definition: ' SELECT users.id, users.email AS contact FROM users;',
    },
  ],
  orders: [{ schema: 'public', table: 'orders', kind: 'r', columns: ['id', 'email'] }],
};

function masks(sql: string, names?: string[]): boolean[] {
  const l = lineageOf(sql)![0]!;
  const cm = new ColumnMasks(masker, { relations: (_s, t) => RELATIONS[t] ?? [] });
  const n = names?.length ?? l.items?.length ?? 0;
  return cm.outputs(l.items, n, names).map((s) => s !== undefined);
}

test('expressions over a masked column are masked; others are not', () => {
  assert.deepEqual(masks('SELECT lower(email), id, name || id FROM users'), [true, false, false]);
  assert.deepEqual(masks('SELECT lower(email) FROM orders'), [false], 'another table’s column of that name');
  assert.deepEqual(masks('SELECT o.email, u.id FROM orders o JOIN users u USING (id)'), [false, false]);
  assert.deepEqual(masks('SELECT email FROM orders o, users u'), [true], 'ambiguous: either table');
});

test('through CTEs, subqueries, set operations, whole rows, views and functions', () => {
  assert.deepEqual(masks('WITH c(a, b) AS (SELECT id, email FROM users) SELECT b, a FROM c'), [true, false]);
  assert.deepEqual(masks('SELECT * FROM (SELECT upper(email) AS e, id FROM users) s', ['e', 'id']), [
    true,
    false,
  ]);
  assert.deepEqual(masks("SELECT 'x', 1 UNION SELECT email, id FROM users"), [true, false]);
  assert.deepEqual(masks('SELECT row_to_json(u) FROM users u'), [true]);
  assert.deepEqual(masks('SELECT contact, id FROM people'), [true, false]);
  assert.deepEqual(masks('SELECT my_function(id) FROM users'), [true], 'a function Airlock cannot see into');
  assert.deepEqual(masks('SELECT now(), length(name) FROM users'), [false, false]);
  // `*` of a table, matched by the names the target gives the columns.
  assert.deepEqual(masks('SELECT *, 1 AS one FROM users', ['id', 'email', 'name', 'one']), [
    false,
    true,
    false,
    false,
  ]);
});

test('COPY: table columns in catalog order, a column list, or the query; format options read', () => {
  const t = lineageOf("COPY users TO STDOUT (FORMAT csv, HEADER, DELIMITER ';')")![0]!;
  assert.equal(t.copy?.format, 'csv');
  assert.equal(t.copy?.delimiter, ';');
  assert.equal(t.copy?.header, true);
  const cm = new ColumnMasks(masker, { relations: (_s, tb) => RELATIONS[tb] ?? [] });
  assert.deepEqual(
    cm.outputs(t.items, 3).map((s) => s !== undefined),
    [false, true, false],
  );
  const l = lineageOf('COPY users (name, email) TO STDOUT')![0]!;
  assert.deepEqual(
    cm.outputs(l.items, 2).map((s) => s !== undefined),
    [false, true],
  );
  assert.equal(lineageOf('COPY (SELECT 1) TO STDOUT')![0]!.copy?.format, 'text');
  // When in doubt there is no header: a data row is never passed over as one.
  for (const [sql, header] of [
    ['COPY users TO STDOUT WITH CSV HEADER', true],
    ['COPY users TO STDOUT (HEADER 0)', false],
    ['COPY users TO STDOUT (HEADER off)', false],
    ['COPY users TO STDOUT (HEADER match)', false],
    ["COPY users TO STDOUT (FORMAT csv, HEADER 'yes')", true],
  ] as const)
    assert.equal(lineageOf(sql)![0]!.copy?.header, header, sql);
});

test('statements of one shape have the same lineage (the relay shares it between them), COPY aside', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1e9 }),
      fc.string({ unit: fc.constantFrom('a', 'b', ' ', '%', '_') }),
      fc.integer({ min: 0, max: 1e9 }),
      fc.string({ unit: fc.constantFrom('a', 'b', ' ', '%', '_') }),
      (n1, s1, n2, s2) => {
        const sql = (n: number, s: string) =>
          `SELECT lower(email), ${n} AS k, '${s}' || name FROM users u WHERE id = ${n} AND name LIKE '${s}'`;
        const a = shapeOf(sql(n1, s1));
        const b = shapeOf(sql(n2, s2));
        if (a?.key === b?.key) assert.deepEqual(lineageOf(sql(n1, s1)), lineageOf(sql(n2, s2)));
      },
    ),
    { numRuns: 200 },
  );
  assert.notDeepEqual(
    lineageOf("COPY users TO STDOUT (DELIMITER ';')"),
    lineageOf("COPY users TO STDOUT (DELIMITER '|')"),
  );
});

test('COPY says what it copies: a table and its column list, or the text of its query', () => {
  assert.deepEqual(lineageOf('COPY s.users (name, email) TO STDOUT (FORMAT binary)')![0]!.copy?.source, {
    t: 'table',
    schema: 's',
    table: 'users',
    columns: ['name', 'email'],
  });
  assert.deepEqual(lineageOf('COPY users TO STDOUT')![0]!.copy?.source, {
    t: 'table',
    schema: undefined,
    table: 'users',
    columns: undefined,
  });
  // Parentheses inside strings and quoted names, text before the statement, characters over a byte.
  const sql = `SELECT 1; /* é */ COPY ( SELECT $$)$$, 'é)' AS "a)" FROM (SELECT 1) t ) TO STDOUT (FORMAT binary)`;
  assert.deepEqual(lineageOf(sql)![1]!.copy?.source, {
    t: 'query',
    text: ` SELECT $$)$$, 'é)' AS "a)" FROM (SELECT 1) t `,
  });
});
