import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Principal } from '../../core/action.ts';
import type { McpConnection } from '../../core/policy/connections/mcp.ts';
import { evaluate } from '../../core/policy/evaluate.ts';
import { parsePolicy } from '../../core/policy/load.ts';
import { argumentFields, canonicalJson, type SqlClassifier, toolCallAction } from './tool-action.ts';
import { mayEverCall } from './visibility.ts';

const policy = parsePolicy(
  `
connections:
  files:
    type: mcp
    upstream: { url: "http://127.0.0.1:9/mcp", token: "\${env:FILES_TOKEN}" }
    tools:
      read_file: read
      "list_*": read
      write_file: write
      execute_sql: { sql: query }
      audited_sql: { kind: write, sql: query }
  trusting:
    type: mcp
    upstream: { command: node, args: [server.js], env: { API_KEY: "\${env:API_KEY}" } }
    annotations: trust
  locked:
    type: mcp
    upstream: { url: "http://127.0.0.1:9/mcp" }
    default: deny
    tools: { read_file: read }
rules:
  - { name: reads are free, kinds: [read], effect: allow }
  - name: nothing under /etc
    tools: [write_file]
    arguments: { path: "/etc/*" }
    effect: deny
    reason: /etc is managed elsewhere
  - name: nested mode
    tools: [write_file]
    arguments: { options.mode: "0777" }
    effect: deny
    reason: no world-writable files
  - { name: no shell for agents, tools: [run_shell], principal_kinds: [agent], effect: deny, reason: no shells }
  - { name: secrets by argument, tools: [get_secret], arguments: { name: "prod-*" }, effect: deny, reason: not prod }
  - { name: writes reviewed, kinds: [write], effect: review, review: { groups: [dba] } }
`,
  'test.yaml',
  tmpdir(),
);

const agent: Principal = { name: 'bot', kind: 'agent', groups: ['agents'] };
const human: Principal = { name: 'ada', kind: 'human', groups: ['dba'] };

function conn(name: string): McpConnection {
  const c = policy.connections.get(name);
  assert.equal(c?.type, 'mcp');
  return c as McpConnection;
}

function call(connection: string, name: string, args: Record<string, unknown>, extra: object = {}) {
  return toolCallAction(
    { name, arguments: args },
    { connection: conn(connection), principal: agent, sessionId: 's1', ...extra },
  );
}

/** A stand-in classifier: the first word decides, as the PostgreSQL classifier would for these. */
const classify: SqlClassifier = (sql) => ({
  normalized: sql,
  parts: sql
    .split(';')
    .filter((s) => s.trim())
    .map((s) => {
      const verb = s.trim().split(/\s+/)[0]!.toUpperCase();
      return verb === 'SELECT'
        ? { kind: 'read' as const, text: s, statement: 'SelectStmt' }
        : { kind: 'write' as const, text: s, statement: `${verb[0]}${verb.slice(1).toLowerCase()}Stmt` };
    }),
});

describe('MCP connections in the policy file', () => {
  it('resolves HTTP and stdio upstreams with secrets by reference', () => {
    const files = conn('files');
    assert.equal(files.upstream.transport, 'http');
    if (files.upstream.transport === 'http')
      assert.equal(String(files.upstream.token), '[secret env:FILES_TOKEN]');
    const trusting = conn('trusting');
    assert.equal(trusting.upstream.transport, 'stdio');
    if (trusting.upstream.transport === 'stdio')
      assert.equal(String(trusting.upstream.env.get('API_KEY')), '[secret env:API_KEY]');
    assert.equal(trusting.trustAnnotations, true);
    assert.equal(files.trustAnnotations, false);
  });

  it('refuses an upstream that is neither a URL nor a command', () => {
    assert.throws(
      () => parsePolicy('connections:\n  x: { type: mcp, upstream: { host: h } }\n', 'bad.yaml', tmpdir()),
      /bad\.yaml:2/,
    );
  });
});

describe('tools/call as an Action', () => {
  it('carries the tool and its arguments as rule fields, nested ones dotted', () => {
    const a = call('files', 'write_file', {
      path: '/srv/a',
      options: { mode: '0644', tags: ['x', 'y'] },
      n: 3,
    });
    assert.deepEqual(a.parts[0]?.fields, {
      tool: ['write_file'],
      'argument.path': ['/srv/a'],
      'argument.options.mode': ['0644'],
      'argument.options.tags': ['x', 'y'],
      'argument.n': ['3'],
    });
    assert.equal(a.kind, 'write');
    assert.equal(a.protocol, 'mcp');
  });

  it('same tool, different arguments, different decisions', () => {
    assert.equal(evaluate(policy, call('files', 'write_file', { path: '/etc/passwd' })).effect, 'deny');
    assert.equal(evaluate(policy, call('files', 'write_file', { path: '/srv/x' })).effect, 'review');
    assert.equal(
      evaluate(policy, call('files', 'write_file', { path: '/srv/x', options: { mode: '0777' } })).effect,
      'deny',
    );
    assert.equal(evaluate(policy, call('files', 'read_file', { path: '/etc/passwd' })).effect, 'allow');
    assert.equal(evaluate(policy, call('files', 'list_dir', { path: '/' })).effect, 'allow');
  });

  it('a tool the connection does not describe is unknown, whatever it claims', () => {
    const info = { name: 'delete_all', annotations: { readOnlyHint: true } };
    const a = call('files', 'delete_all', {}, { info });
    assert.equal(a.kind, 'unknown');
    assert.equal(call('files', 'never_listed', {}).kind, 'unknown');
    assert.notEqual(evaluate(policy, a).effect, 'allow');
  });

  it('trusted annotations decide the kind only when present', () => {
    assert.equal(
      call('trusting', 'look', {}, { info: { name: 'look', annotations: { readOnlyHint: true } } }).kind,
      'read',
    );
    assert.equal(
      call('trusting', 'poke', {}, { info: { name: 'poke', annotations: { readOnlyHint: false } } }).kind,
      'write',
    );
    assert.equal(call('trusting', 'shrug', {}, { info: { name: 'shrug' } }).kind, 'unknown');
  });

  it('a SQL tool is judged by its statements', () => {
    const select = call('files', 'execute_sql', { query: 'SELECT 1' }, { classifySql: classify });
    assert.equal(select.kind, 'read');
    assert.equal(select.parts[0]?.statement, 'SelectStmt');
    assert.deepEqual(select.parts[0]?.fields?.tool, ['execute_sql']);
    const mixed = call(
      'files',
      'execute_sql',
      { query: 'SELECT 1; DELETE FROM t' },
      { classifySql: classify },
    );
    assert.equal(mixed.kind, 'write');
    assert.equal(mixed.parts.length, 2);
    // A kind given next to `sql` is a floor: a SELECT through this tool is still a write.
    assert.equal(
      call('files', 'audited_sql', { query: 'SELECT 1' }, { classifySql: classify }).kind,
      'write',
    );
    // No classifier, or no SQL text: unknown.
    assert.equal(call('files', 'execute_sql', { query: 'SELECT 1' }).kind, 'unknown');
    assert.equal(call('files', 'execute_sql', { query: 42 }, { classifySql: classify }).kind, 'unknown');
  });

  it('binds approvals to the exact arguments, whatever their key order', () => {
    const a = call('files', 'write_file', { path: '/srv/a', content: 'x' });
    const b = call('files', 'write_file', { content: 'x', path: '/srv/a' });
    const c = call('files', 'write_file', { content: 'y', path: '/srv/a' });
    assert.equal(a.normalized, b.normalized);
    assert.notEqual(a.normalized, c.normalized);
  });

  it('arguments too deep to match are unknown', () => {
    let deep: Record<string, unknown> = { leaf: 'x' };
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const a = call('files', 'read_file', { path: '/a', deep });
    assert.equal(a.kind, 'unknown');
  });

  it('an absolute path argument is matched as the path it names', () => {
    assert.deepEqual(argumentFields({ path: '/srv/notes/../protected//key', mode: '../x', n: '/a/b' }), {
      'argument.path': ['/srv/protected/key'],
      'argument.mode': ['../x'],
      'argument.n': ['/a/b'],
    });
  });

  it('argument fields and canonical JSON hold for any JSON arguments', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 4 })), (args) => {
        const fields = argumentFields(args);
        if (fields)
          for (const values of Object.values(fields))
            for (const v of values) assert.equal(typeof v, 'string');
        const reordered = Object.fromEntries(Object.entries(args).reverse());
        assert.equal(canonicalJson(args), canonicalJson(reordered));
        assert.deepEqual(JSON.parse(canonicalJson(args)), JSON.parse(JSON.stringify(args)));
      }),
    );
  });
});

describe('tools/list filtering', () => {
  it('hides a tool only when no call of it could pass', () => {
    assert.equal(mayEverCall(policy, 'files', agent, 'run_shell', ['unknown']), false);
    assert.equal(mayEverCall(policy, 'files', human, 'run_shell', ['unknown']), true);
    // A deny that depends on the arguments leaves other arguments open.
    assert.equal(mayEverCall(policy, 'files', agent, 'get_secret', ['unknown']), true);
    assert.equal(mayEverCall(policy, 'files', agent, 'write_file', ['write']), true);
    // Default deny: only what a rule allows or reviews is listed.
    assert.equal(mayEverCall(policy, 'locked', agent, 'read_file', ['read']), true);
    assert.equal(mayEverCall(policy, 'locked', agent, 'anything', ['unknown']), false);
  });
});
