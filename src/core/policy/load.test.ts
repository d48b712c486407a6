import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { hashToken } from '../identity/tokens.ts';
import { loadPolicyFile, PolicyError, parsePolicy } from './load.ts';

const GOOD = `
public_url: http://gw.example.com:7070/
identities:
  tokens:
    - { name: bot, token: "\${env:AIRLOCK_TEST_BOT}", kind: agent, groups: [agents] }
    - { name: alice, token: "\${file:alice.token}", kind: human, groups: [dba] }
connections:
  prod-db:
    type: postgres
    upstream: { host: 10.0.0.5, database: app, user: app_rw, password: "\${env:AIRLOCK_TEST_PW}" }
rules:
  - name: reads are free
    kinds: [read]
    effect: allow
  - name: writes need a DBA
    connections: [prod-db]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 2, expires: 10m, hold: retry }
  - name: no drops
    statements: [DropStmt]
    effect: deny
    reason: schema drops go through the migration pipeline
`;

function problemAt(text: string): { line: number; column: number; message: string } {
  try {
    parsePolicy(text, 'p.yaml', tmpdir());
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    const p = err.problems[0]!;
    return { line: p.line, column: p.column, message: p.message };
  }
  assert.fail('expected a policy error');
}

describe('policy loader', () => {
  it('loads a full file, resolves secrets lazily and keeps only token hashes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-policy-'));
    writeFileSync(join(dir, 'alice.token'), 'alice-secret\n');
    writeFileSync(join(dir, 'airlock.yaml'), GOOD);
    process.env.AIRLOCK_TEST_BOT = 'bot-secret';
    process.env.AIRLOCK_TEST_PW = 'db-password';
    const policy = loadPolicyFile(join(dir, 'airlock.yaml'));
    assert.equal(policy.publicUrl, 'http://gw.example.com:7070');
    assert.deepEqual(
      policy.tokens.map((t) => [t.name, t.hash]),
      [
        ['bot', hashToken('bot-secret')],
        ['alice', hashToken('alice-secret')],
      ],
    );
    const conn = policy.connections.get('prod-db')!;
    assert.equal(conn.type, 'postgres');
    if (conn.type !== 'postgres') return;
    assert.equal(conn.upstream.port, 5432);
    assert.equal(conn.default, 'review');
    assert.equal(conn.upstream.password!.reveal(), 'db-password');
    // The credential never shows up when the policy is printed or serialised.
    assert.doesNotMatch(inspect(policy, { depth: 10 }), /db-password|bot-secret|alice-secret/);
    assert.doesNotMatch(JSON.stringify({ ...policy, connections: [...policy.connections] }), /db-password/);
    assert.equal(policy.rules[1]!.review!.approvals, 2);
    assert.equal(policy.rules[1]!.review!.expires, 600_000);
    assert.equal(policy.rules[1]!.review!.hold, 'retry');
  });

  it('names file, line and column for a misspelt key', () => {
    const at = problemAt(
      'connections:\n  db:\n    type: postgres\n    upstream: { host: h, database: d, user: u }\n    defualt: allow\n',
    );
    assert.deepEqual([at.line, at.column], [5, 5]);
    assert.match(at.message, /unknown key "defualt"/);
  });

  it('names the position of a bad enum value and says what was expected', () => {
    const at = problemAt('rules:\n  - name: r\n    kinds: [reed]\n    effect: allow\n');
    assert.deepEqual([at.line, at.column], [3, 13]);
    assert.match(at.message, /read/);
  });

  it('requires a reason on deny rules and known connections', () => {
    assert.match(problemAt('rules:\n  - { name: r, effect: deny }\n').message, /reason/);
    assert.match(
      problemAt('rules:\n  - { name: r, effect: allow, connections: [nope] }\n').message,
      /unknown connection "nope"/,
    );
  });

  it('reports YAML syntax errors with a position', () => {
    const at = problemAt('rules:\n  - name: [unclosed\n');
    assert.ok(at.line >= 2);
  });

  it('does not echo an unresolved secret value and says which variable is missing', () => {
    delete process.env.AIRLOCK_TEST_MISSING;
    const at = problemAt(
      'identities:\n  tokens:\n    - { name: x, token: "${env:AIRLOCK_TEST_MISSING}", kind: agent }\n',
    );
    assert.match(at.message, /AIRLOCK_TEST_MISSING is not set/);
    assert.equal(at.line, 3);
  });

  it('never throws anything but a PolicyError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parsePolicy(text, 'fuzz.yaml', tmpdir());
        } catch (err) {
          assert.ok(err instanceof PolicyError, `unexpected ${String(err)}`);
          for (const p of err.problems) assert.ok(p.line >= 1 && p.column >= 1);
        }
      }),
      { numRuns: 300 },
    );
  });
});
