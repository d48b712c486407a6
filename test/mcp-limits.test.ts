/**
 * MCP sessions count against the caller's connection slots (a session may launch a process):
 * past the limit a new session is refused with 429, and ending one frees its slot.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type McpTestGateway, startMcpTestGateway } from './support/mcp-gateway.ts';
import { type HttpToolServer, startHttpToolServer } from './support/mcp-http-server.ts';

let upstream: HttpToolServer;
let gw: McpTestGateway;

before(async () => {
  upstream = await startHttpToolServer();
  gw = await startMcpTestGateway(
    upstream,
    'rules:\n  - { name: reads are free, kinds: [read], effect: allow }\nlimits: { max_connections_per_principal: 2 }\n',
  );
});

after(async () => {
  await gw?.close();
  await upstream?.close();
});

test('a caller past its session limit is refused until it ends one', { timeout: 60_000 }, async () => {
  const first = await gw.client('tools', 'agent');
  await gw.client('tools', 'agent');
  const res = await fetch(`${gw.apiUrl}/mcp/tools`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${gw.tokens.agent}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    }),
  });
  assert.equal(res.status, 429);
  const body = (await res.json()) as { error: { data: { code: string } } };
  assert.equal(body.error.data.code, 'AIRLOCK_E_LIMIT_CONNECTIONS');
  // Another principal has its own slots.
  await gw.client('tools', 'alice');

  await (first.transport as StreamableHTTPClientTransport).terminateSession();
  await first.close();
  const again = await gw.client('tools', 'agent');
  assert.equal((await again.listTools()).tools.length > 0, true);
});
