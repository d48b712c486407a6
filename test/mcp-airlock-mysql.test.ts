/**
 * The own tool `query` on a MySQL connection: a private MariaDB behind Airlock, the MCP SDK
 * client as the agent; the statement goes through Airlock's MySQL listener as the agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  MYSQL_CONNECTION,
  type MysqlTestGateway,
  mariadbAvailable,
  type PrivateMariadb,
  startMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';
import { closeMcpClient, connectMcpClient, type ToolResult, textOf } from './support/mcp-gateway.ts';
import { stopAll } from './support/processes.ts';

const TEST_TIMEOUT = 120_000;
const skip = mariadbAvailable();
interface RequestView {
  id: number;
  protocol: string;
  summary: string;
  principal: { name: string };
}

let target: PrivateMariadb;
let gw: MysqlTestGateway;
let agent: Client;

before(async () => {
  if (skip) return;
  target = await startMariadb();
  gw = await startMysqlTestGateway(target);
  agent = await connectMcpClient(`${gw.apiUrl}/mcp/airlock`, gw.tokens.agent);
});

after(async () => {
  await closeMcpClient(agent);
  await gw?.close();
  await target?.stop();
  await stopAll();
});

describe('query on a MySQL connection over MCP', { skip }, () => {
  test('a read returns rows', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({
      name: 'query',
      arguments: {
        connection: MYSQL_CONNECTION,
        sql: 'SELECT id, total FROM orders WHERE id <= 2 ORDER BY id',
      },
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
      { name: 'query', arguments: { connection: MYSQL_CONNECTION, sql: 'DELETE FROM orders WHERE id = 41' } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? ''), resetTimeoutOnProgress: true },
    );
    const deadline = Date.now() + 30_000;
    let request: RequestView | undefined;
    while (!request) {
      assert.ok(Date.now() < deadline, 'no pending request for the DELETE');
      const res = await gw.api<{ requests: RequestView[] }>(
        'GET',
        '/api/v1/requests?status=pending',
        undefined,
        'alice',
      );
      request = res.body.requests.find((r) => r.principal.name === 'agent' && r.summary.includes('id = 41'));
      if (!request) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(request.protocol, 'mysql');
    while (!progress.some((p) => p.includes(`waiting for approval: request ${request.id}`))) {
      assert.ok(Date.now() < deadline, progress.join(' | '));
      await new Promise((r) => setTimeout(r, 50));
    }
    const approved = await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    const result = await call;
    assert.notEqual((result as ToolResult).isError, true, textOf(result));
    assert.equal(textOf(result), 'OK, 1 row affected');
  });

  test('a denied statement returns the reason as a tool error', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({
      name: 'query',
      arguments: { connection: MYSQL_CONNECTION, sql: 'DROP TABLE orders' },
    });
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /schema drops go through the migration pipeline/);
  });
});
