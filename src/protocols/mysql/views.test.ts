/** Which view columns map plainly onto one column, as the server stores view definitions. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { namesIn, parseDefinition } from './views.ts';

test('a plain SELECT list maps each view column to the column it references', () => {
  const p = parseDefinition(
    'select `app`.`customers`.`id` AS `id`,`c`.`card_number` AS `cn`,name AS `Who` from `app`.`customers` `c`',
  );
  assert.deepEqual(
    [...p.plain],
    [
      ['id', 'id'],
      ['cn', 'card_number'],
      ['who', 'name'],
    ],
  );
  assert.ok(p.names.has('customers'));
  assert.deepEqual([...p.columns!], ['id', 'cn', 'who']);
});

test('expressions are not mapped; subqueries, unions and table functions map nothing', () => {
  const expr = parseDefinition(
    "select `c`.`id` AS `id`,concat('#',`c`.`card_number`) AS `tag` from `app`.`customers` `c`",
  );
  assert.deepEqual([...expr.plain], [['id', 'id']]);
  for (const def of [
    'select `c`.`id` AS `id`,(select `d`.`card_number` from `app`.`customers` `d` where `d`.`id` = `c`.`id`) AS `sub` from `app`.`customers` `c`',
    'select `a`.`x` AS `x` from `app`.`a` union select `b`.`y` AS `y` from `app`.`b`',
    "select `jt`.`x` AS `x` from `app`.`t` join json_table(`t`.`doc`,'$[*]' columns (`x` text path '$')) `jt`",
    'values (1)',
    '',
  ]) {
    assert.equal(parseDefinition(def).plain.size, 0, def);
    assert.equal(parseDefinition(def).columns, undefined, def);
  }
});

test('names are every word and quoted identifier, lower case, outside strings and comments', () => {
  assert.deepEqual(namesIn("SELECT `Odd Name`, x1, 'not a name' FROM t, 2024_sales -- none\n"), [
    'select',
    'odd name',
    'x1',
    'from',
    't',
    '2024_sales',
  ]);
  // Text the lexer cannot read is taken whole, strings and all.
  assert.deepEqual(namesIn("SELECT `a``b` FROM t WHERE x = 'y'"), [
    'select',
    'a`b',
    'from',
    't',
    'where',
    'x',
    'y',
  ]);
});
