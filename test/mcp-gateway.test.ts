/**
 * MCP through Airlock: the SDK's own Client (the agent) speaks Streamable HTTP to Airlock, which
 * relays to real SDK tool servers, one over Streamable HTTP and one over stdio that Airlock
 * launches. Every wait is bounded; nothing asserts on speed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { requestJson } from '../src/server/api.ts';
import { eventually, pendingRequestFrom } from './support/eventually.ts';
import { type McpTestGateway, startMcpTestGateway, type ToolResult, textOf } from './support/mcp-gateway.ts';
import { type HttpToolServer, startHttpToolServer } from './support/mcp-http-server.ts';

const TEST_TIMEOUT = 60_000;

const RULES = `
rules:
  - name: reads are free
    connections: [tools, local]
    kinds: [read]
    effect: allow
  - name: nothing under /etc
    connections: [tools]
    tools: [write_file]
    arguments: { path: "/etc/*" }
    effect: deny
    reason: files under /etc are managed by configuration management
  - name: scratch files are free
    connections: [tools]
    tools: [write_file]
    arguments: { path: "/tmp/*" }
    effect: allow
  - name: agents never drop everything
    tools: [drop_everything]
    principal_kinds: [agent]
    effect: deny
    reason: drop_everything is not for agents
  - name: data changes need a DBA
    connections: [tools]
    tools: [execute_sql]
    kinds: [write]
    effect: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
  - name: eve does not read the readme
    connections: [tools]
    principals: [eve]
    resources: ["file:///readme*"]
    effect: deny
    reason: the readme is not for support staff
  - name: the environment check is free
    connections: [local]
    tools: [env_has, crash]
    effect: allow

masking:
  - connections: [tools]
    columns: ["*.card_number"]
    detectors: [email, credit_card]
    strategy: redact
`;

type RequestView = ReturnType<typeof requestJson>;

let upstream: HttpToolServer;
let gw: McpTestGateway;

before(async () => {
  upstream = await startHttpToolServer();
  gw = await startMcpTestGateway(upstream, RULES);
});

after(async () => {
  await gw?.close();
  await upstream?.close();
});

function pendingRequest(principal: string, text: string): Promise<RequestView> {
  return pendingRequestFrom(gw.api, principal, text);
}

async function requestStatus(id: number): Promise<string> {
  const res = await gw.api<{ request: RequestView }>('GET', `/api/v1/requests/${id}`, undefined, 'alice');
  assert.equal(res.status, 200, res.text);
  return res.body.request.status;
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
};

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(gw.apiUrl + path, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
}

describe('authentication', () => {
  test('a missing or wrong token is refused with 401 and a JSON-RPC error', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const none = await post('/mcp/tools', INITIALIZE);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const body = (await none.json()) as { error: { message: string; data: { code: string } } };
    assert.equal(body.error.data.code, 'AIRLOCK_E_TOKEN_MISSING');

    const wrong = await post('/mcp/tools', INITIALIZE, { authorization: 'Bearer alk_not_a_real_token' });
    assert.equal(wrong.status, 401);
    const text = await wrong.text();
    assert.doesNotMatch(text, /alk_not_a_real_token/);

    await assert.rejects(gw.client('tools', { token: 'alk_not_a_real_token' }));
  });

  test('an unknown connection names the ones that exist', { timeout: TEST_TIMEOUT }, async () => {
    const res = await post('/mcp/nope', INITIALIZE, { authorization: `Bearer ${gw.tokens.agent}` });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, /no MCP connection "nope".*\/mcp\/tools/);
  });

  test('a session belongs to the principal that opened it', { timeout: TEST_TIMEOUT }, async () => {
    const client = await gw.client('tools', 'agent');
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(sessionId);
    const res = await post(
      '/mcp/tools',
      { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} },
      {
        authorization: `Bearer ${gw.tokens.eve}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
    );
    assert.equal(res.status, 404);
    await client.close();
  });
});

describe('relay over Streamable HTTP', () => {
  let agent: Client;
  before(async () => {
    agent = await gw.client('tools', 'agent', { sampling: '42' });
  });
  after(() => agent?.close());

  test('tools/list leaves out tools the caller may never call', { timeout: TEST_TIMEOUT }, async () => {
    const names = (await agent.listTools()).tools.map((t) => t.name).sort();
    assert.ok(
      names.includes('echo') && names.includes('write_file') && names.includes('execute_sql'),
      names.join(),
    );
    assert.ok(
      !names.includes('drop_everything'),
      'a tool denied to agents whatever its arguments is not listed',
    );

    const alice = await gw.client('tools', 'alice');
    const aliceNames = (await alice.listTools()).tools.map((t) => t.name);
    assert.ok(aliceNames.includes('drop_everything'), 'a human may call it (it falls to review)');
    await alice.close();
  });

  test('an allowed call is relayed and answered unchanged', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({ name: 'echo', arguments: { text: 'hello through Airlock' } });
    assert.equal(textOf(result), 'hello through Airlock');
    assert.notEqual((result as ToolResult).isError, true);
  });

  test('same tool, different arguments, different decisions', { timeout: TEST_TIMEOUT }, async () => {
    const ok = await agent.callTool({
      name: 'write_file',
      arguments: { path: '/tmp/scratch.txt', content: 'abc' },
    });
    assert.equal(textOf(ok), 'wrote 3 bytes to /tmp/scratch.txt');

    const denied = await agent.callTool({
      name: 'write_file',
      arguments: { path: '/etc/passwd', content: 'x' },
    });
    assert.equal((denied as ToolResult).isError, true);
    assert.match(
      textOf(denied),
      /denied by Airlock: files under \/etc are managed by configuration management/,
    );
    assert.ok(
      !upstream.effects.writes.some((w) => w.path === '/etc/passwd'),
      'the denied call never reached the server',
    );
    assert.ok(upstream.effects.writes.some((w) => w.path === '/tmp/scratch.txt'));
  });

  test('a tools/call sent as a notification never reaches the tool server', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sessionId = (agent.transport as StreamableHTTPClientTransport).sessionId!;
    const res = await post(
      '/mcp/tools',
      {
        jsonrpc: '2.0',
        method: 'tools/call',
        params: { name: 'write_file', arguments: { path: '/srv/sneaky', content: 'x' } },
      },
      {
        authorization: `Bearer ${gw.tokens.agent}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
    );
    assert.equal(res.status, 202);
    // A round trip after it: had it been forwarded, the server would have run it by now.
    await agent.callTool({ name: 'echo', arguments: { text: 'after' } });
    assert.ok(!upstream.effects.writes.some((w) => w.path === '/srv/sneaky'));
    assert.ok(upstream.notifications.includes('notifications/initialized'), 'real notifications pass');
    assert.ok(!upstream.notifications.includes('tools/call'), 'Airlock dropped it');
  });

  test('a tool denied to agents returns the reason as a tool error', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({ name: 'drop_everything', arguments: { confirm: true } });
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /drop_everything is not for agents/);
  });

  test('a held call reports progress, then runs once approved through the API', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const progress: string[] = [];
    const call = agent.callTool(
      { name: 'write_file', arguments: { path: '/srv/data/report.txt', content: 'quarterly' } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? ''), resetTimeoutOnProgress: true },
    );
    const request = await pendingRequest('agent', '/srv/data/report.txt');
    assert.equal(request.protocol, 'mcp');
    assert.equal(request.kind, 'write');
    assert.deepEqual(request.parts[0]?.fields.tool, ['write_file']);
    assert.ok(!upstream.effects.writes.some((w) => w.path === '/srv/data/report.txt'), 'held, not run');
    await eventually('a progress notification', async () => (progress.length > 0 ? true : undefined));
    assert.match(progress[0]!, new RegExp(`waiting for approval: request ${request.id}`));

    const approved = await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    assert.equal(approved.status, 200, approved.text);
    const result = await call;
    assert.equal(textOf(result), 'wrote 9 bytes to /srv/data/report.txt');
    assert.equal(await requestStatus(request.id), 'executed');
  });

  test("a held call denied by a reviewer returns the reviewer's reason", {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const call = agent.callTool({
      name: 'write_file',
      arguments: { path: '/srv/data/other.txt', content: 'x' },
    });
    const request = await pendingRequest('agent', '/srv/data/other.txt');
    const denied = await gw.api(
      'POST',
      `/api/v1/requests/${request.id}/deny`,
      { reason: 'write reports to /tmp first' },
      'alice',
    );
    assert.equal(denied.status, 200, denied.text);
    const result = await call;
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /denied by alice: write reports to \/tmp first/);
    assert.ok(!upstream.effects.writes.some((w) => w.path === '/srv/data/other.txt'));
  });

  test('cancelling a held call cancels its approval request', { timeout: TEST_TIMEOUT }, async () => {
    const abort = new AbortController();
    const call = agent.callTool(
      { name: 'write_file', arguments: { path: '/srv/data/cancelled.txt', content: 'x' } },
      undefined,
      { signal: abort.signal },
    );
    const request = await pendingRequest('agent', '/srv/data/cancelled.txt');
    abort.abort();
    await assert.rejects(call);
    await eventually('the request to be cancelled', async () =>
      (await requestStatus(request.id)) === 'cancelled' ? true : undefined,
    );
    assert.ok(!upstream.effects.writes.some((w) => w.path === '/srv/data/cancelled.txt'));
  });

  test('SQL tools are judged by the statement they carry', { timeout: TEST_TIMEOUT }, async () => {
    const read = await agent.callTool({
      name: 'execute_sql',
      arguments: { sql: 'SELECT * FROM orders WHERE id = 7' },
    });
    assert.equal(textOf(read), 'ran: SELECT * FROM orders WHERE id = 7');

    const call = agent.callTool({
      name: 'execute_sql',
      arguments: { sql: 'DELETE FROM orders WHERE id = 7' },
    });
    const request = await pendingRequest('agent', 'DELETE FROM orders');
    assert.equal(request.kind, 'write');
    assert.equal(request.rule.name, 'data changes need a DBA');
    assert.equal(request.parts[0]?.statement, 'DeleteStmt');
    assert.ok(!upstream.effects.statements.includes('DELETE FROM orders WHERE id = 7'));
    await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'bob');
    assert.equal(textOf(await call), 'ran: DELETE FROM orders WHERE id = 7');
  });

  test('progress, sampling, resources and prompts pass through', { timeout: TEST_TIMEOUT }, async () => {
    const progress: string[] = [];
    const counted = await agent.callTool({ name: 'count', arguments: { n: 3 } }, undefined, {
      onprogress: (p) => progress.push(p.message ?? ''),
    });
    assert.equal(textOf(counted), 'counted to 3');
    assert.deepEqual(progress, ['step 1', 'step 2', 'step 3']);

    const asked = await agent.callTool({ name: 'ask_model', arguments: { question: 'the answer?' } });
    assert.equal(textOf(asked), 'the model said: 42');

    const resources = await agent.listResources();
    assert.deepEqual(
      resources.resources.map((r) => r.uri),
      ['file:///readme.txt'],
    );
    const readme = await agent.readResource({ uri: 'file:///readme.txt' });
    assert.equal((readme.contents[0] as { text: string }).text, 'hello from the readme');
    const prompt = await agent.getPrompt({ name: 'greet', arguments: { who: 'Ada' } });
    assert.equal((prompt.messages[0]!.content as { text: string }).text, 'Say hello to Ada');
  });

  test('tool results are masked per policy, text and structured content', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const result = (await agent.callTool({ name: 'lookup_customer', arguments: { id: 7 } })) as ToolResult & {
      structuredContent: Record<string, string>;
    };
    const text = textOf(result);
    assert.match(text, /Customer 7/);
    assert.doesNotMatch(text, /customer7@example\.com/);
    assert.doesNotMatch(text, /4111 1111 1111 1111/);
    assert.equal(result.structuredContent.name, 'Customer 7');
    assert.notEqual(result.structuredContent.email, 'customer7@example.com');
    assert.notEqual(result.structuredContent.card_number, '4111 1111 1111 1111');
  });

  test('every judged call is in the audit log, without the upstream credential', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const res = await gw.api<{ records: { type: string; data: Record<string, unknown> }[] }>(
      'GET',
      '/api/v1/audit?limit=1000',
      undefined,
      'alice',
    );
    assert.equal(res.status, 200, res.text);
    const mcp = res.body.records.filter((r) => r.data.protocol === 'mcp');
    assert.ok(mcp.some((r) => r.type === 'action.denied' && String(r.data.summary).includes('/etc/passwd')));
    assert.ok(mcp.some((r) => r.type === 'action.allowed' && String(r.data.summary).startsWith('echo ')));
    assert.ok(!res.text.includes(upstream.token), 'the tool server credential is never recorded');
    assert.equal(upstream.refused, 0, 'Airlock always presented the credential it holds');
  });
});

describe('requests other than tools/call', () => {
  test('resources/read is judged by its URI', { timeout: TEST_TIMEOUT }, async () => {
    const eve = await gw.client('tools', 'eve');
    await assert.rejects(
      eve.readResource({ uri: 'file:///readme.txt' }),
      /the readme is not for support staff/,
    );
    // Listing is descriptive and passes.
    assert.equal((await eve.listResources()).resources.length, 1);
    await eve.close();
  });

  test('a method Airlock does not know is held as unknown, not relayed', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const agent = await gw.client('tools', 'agent');
    const { EmptyResultSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const call = agent.request({ method: 'x-vendor/reset', params: { everything: true } }, EmptyResultSchema);
    const request = await pendingRequest('agent', 'x-vendor/reset');
    assert.equal(request.kind, 'unknown');
    await gw.api('POST', `/api/v1/requests/${request.id}/deny`, { reason: 'no resets today' }, 'alice');
    await assert.rejects(call, /no resets today/);
    await agent.close();
  });
});

describe('confirmation at the keyboard (elicitation)', () => {
  test('an allowed call of a confirm tool runs only if the person allows it', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const asked: string[] = [];
    const agent = await gw.client('tools', 'agent', {
      elicit: (message) => {
        asked.push(message);
        return message.includes('/ok');
      },
    });
    assert.equal(
      textOf(await agent.callTool({ name: 'read_file', arguments: { path: '/ok' } })),
      'contents of /ok',
    );
    assert.match(asked[0] ?? '', /Airlock: allow read_file \{"path":"\/ok"\} on tools\?/);
    const declined = await agent.callTool({ name: 'read_file', arguments: { path: '/no' } });
    assert.equal((declined as ToolResult).isError, true);
    assert.match(textOf(declined), /did not confirm read_file/);
    // Tools not named in confirm are not asked about.
    await agent.callTool({ name: 'echo', arguments: { text: 'x' } });
    assert.equal(asked.length, 2);
    await agent.close();

    const cannotAsk = await gw.client('tools', 'agent');
    const refused = await cannotAsk.callTool({ name: 'read_file', arguments: { path: '/ok' } });
    assert.equal((refused as ToolResult).isError, true);
    assert.match(textOf(refused), /cannot ask/);
    await cannotAsk.close();
  });
});

describe('recordings', () => {
  test('a session is recorded: calls, decisions and masked results', { timeout: TEST_TIMEOUT }, async () => {
    const client = await gw.client('tools', 'agent');
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    await client.callTool({ name: 'echo', arguments: { text: 'recorded' } });
    await client.callTool({ name: 'write_file', arguments: { path: '/etc/shadow', content: 'x' } });
    await client.callTool({ name: 'lookup_customer', arguments: { id: 3 } });
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    await client.close();

    const list = await eventually('the sealed recording', async () => {
      const res = await gw.api<{ recordings: { id: string; session: string; status: string }[] }>(
        'GET',
        '/api/v1/recordings?connection=tools',
        undefined,
        'alice',
      );
      return res.body.recordings?.find((r) => r.session === sessionId && r.status === 'closed');
    });
    const content = await gw.api<string>('GET', `/api/v1/recordings/${list.id}/content`, undefined, 'alice');
    assert.equal(content.status, 200);
    const events = content.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events[0]?.format, 'events-jsonl');
    assert.ok(events.some((e) => e.type === 'call' && e.tool === 'echo'));
    assert.ok(events.some((e) => e.type === 'decision' && e.verdict === 'forwarded'));
    assert.ok(
      events.some(
        (e) =>
          e.type === 'decision' &&
          e.verdict === 'refused' &&
          String(e.text).includes('configuration management'),
      ),
    );
    assert.ok(content.text.includes('Customer 3'));
    assert.ok(!content.text.includes('customer3@example.com'), 'results are recorded masked');
    assert.equal(events.at(-1)?.type, 'end');
  });
});

describe('supervision', () => {
  test('a stdio tool server that dies mid-call is restarted; the session carries on', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const agent = await gw.client('local', 'agent');
    await assert.rejects(
      agent.callTool({ name: 'crash', arguments: {} }),
      /stopped while handling this request/,
    );
    const after = await eventually('the restarted tool server', async () => {
      try {
        return textOf(await agent.callTool({ name: 'env_has', arguments: { name: 'STDIO_SECRET' } }));
      } catch {
        return undefined;
      }
    });
    assert.equal(after, 'STDIO_SECRET is set');
    await agent.close();
  });

  test('an HTTP tool server that forgot the session gets a new one', { timeout: TEST_TIMEOUT }, async () => {
    const agent = await gw.client('tools', 'agent');
    assert.equal(textOf(await agent.callTool({ name: 'echo', arguments: { text: 'before' } })), 'before');
    await upstream.dropSessions();
    await assert.rejects(agent.callTool({ name: 'echo', arguments: { text: 'lost' } }), /lost the session/);
    const after = await eventually('a new upstream session', async () => {
      try {
        return textOf(await agent.callTool({ name: 'echo', arguments: { text: 'after' } }));
      } catch {
        return undefined;
      }
    });
    assert.equal(after, 'after');
    await agent.close();
  });
});

describe('relay over stdio', () => {
  test('Airlock launches the tool server with its secrets and judges its tools', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const agent = await gw.client('local', 'agent');
    const names = (await agent.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('env_has') && names.includes('echo'), names.join());

    assert.equal(
      textOf(await agent.callTool({ name: 'env_has', arguments: { name: 'STDIO_SECRET' } })),
      'STDIO_SECRET is set',
    );
    // Trusted annotations: echo says it is read-only, so "reads are free" allows it.
    assert.equal(
      textOf(await agent.callTool({ name: 'echo', arguments: { text: 'via stdio' } })),
      'via stdio',
    );

    // write_file says it is not read-only: a write, which falls to the connection's retry review.
    const first = await agent.callTool({ name: 'write_file', arguments: { path: '/srv/x', content: 'y' } });
    assert.equal((first as ToolResult).isError, true);
    assert.match(textOf(first), /approval required: request \d+/);
    const request = await pendingRequest('agent', '/srv/x');
    await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    const again = await agent.callTool({ name: 'write_file', arguments: { path: '/srv/x', content: 'y' } });
    assert.equal(textOf(again), 'wrote 1 bytes to /srv/x');

    // A different argument is a different action: the approval does not cover it.
    const other = await agent.callTool({ name: 'write_file', arguments: { path: '/srv/z', content: 'y' } });
    assert.equal((other as ToolResult).isError, true);
    await agent.close();
  });
});

describe('aggregated endpoint /mcp', () => {
  let agent: Client;
  before(async () => {
    agent = await gw.client('', 'agent', { sampling: 'forty-two' });
  });
  after(() => agent?.close());

  test('lists the tools of every connection, prefixed, filtered by policy', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const names = (await agent.listTools()).tools.map((t) => t.name);
    for (const name of ['tools__echo', 'tools__write_file', 'local__echo', 'local__env_has'])
      assert.ok(names.includes(name), `${name} in ${names.join()}`);
    assert.ok(!names.includes('tools__drop_everything'));
    assert.equal(agent.getServerVersion()?.name, 'airlock');
  });

  test('routes calls by prefix and judges them against that connection', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    assert.equal(
      textOf(await agent.callTool({ name: 'tools__echo', arguments: { text: 'federated' } })),
      'federated',
    );
    assert.equal(
      textOf(await agent.callTool({ name: 'local__env_has', arguments: { name: 'STDIO_SECRET' } })),
      'STDIO_SECRET is set',
    );
    const denied = await agent.callTool({
      name: 'tools__write_file',
      arguments: { path: '/etc/hosts', content: 'x' },
    });
    assert.equal((denied as ToolResult).isError, true);
    assert.match(textOf(denied), /files under \/etc are managed by configuration management/);
    const unknown = await agent.callTool({ name: 'nowhere__echo', arguments: {} });
    assert.equal((unknown as ToolResult).isError, true);
    assert.match(textOf(unknown), /no tool nowhere__echo/);
  });

  test('held calls, progress and sampling work through the federation', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const progress: string[] = [];
    const call = agent.callTool(
      { name: 'tools__write_file', arguments: { path: '/srv/data/federated.txt', content: 'fed' } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? '') },
    );
    const request = await pendingRequest('agent', '/srv/data/federated.txt');
    assert.equal(request.connection, 'tools');
    assert.equal(request.attributes.calledAs, 'tools__write_file');
    await gw.api('POST', `/api/v1/requests/${request.id}/approve`, {}, 'alice');
    assert.equal(textOf(await call), 'wrote 3 bytes to /srv/data/federated.txt');
    assert.match(progress[0] ?? '', /waiting for approval/);

    const counted: string[] = [];
    await agent.callTool({ name: 'tools__count', arguments: { n: 2 } }, undefined, {
      onprogress: (p) => counted.push(p.message ?? ''),
    });
    assert.deepEqual(counted, ['step 1', 'step 2']);
    const asked = await agent.callTool({ name: 'tools__ask_model', arguments: { question: 'answer?' } });
    assert.equal(textOf(asked), 'the model said: forty-two');
  });

  test('a tool server that dies is restarted within the federation', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(
      agent.callTool({ name: 'local__crash', arguments: {} }),
      /stopped while handling this request/,
    );
    const after = await eventually('the restarted tool server', async () => {
      try {
        return textOf(await agent.callTool({ name: 'local__env_has', arguments: { name: 'STDIO_SECRET' } }));
      } catch {
        return undefined;
      }
    });
    assert.equal(after, 'STDIO_SECRET is set');
  });

  test('the federated session is recorded', { timeout: TEST_TIMEOUT }, async () => {
    const client = await gw.client('', 'agent');
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    await client.callTool({ name: 'tools__echo', arguments: { text: 'federated and recorded' } });
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    await client.close();
    const rec = await eventually('the sealed recording', async () => {
      const res = await gw.api<{ recordings: { id: string; session: string; status: string }[] }>(
        'GET',
        '/api/v1/recordings',
        undefined,
        'alice',
      );
      return res.body.recordings?.find((r) => r.session === sessionId && r.status === 'closed');
    });
    const content = await gw.api<string>('GET', `/api/v1/recordings/${rec.id}/content`, undefined, 'alice');
    assert.match(content.text, /"tool":"tools__echo"/);
    assert.match(content.text, /federated and recorded/);
  });
});
