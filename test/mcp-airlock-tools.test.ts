/**
 * Airlock's own MCP tools at /mcp/airlock, driven by the MCP SDK client as an agent, against a
 * private PostgreSQL behind Airlock: `query` meets the same gate, holds and approvals as psql.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { requestJson } from '../src/server/api.ts';
import { pendingRequestFrom } from './support/eventually.ts';
import { startTestGateway, type TestGateway } from './support/gateway.ts';
import { closeMcpClient, connectMcpClient, type ToolResult, textOf } from './support/mcp-gateway.ts';
import { type PrivatePostgres, startPostgres } from './support/postgres.ts';

const TEST_TIMEOUT = 60_000;
type RequestView = ReturnType<typeof requestJson>;

let upstream: PrivatePostgres;
let gw: TestGateway;
let agent: Client;

before(async () => {
  upstream = await startPostgres();
  gw = await startTestGateway(upstream, {
    extra: `
access:
  - connections: [app]
    kinds: [read, write]
    principals: [agent]
    max: 1h
    review: { groups: [dba] }
`,
  });
  agent = await connectMcpClient(`${gw.apiUrl}/mcp/airlock`, gw.tokens.agent);
});

after(async () => {
  await closeMcpClient(agent);
  await gw?.close();
  await upstream?.stop();
});

function pendingRequest(principal: string, text: string): Promise<RequestView> {
  return pendingRequestFrom(gw.api, principal, text, 50);
}

describe('Airlock tools over MCP', () => {
  test('list_connections names the PostgreSQL connection and how to use it', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const tools = (await agent.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(tools, ['list_connections', 'query', 'request_access', 'request_status']);
    const list = JSON.parse(textOf(await agent.callTool({ name: 'list_connections', arguments: {} }))) as {
      name: string;
      type: string;
      use: string;
    }[];
    const app = list.find((c) => c.name === 'app');
    assert.equal(app?.type, 'postgres');
    assert.match(app?.use ?? '', /query tool/);
  });

  test('a read runs at once and returns rows', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({
      name: 'query',
      arguments: { connection: 'app', sql: 'SELECT id, total FROM orders WHERE id <= 2 ORDER BY id' },
    });
    assert.notEqual((result as ToolResult).isError, true, textOf(result));
    const body = JSON.parse(textOf(result)) as { columns: string[]; rows: unknown[][] };
    assert.deepEqual(body.columns, ['id', 'total']);
    assert.deepEqual(body.rows, [
      [1, '7.25'],
      [2, '14.50'],
    ]);
  });

  test('a DELETE is held, reports progress, and runs once approved through the API', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const progress: string[] = [];
    const call = agent.callTool(
      { name: 'query', arguments: { connection: 'app', sql: 'DELETE FROM orders WHERE id = 41' } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? ''), resetTimeoutOnProgress: true },
    );
    const request = await pendingRequest('agent', 'DELETE FROM orders WHERE id = 41');
    assert.equal(request.protocol, 'postgres');
    assert.equal(request.rule.name, 'writes need a DBA');
    const status = JSON.parse(
      textOf(await agent.callTool({ name: 'request_status', arguments: { id: request.id } })),
    ) as { status: string };
    assert.equal(status.status, 'pending');

    const approved = await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    const result = await call;
    assert.equal(textOf(result), 'DELETE 1');
    assert.ok(
      progress.some((p) => p.includes(`request ${request.id}`)),
      progress.join(' | '),
    );
    assert.equal(
      await upstream
        .psql('SELECT count(*) FROM orders WHERE id = 41', { db: 'app' })
        .then((s) => s.trim())
        .catch(() => '?'),
      '0',
    );
  });

  test('a denied statement returns the reason as a tool error', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({
      name: 'query',
      arguments: { connection: 'app', sql: 'DROP TABLE orders' },
    });
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /schema drops go through the migration pipeline/);
  });

  test('request_access files a just-in-time access request the agent can follow', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const filed = await agent.callTool({
      name: 'request_access',
      arguments: {
        connection: 'app',
        duration: '30m',
        reason: 'fix order 7 for ticket 4411',
        kinds: ['write'],
      },
    });
    assert.notEqual((filed as ToolResult).isError, true, textOf(filed));
    const id = Number(/access request (\d+)/.exec(textOf(filed))?.[1]);
    assert.ok(id > 0, textOf(filed));
    const status = JSON.parse(
      textOf(await agent.callTool({ name: 'request_status', arguments: { id } })),
    ) as {
      status: string;
    };
    assert.equal(status.status, 'pending');
    const tooLong = await agent.callTool({
      name: 'request_access',
      arguments: { connection: 'app', duration: '8h', reason: 'the whole day' },
    });
    assert.equal((tooLong as ToolResult).isError, true);
  });

  test("someone else's request, or a missing connection, is refused", { timeout: TEST_TIMEOUT }, async () => {
    const missing = await agent.callTool({
      name: 'query',
      arguments: { connection: 'nope', sql: 'SELECT 1' },
    });
    assert.equal((missing as ToolResult).isError, true);
    assert.match(textOf(missing), /no PostgreSQL connection "nope"; use one of: app/);
    const other = await agent.callTool({ name: 'request_status', arguments: { id: 999_999 } });
    assert.equal((other as ToolResult).isError, true);
  });
});
