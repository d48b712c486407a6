/**
 * A published tool server behind Airlock: the reference MCP filesystem server from npm, launched
 * by Airlock over stdio on a temporary directory. The MCP SDK client is the agent. Reads pass
 * unchanged, a write under a protected folder is refused by an argument rule with its reason,
 * other writes wait for a reviewer and land once approved, and a tool the agent may never call is
 * not listed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { requestJson } from '../src/server/api.ts';
import type { Gateway } from '../src/server/gateway.ts';
import { pendingRequestFrom } from './support/eventually.ts';
import { closeMcpClient, connectMcpClient, type ToolResult, textOf } from './support/mcp-gateway.ts';
import {
  apiUrlOf,
  makePolicyDir,
  type PolicyDir,
  PRINCIPALS,
  type PrincipalName,
} from './support/policy-dir.ts';

const TEST_TIMEOUT = 60_000;
type RequestView = ReturnType<typeof requestJson>;

/** The server's own entry point, as its package's `bin` names it. */
const FILESYSTEM_SERVER = join(
  createRequire(import.meta.url).resolve('@modelcontextprotocol/server-filesystem/package.json'),
  '..',
  'dist',
  'index.js',
);

let policy: PolicyDir<PrincipalName>;
let dir: string;
let files: string;
let gateway: Gateway;
let apiUrl: string;
const clients: Client[] = [];

before(async () => {
  policy = makePolicyDir('airlock-mcp-fs-', PRINCIPALS);
  dir = policy.dir;
  files = join(dir, 'files');
  mkdirSync(join(files, 'protected'), { recursive: true });
  mkdirSync(join(files, 'notes'));
  writeFileSync(join(files, 'notes', 'todo.txt'), 'ship the release\n');
  writeFileSync(join(files, 'protected', 'keys.txt'), 'do not touch\n');
  writeFileSync(join(dir, 'outside.txt'), 'not for the agent\n');
  policy.writePolicy(
    { listen: [] },
    `connections:
  files:
    type: mcp
    description: the team's shared files
    upstream:
      command: ${JSON.stringify(process.execPath)}
      args: [${JSON.stringify(FILESYSTEM_SERVER)}, ${JSON.stringify(files)}]
    tools:
      "read_*": read
      "list_*": read
      directory_tree: read
      search_files: read
      get_file_info: read
      write_file: write
      edit_file: write
      create_directory: write
      move_file: write
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }

rules:
  - name: reads are free
    connections: [files]
    kinds: [read]
    effect: allow
  - name: protected files are never written
    connections: [files]
    tools: [write_file, edit_file]
    arguments: { path: ${JSON.stringify(`${files}/protected/*`)} }
    effect: deny
    reason: files under protected/ are managed by the release pipeline
  - name: agents never move files
    connections: [files]
    tools: [move_file]
    principal_kinds: [agent]
    effect: deny
    reason: moving files breaks links; copy and ask a person to delete`,
  );
  gateway = await policy.start({ listen: { api: '127.0.0.1:0', postgres: false } });
  apiUrl = apiUrlOf(gateway);
});

after(async () => {
  for (const c of clients) await closeMcpClient(c);
  if (gateway) await policy.close(gateway);
  else policy?.remove();
});

async function agentClient(who: PrincipalName = 'agent', roots?: string[]): Promise<Client> {
  const client = new Client(
    { name: 'coding-agent', version: '1.0.0' },
    roots ? { capabilities: { roots: { listChanged: true } } } : {},
  );
  if (roots)
    client.setRequestHandler(ListRootsRequestSchema, async () => ({
      roots: roots.map((r) => ({ uri: `file://${r}`, name: r })),
    }));
  await connectMcpClient(`${apiUrl}/mcp/files`, policy.tokens[who], client);
  clients.push(client);
  return client;
}

/** The API as alice, a reviewer. */
function api<T>(method: string, path: string, body?: unknown) {
  return policy.api(gateway)<T>(method, path, body, 'alice');
}

function pendingRequest(principal: string, text: string): Promise<RequestView> {
  return pendingRequestFrom(policy.api(gateway), principal, text, 50);
}

describe('the reference filesystem server behind Airlock', () => {
  test('tools/list leaves out a tool the agent may never call, and keeps the rest', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const agent = await agentClient();
    const names = (await agent.listTools()).tools.map((t) => t.name);
    for (const name of ['read_text_file', 'list_directory', 'write_file', 'edit_file'])
      assert.ok(names.includes(name), `${name} is listed: ${names.join(', ')}`);
    assert.ok(!names.includes('move_file'), names.join(', '));
    // A person is not bound by the agents-only rule: the same tool is listed for them.
    const alice = await agentClient('alice');
    assert.ok((await alice.listTools()).tools.some((t) => t.name === 'move_file'));
  });

  test('reads pass unchanged', { timeout: TEST_TIMEOUT }, async () => {
    const agent = await agentClient();
    const read = await agent.callTool({
      name: 'read_text_file',
      arguments: { path: join(files, 'notes', 'todo.txt') },
    });
    assert.notEqual((read as ToolResult).isError, true, textOf(read));
    assert.equal(textOf(read), 'ship the release\n');
    const listing = await agent.callTool({ name: 'list_directory', arguments: { path: files } });
    assert.notEqual((listing as ToolResult).isError, true, textOf(listing));
    assert.deepEqual(textOf(listing).split('\n').sort(), ['[DIR] notes', '[DIR] protected']);
  });

  test('a write under protected/ is refused with the reason, and nothing is written', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const agent = await agentClient();
    const target = join(files, 'protected', 'keys.txt');
    const result = await agent.callTool({
      name: 'write_file',
      arguments: { path: target, content: 'overwritten' },
    });
    assert.equal((result as ToolResult).isError, true, textOf(result));
    assert.match(textOf(result), /files under protected\/ are managed by the release pipeline/);
    assert.equal(readFileSync(target, 'utf8'), 'do not touch\n');
    // The same file by a detour through another folder is the same file to the rules.
    const detour = await agent.callTool({
      name: 'write_file',
      arguments: { path: `${files}/notes/..//protected/./keys.txt`, content: 'overwritten' },
    });
    assert.equal((detour as ToolResult).isError, true, textOf(detour));
    assert.match(textOf(detour), /files under protected\/ are managed by the release pipeline/);
    assert.equal(readFileSync(target, 'utf8'), 'do not touch\n');
  });

  test('a write elsewhere waits for a reviewer, reports progress, and lands once approved', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const agent = await agentClient();
    const target = join(files, 'notes', 'done.txt');
    const progress: string[] = [];
    const call = agent.callTool(
      { name: 'write_file', arguments: { path: target, content: 'release shipped\n' } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? ''), resetTimeoutOnProgress: true },
    );
    const request = await pendingRequest('agent', 'write_file');
    assert.equal(request.protocol, 'mcp');
    assert.equal(request.connection, 'files');
    assert.equal(existsSync(target), false, 'nothing is written before the approval');

    const approved = await api('POST', `/api/v1/requests/${request.id}/approve`, {});
    assert.equal(approved.status, 200);
    const result = await call;
    assert.notEqual((result as ToolResult).isError, true, textOf(result));
    assert.match(textOf(result), /Successfully wrote/);
    assert.equal(readFileSync(target, 'utf8'), 'release shipped\n');
    assert.ok(
      progress.some((p) => p.includes(`request ${request.id}`)),
      progress.join(' | '),
    );
  });

  test("the caller's roots do not widen the directories the administrator gave the server", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // The filesystem server replaces its directories with a client's roots; behind Airlock the
    // caller's roots never reach it, so "/" does not open the rest of the machine.
    const agent = await agentClient('agent', ['/']);
    await agent.sendRootsListChanged();
    await new Promise((r) => setTimeout(r, 300));
    const outside = await agent.callTool({
      name: 'read_text_file',
      arguments: { path: join(dir, 'outside.txt') },
    });
    assert.equal((outside as ToolResult).isError, true, textOf(outside));
    assert.doesNotMatch(textOf(outside), /not for the agent/);
    const inside = await agent.callTool({
      name: 'read_text_file',
      arguments: { path: join(files, 'notes', 'todo.txt') },
    });
    assert.equal(textOf(inside), 'ship the release\n');
  });
});
