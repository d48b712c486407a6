import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timelineLines } from './timeline.ts';

const RECORDING = [
  { version: 1, format: 'events-jsonl', timestamp: 1_700_000_000, protocol: 'postgres', principal: 'agent' },
  {
    text: 'SELECT email FROM customers WHERE id <= $1',
    kind: 'read',
    parameters: ['3'],
    decision: 'allow',
    rule: 'reads are free',
    t: 0.0015,
    type: 'statement',
  },
  { tag: 'SELECT 3', rows: 3, ms: 1.25, t: 0.004, type: 'result' },
  {
    text: 'DELETE FROM orders\nWHERE id = 1',
    kind: 'write',
    decision: 'hold',
    rule: 'writes need a DBA',
    request: 7,
    t: 0.01,
    type: 'statement',
  },
  { request: 7, status: 'denied', reason: 'not today', t: 2.5, type: 'decision' },
  { severity: 'ERROR', code: '42501', message: 'denied by Airlock: not today', t: 2.5, type: 'error' },
  { severity: 'NOTICE', code: '00000', message: 'a notice', t: 2.6, type: 'notice' },
  { unexpected: true, t: 3, type: 'something' },
  { t: 3.25, type: 'end' },
]
  .map((e) => JSON.stringify(e))
  .join('\n');

test('an event recording reads as a timeline, one line per event, nothing left out', () => {
  assert.deepEqual(timelineLines(`${RECORDING}\n`), [
    'session began 2023-11-14T22:13:20.000Z protocol="postgres" principal="agent"',
    '+0.002s    statement  allow by "reads are free" [read] SELECT email FROM customers WHERE id <= $1 parameters=["3"]',
    '+0.004s    result     SELECT 3, 3 rows, 1.25 ms',
    '+0.010s    statement  hold by "writes need a DBA" request 7 [write] DELETE FROM orders ⏎ WHERE id = 1',
    '+2.500s    decision   request 7 denied: not today',
    '+2.500s    error      ERROR 42501: denied by Airlock: not today',
    '+2.600s    notice     NOTICE 00000: a notice',
    '+3.000s    something  unexpected=true',
    '+3.250s    end',
  ]);
});

test('a line cut short is shown, not dropped', () => {
  const lines = timelineLines(`${RECORDING.split('\n')[0]}\n{"t":1,"type":"statem`);
  assert.equal(lines.length, 2);
  assert.match(lines[1]!, /unreadable line: \{"t":1,"type":"statem/);
});
