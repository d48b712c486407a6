import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import type { Action, ActionPart, Principal } from '../action.ts';
import { kindOfParts } from '../action.ts';
import { evaluate, globMatch, tableMatch } from './evaluate.ts';
import { parsePolicy } from './load.ts';

const policy = parsePolicy(
  `
connections:
  prod-db: { type: postgres, upstream: { host: h, database: app, user: u } }
  scratch: { type: postgres, upstream: { host: h, database: s, user: u }, default: allow }
rules:
  - { name: reads are free, kinds: [read], effect: allow }
  - name: writes need a DBA
    connections: [prod-db]
    kinds: [write]
    effect: review
    review: { groups: [dba] }
  - name: payments need two
    tables: ["public.payments"]
    kinds: [write]
    effect: review
    review: { groups: [dba, finance], approvals: 2 }
  - { name: no drops, statements: [DropStmt, TruncateStmt], effect: deny, reason: use migrations }
  - { name: ci may write scratch, connections: [scratch], groups: [ci], kinds: [write], effect: allow }
  - { name: agents never grant, principal_kinds: [agent], kinds: [privilege], effect: deny, reason: no grants by agents }
`,
  'test.yaml',
  tmpdir(),
);

const agent: Principal = { name: 'bot', kind: 'agent', groups: ['agents'] };

function action(connection: string, parts: ActionPart[], principal = agent): Action {
  return {
    protocol: 'postgres',
    connection,
    principal,
    sessionId: 's',
    kind: kindOfParts(parts),
    summary: parts.map((p) => p.text).join('; '),
    normalized: parts.map((p) => p.text).join(';'),
    parts,
    attributes: {},
  };
}

const select: ActionPart = { kind: 'read', text: 'SELECT 1', statement: 'SelectStmt' };
const del: ActionPart = {
  kind: 'write',
  text: 'DELETE FROM orders',
  statement: 'DeleteStmt',
  tables: ['orders'],
};
const drop: ActionPart = {
  kind: 'schema',
  text: 'DROP TABLE orders',
  statement: 'DropStmt',
  tables: ['orders'],
};

describe('policy evaluation', () => {
  it('allows reads and reviews writes by rule', () => {
    assert.equal(evaluate(policy, action('prod-db', [select])).effect, 'allow');
    const d = evaluate(policy, action('prod-db', [del]));
    assert.equal(d.effect, 'review');
    assert.equal(d.rule.name, 'writes need a DBA');
  });

  it('deny beats review beats allow, across the statements of one message', () => {
    const d = evaluate(policy, action('prod-db', [select, del, drop]));
    assert.equal(d.effect, 'deny');
    assert.equal(d.effect === 'deny' && d.reason, 'use migrations');
    assert.equal(evaluate(policy, action('prod-db', [select, del])).effect, 'review');
  });

  it('takes the most demanding review when several apply', () => {
    const pay: ActionPart = {
      kind: 'write',
      text: 'UPDATE payments',
      statement: 'UpdateStmt',
      tables: ['payments'],
    };
    const d = evaluate(policy, action('prod-db', [del, pay]));
    assert.equal(d.effect === 'review' && d.review.approvals, 2);
  });

  it('falls to the connection default when nothing matches', () => {
    const schema: ActionPart = { kind: 'schema', text: 'CREATE TABLE x()', statement: 'CreateStmt' };
    const d = evaluate(policy, action('prod-db', [schema]));
    assert.equal(d.effect, 'review');
    assert.equal(d.rule.index, -1);
    assert.deepEqual(d.effect === 'review' && d.review.groups, ['admins']);
    assert.equal(evaluate(policy, action('scratch', [schema])).effect, 'allow');
  });

  it('matches principal groups and kinds', () => {
    const ci: Principal = { name: 'deploy', kind: 'service', groups: ['ci'] };
    assert.equal(evaluate(policy, action('scratch', [del], ci)).effect, 'allow');
    const grant: ActionPart = { kind: 'privilege', text: 'GRANT ALL ON t TO x', statement: 'GrantStmt' };
    assert.equal(evaluate(policy, action('scratch', [grant])).effect, 'deny');
  });

  it('treats an action with nothing classified as unknown, never as a read', () => {
    const d = evaluate(policy, action('prod-db', []));
    assert.notEqual(d.effect, 'allow');
  });

  it('matches globs and table patterns', () => {
    assert.ok(globMatch('prod-*', 'prod-db'));
    assert.ok(!globMatch('prod-*', 'staging-db'));
    assert.ok(globMatch('a.b', 'A.B'));
    assert.ok(!globMatch('a.b', 'axb'));
    assert.ok(tableMatch('orders', 'public.orders'));
    assert.ok(tableMatch('orders', 'orders'));
    assert.ok(tableMatch('public.*', 'orders'));
    assert.ok(tableMatch('*.secrets', 'vault.secrets'));
    assert.ok(!tableMatch('public.orders', 'audit.orders'));
  });
});

describe('rules over protocol fields', () => {
  const fieldPolicy = parsePolicy(
    `
connections:
  db: { type: postgres, upstream: { host: h, database: app, user: u }, default: allow }
rules:
  - { name: no rm, commands: ["rm -rf *"], effect: deny, reason: no recursive deletes }
  - { name: deletes in prod, verbs: [delete], namespaces: [prod], effect: review, review: { groups: [sre] } }
  - name: etc is off limits
    tools: [write_file]
    arguments: { path: "/etc/*" }
    effect: deny
    reason: not under /etc
`,
    'fields.yaml',
    tmpdir(),
  );
  const part = (fields: Record<string, string[]>): ActionPart => ({ kind: 'exec', text: 'x', fields });

  it('matches commands, verbs with namespaces, and tool arguments', () => {
    assert.equal(evaluate(fieldPolicy, action('db', [part({ command: ['rm -rf /var'] })])).effect, 'deny');
    assert.equal(evaluate(fieldPolicy, action('db', [part({ command: ['ls -l'] })])).effect, 'allow');
    assert.equal(
      evaluate(fieldPolicy, action('db', [part({ verb: ['delete'], namespace: ['prod'] })])).effect,
      'review',
    );
    assert.equal(
      evaluate(fieldPolicy, action('db', [part({ verb: ['delete'], namespace: ['dev'] })])).effect,
      'allow',
    );
    const write = (path: string) => part({ tool: ['write_file'], 'argument.path': [path] });
    assert.equal(evaluate(fieldPolicy, action('db', [write('/etc/passwd')])).effect, 'deny');
    assert.equal(evaluate(fieldPolicy, action('db', [write('/tmp/x')])).effect, 'allow');
  });

  it('a rule naming a field the part lacks does not match it', () => {
    assert.equal(evaluate(fieldPolicy, action('db', [select])).effect, 'allow');
  });
});
