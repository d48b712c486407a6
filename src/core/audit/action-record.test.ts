import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Action } from '../action.ts';
import type { Decision } from '../policy/evaluate.ts';
import { actionRecord } from './action-record.ts';
import { canonical } from './canonical.ts';

const text = fc.string({ unit: 'grapheme', maxLength: 40 });
const anyText = fc.oneof(text, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 }));

test('the hand-written record text is exactly the canonical JSON of its data', () => {
  fc.assert(
    fc.property(
      fc.record({
        connection: anyText,
        name: anyText,
        kind: fc.constantFrom('human', 'agent', 'service'),
        groups: fc.array(anyText, { maxLength: 4 }),
        protocol: anyText,
        sessionId: anyText,
        source: fc.option(anyText, { nil: undefined }),
        actionKind: fc.constantFrom('read', 'write', 'ddl', 'unknown'),
        summary: anyText,
        fingerprint: anyText,
        rule: anyText,
        effect: fc.constantFrom('allow', 'deny', 'review'),
        why: anyText,
      }),
      (v) => {
        const principal = { name: v.name, kind: v.kind, groups: v.groups } as Action['principal'];
        const action = {
          protocol: v.protocol,
          connection: v.connection,
          principal,
          sessionId: v.sessionId,
          source: v.source,
          kind: v.actionKind,
          summary: v.summary,
          normalized: v.summary,
          parts: [],
          attributes: {},
        } as unknown as Action;
        const decision = { effect: v.effect, rule: { name: v.rule }, why: v.why } as unknown as Decision;
        const first = actionRecord(action, v.fingerprint, decision);
        assert.equal(first.json, canonical(first.data));
        // The second call takes the principal's cached text: still exact.
        const second = actionRecord(action, v.fingerprint, decision);
        assert.equal(second.json, canonical(second.data));
      },
    ),
    { numRuns: 2000 },
  );
});

test('a principal whose groups change is serialized again', () => {
  const principal = { name: 'ana', kind: 'human', groups: ['a'] } as {
    name: string;
    kind: 'human';
    groups: string[];
  };
  const action = {
    protocol: 'postgres',
    connection: 'app',
    principal,
    sessionId: 's',
    kind: 'read',
    summary: 'select 1',
    normalized: 'select 1',
    parts: [],
    attributes: {},
  } as unknown as Action;
  const decision = { effect: 'allow', rule: { name: 'r' }, why: 'w' } as unknown as Decision;
  assert.match(actionRecord(action, 'f', decision).json, /"groups":\["a"\]/);
  principal.groups.push('b');
  const after = actionRecord(action, 'f', decision);
  assert.equal(after.json, canonical(after.data));
  assert.match(after.json, /"groups":\["a","b"\]/);
});
