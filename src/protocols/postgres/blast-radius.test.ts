import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ActionPart } from '../../core/action.ts';
import { estimable, rowsFromPlan } from './blast-radius.ts';

test('rows come from the input of each ModifyTable node', () => {
  const del = [
    {
      Plan: {
        'Node Type': 'ModifyTable',
        'Plan Rows': 0,
        Plans: [{ 'Node Type': 'Seq Scan', 'Plan Rows': 1234 }],
      },
    },
  ];
  assert.equal(rowsFromPlan(del), 1234);
  const cte = [
    {
      Plan: {
        'Node Type': 'Result',
        'Plan Rows': 1,
        Plans: [
          { 'Node Type': 'ModifyTable', Plans: [{ 'Node Type': 'Index Scan', 'Plan Rows': 3 }] },
          { 'Node Type': 'ModifyTable', Plans: [{ 'Node Type': 'Seq Scan', 'Plan Rows': 40 }] },
        ],
      },
    },
  ];
  assert.equal(rowsFromPlan(cte), 43);
  assert.equal(rowsFromPlan([{ Plan: { 'Node Type': 'Seq Scan', 'Plan Rows': 9 } }]), undefined);
  assert.equal(rowsFromPlan(null), undefined);
  assert.equal(rowsFromPlan([{}]), undefined);
});

test('only plain DML without parameters is planned', () => {
  const w = (text: string, statement = 'DeleteStmt'): ActionPart => ({ kind: 'write', text, statement });
  assert.deepEqual(estimable([w('DELETE FROM t')]), [w('DELETE FROM t')]);
  assert.equal(estimable([w('DELETE FROM t WHERE id = $1')]), undefined);
  assert.equal(estimable([{ kind: 'schema', text: 'DROP TABLE t', statement: 'DropStmt' }]), undefined);
  assert.equal(estimable([w('DO $$ BEGIN END $$', 'DoStmt')]), undefined);
  assert.equal(estimable([{ kind: 'read', text: 'SELECT 1', statement: 'SelectStmt' }]), undefined);
  const mixed = [
    { kind: 'read' as const, text: 'SELECT 1', statement: 'SelectStmt' },
    w('UPDATE t SET a = 1', 'UpdateStmt'),
  ];
  assert.equal(estimable(mixed)?.length, 1);
});
