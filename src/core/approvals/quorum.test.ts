import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { quorumMet, unfilledGroups } from './quorum.ts';

const vote = (by: string, groups: string[]) => ({ by, at: 0, groups });

test('each: one person in two groups fills only one of them', () => {
  const review = { groups: ['dba', 'security'], approvals: 2, from: 'each' } as never;
  assert.equal(quorumMet({ review, approvals: [vote('carol', ['dba', 'security'])] }), false);
  assert.deepEqual(unfilledGroups(['dba', 'security'], [vote('carol', ['dba', 'security'])]).length, 1);
  assert.equal(
    quorumMet({ review, approvals: [vote('carol', ['dba', 'security']), vote('alice', ['dba'])] }),
    true,
  );
  assert.equal(quorumMet({ review, approvals: [vote('alice', ['dba']), vote('bob', ['dba'])] }), false);
});

test('any: N distinct votes', () => {
  const review = { groups: ['dba', 'security'], approvals: 2 } as never;
  assert.equal(quorumMet({ review, approvals: [vote('alice', ['dba'])] }), false);
  assert.equal(quorumMet({ review, approvals: [vote('alice', ['dba']), vote('sam', ['security'])] }), true);
});

test('each: the matching finds an assignment whenever one exists (brute force agrees)', () => {
  const groups = ['a', 'b', 'c'];
  fc.assert(
    fc.property(fc.array(fc.subarray(groups), { maxLength: 4 }), (memberships) => {
      const votes = memberships.map((g, i) => vote(`p${i}`, g));
      // Brute force: some injective choice of one group per vote covers all groups.
      const covers = (i: number, used: Set<string>): boolean => {
        if (used.size === groups.length) return true;
        if (i === votes.length) return false;
        if (covers(i + 1, used)) return true;
        for (const g of memberships[i]!)
          if (!used.has(g) && covers(i + 1, new Set([...used, g]))) return true;
        return false;
      };
      assert.equal(unfilledGroups(groups, votes).length === 0, covers(0, new Set()));
    }),
  );
});
