/**
 * Hostile input on the live MCP endpoint (Streamable HTTP on the API port): malformed and random
 * JSON-RPC, wrong content types, bodies past the limit (announced and streamed), bodies split
 * and trickled, made-up and stolen session ids, batch abuse, and bytes that are not HTTP at all.
 * Every answer must be an HTTP error with a JSON-RPC error object (or a protocol-correct result),
 * never a 5xx and never a hang; a well-behaved SDK client calls a tool the whole time and keeps
 * being served; and at close no credential is in anything the gateway wrote or answered.
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import fc from 'fast-check';
import { type McpTestGateway, startMcpTestGateway } from './support/mcp-gateway.ts';
import { type HttpToolServer, startHttpToolServer } from './support/mcp-http-server.ts';
import { leaksIn } from './support/secret-scan.ts';

// Everything but reads is refused: a mutated body can be a valid request for a made-up method,
// which the connection's default (review) would hold for a reviewer, and this test needs every
// answer at once.
const RULES = `
rules:
  - { name: reads are free, connections: [tools], kinds: [read], effect: allow }
  - name: nothing else
    connections: [tools]
    kinds: [write, schema, privilege, admin, exec, session, transfer, unknown]
    effect: deny
    reason: only reads in this test
`;
/** What the test gateway allows a message to be (the endpoint's default). */
const BODY_LIMIT = 4 * 1024 * 1024;

let upstream: HttpToolServer;
let gw: McpTestGateway;
let good: Client;
let goodSession: string;
let port: number;
/** The well-behaved client's calls while the hostile ones run. */
const served = { ok: 0, failed: [] as string[] };
let stopWellBehaved: (() => Promise<void>) | undefined;

const TOOL_CALL = {
  jsonrpc: '2.0',
  id: 7,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hi' } },
};

before(async () => {
  upstream = await startHttpToolServer();
  gw = await startMcpTestGateway(upstream, RULES);
  port = Number(new URL(gw.apiUrl).port);
  good = await gw.client('tools', 'agent');
  goodSession = (good.transport as StreamableHTTPClientTransport).sessionId!;
  // A second, well-behaved client calls a tool in a loop for as long as the hostile tests run.
  const other = await gw.client('tools', 'bob');
  let running = true;
  const loop = (async () => {
    let i = 0;
    while (running) {
      i++;
      try {
        const r = (await other.callTool({ name: 'echo', arguments: { text: `still here ${i}` } })) as {
          content: { text?: string }[];
        };
        if (r.content[0]?.text?.includes(`still here ${i}`)) served.ok++;
        else served.failed.push(JSON.stringify(r).slice(0, 200));
      } catch (err) {
        served.failed.push(String(err));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  stopWellBehaved = async () => {
    running = false;
    await loop;
  };
});

after(async () => {
  await stopWellBehaved?.();
  await gw?.close();
  await upstream?.close();
});

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

function noSecrets(a: Answer, what: string): void {
  const leaked = leaksIn(a.text, gw.secrets);
  assert.deepEqual(leaked, [], `${what}: the answer holds ${leaked.join(', ')}`);
}

async function post(
  body: string | Buffer,
  headers: Record<string, string> = {},
  opts: { session?: string | false; token?: string } = {},
): Promise<Answer> {
  const session = opts.session === undefined ? goodSession : opts.session;
  const res = await fetch(`${gw.apiUrl}/mcp/tools`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${opts.token ?? gw.tokens.agent}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(session === false ? {} : { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }),
      ...headers,
    },
    body: typeof body === 'string' ? body : new Uint8Array(body),
    signal: AbortSignal.timeout(30_000),
  });
  const a = {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
  noSecrets(a, 'POST /mcp/tools');
  return a;
}

/** An HTTP error whose body is one JSON-RPC error object with a null id. */
function assertRpcError(
  a: Answer,
  status: number | number[],
  rpcCode?: number,
): { message: string; data?: { code?: string } } {
  const statuses = Array.isArray(status) ? status : [status];
  assert.ok(
    statuses.includes(a.status),
    `status ${a.status}, wanted ${statuses.join(' or ')}: ${a.text.slice(0, 300)}`,
  );
  assert.match(a.contentType, /^application\/json/);
  const body = JSON.parse(a.text) as {
    jsonrpc: string;
    id: unknown;
    error: { code: number; message: string };
  };
  assert.equal(body.jsonrpc, '2.0');
  assert.equal(body.id, null);
  assert.ok(Number.isInteger(body.error.code), a.text);
  assert.ok(body.error.message.length > 0);
  if (rpcCode !== undefined) assert.equal(body.error.code, rpcCode, a.text);
  return body.error as { message: string; data?: { code?: string } };
}

/**
 * Any answer to a hostile body: never a 5xx; JSON bodies are JSON-RPC; an event stream carries
 * only JSON-RPC messages.
 */
function assertProtocolAnswer(a: Answer, what: string): void {
  assert.ok(a.status < 500, `${what}: ${a.status} ${a.text.slice(0, 300)}`);
  if (a.status === 202) return;
  if (/^text\/event-stream/.test(a.contentType)) {
    for (const line of a.text.split('\n'))
      if (line.startsWith('data: '))
        assert.equal((JSON.parse(line.slice(6)) as { jsonrpc: string }).jsonrpc, '2.0');
    return;
  }
  assert.match(a.contentType, /^application\/json/, `${what}: ${a.contentType}`);
  const body = JSON.parse(a.text) as unknown;
  for (const m of Array.isArray(body) ? body : [body])
    assert.equal((m as { jsonrpc?: string }).jsonrpc, '2.0', what);
}

/**
 * Writes `parts` to a raw connection (pausing `gapMs` between them) and reads until the server
 * closes, what came back matches `until`, or `limitMs` passes. Resolves with what came back and whether the server closed.
 */
function raw(
  parts: readonly Buffer[],
  gapMs: number,
  limitMs = 20_000,
  until?: RegExp,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text: Buffer.concat(got).toString('latin1'), closed });
    };
    const timer = setTimeout(done, limitMs);
    s.on('data', (d) => {
      got.push(d);
      if (until?.test(Buffer.concat(got).toString('latin1'))) done();
    });
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
      done();
    });
    s.on('connect', async () => {
      for (const p of parts) {
        if (s.destroyed || closed) return;
        s.write(p);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

function request(body: Buffer, extra = ''): Buffer {
  return Buffer.concat([
    Buffer.from(
      `POST /mcp/tools HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${gw.tokens.agent}\r\n` +
        `mcp-session-id: ${goodSession}\r\nmcp-protocol-version: 2025-06-18\r\n` +
        `content-type: application/json\r\naccept: application/json, text/event-stream\r\n` +
        `content-length: ${body.length}\r\nconnection: close\r\n${extra}\r\n`,
    ),
    body,
  ]);
}

function splitAt(bytes: Buffer, points: readonly number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of cuts) {
    out.push(bytes.subarray(at, c));
    at = c;
  }
  out.push(bytes.subarray(at));
  return out.filter((b) => b.length > 0);
}

describe('MCP endpoint under hostile input', { timeout: 10 * 60_000 }, () => {
  test('malformed JSON and non-JSON-RPC bodies get JSON-RPC errors', { timeout: 120_000 }, async () => {
    for (const body of ['{"jsonrpc":', '', '{', 'nul', '\u0000', '{"a":1}}', "{'jsonrpc':'2.0'}"]) {
      for (const session of [goodSession, false] as const) {
        const a = await post(body, {}, { session });
        const e = assertRpcError(a, 400);
        assert.doesNotMatch(e.message, /undefined|\[object/);
      }
    }
    // Valid JSON that is not a JSON-RPC message.
    for (const body of [
      '42',
      'null',
      '"x"',
      '{}',
      '{"jsonrpc":"1.0","id":1,"method":"ping"}',
      '{"jsonrpc":"2.0","id":1}',
    ])
      assertRpcError(await post(body), 400);
    // Parameters of the wrong shape reach the session and get a JSON-RPC error there.
    const a = await post(
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: 5 } }),
    );
    assertProtocolAnswer(a, 'tools/call with arguments 5');
    assert.match(a.text, /"error"/);
    // A valid request for a method MCP does not define (here a mangled " tools/call") is not
    // relayed as if harmless: it is judged as unknown and refused by policy, with a reason.
    const odd = await post(JSON.stringify({ ...TOOL_CALL, method: ' tools/call' }));
    assertProtocolAnswer(odd, 'a made-up method');
    assert.match(odd.text, /"error"/);
    assert.match(odd.text, /only reads in this test/);
    assert.doesNotMatch(odd.text, /still here|"content"/);
  });

  test('random and mutated bodies never get a 5xx', { timeout: 300_000 }, async () => {
    const valid = JSON.stringify(TOOL_CALL);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
          fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(s)),
          fc
            .tuple(fc.nat(valid.length), fc.nat(valid.length), fc.string({ maxLength: 6 }))
            .map(([a, b, ins]) =>
              Buffer.from(valid.slice(0, Math.min(a, b)) + ins + valid.slice(Math.max(a, b))),
            ),
          fc.json().map((j) => Buffer.from(j)),
        ),
        fc.boolean(),
        async (body, withSession) => {
          const a = await post(body, {}, { session: withSession ? goodSession : false });
          assertProtocolAnswer(a, `body ${body.toString('hex').slice(0, 80)}`);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('wrong content types and accept headers are refused with JSON-RPC errors', {
    timeout: 60_000,
  }, async () => {
    const body = JSON.stringify(TOOL_CALL);
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      '',
    ])
      assertRpcError(await post(body, { 'content-type': type }), 415);
    // A caller that cannot take JSON or an event stream back is told so (406).
    assertRpcError(await post(body, { accept: 'text/html' }), 406);
  });

  test('bodies past the limit are refused with 413, announced or streamed', {
    timeout: 120_000,
  }, async () => {
    const big = Buffer.alloc(BODY_LIMIT + 1024, 0x20);
    const e = assertRpcError(await post(big), 413);
    assert.equal(e.data?.code, 'AIRLOCK_E_MESSAGE_TOO_LARGE');
    assert.match(e.message, /larger than 4194304 bytes/);

    // Streamed without a length (chunked), 1 MiB at a time, up to 16 MiB: the gateway stops
    // reading at the limit and answers; it never takes the whole body.
    const head = Buffer.from(
      `POST /mcp/tools HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${gw.tokens.agent}\r\n` +
        `mcp-session-id: ${goodSession}\r\ncontent-type: application/json\r\n` +
        'accept: application/json, text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    const mib = Buffer.alloc(1024 * 1024, 0x20);
    const chunk = Buffer.concat([Buffer.from(`${mib.length.toString(16)}\r\n`), mib, Buffer.from('\r\n')]);
    const r = await raw([head, ...Array.from({ length: 16 }, () => chunk)], 20);
    assert.match(r.text, /^HTTP\/1\.1 413 /, r.text.slice(0, 200));
    assert.match(r.text, /AIRLOCK_E_MESSAGE_TOO_LARGE/);
    assert.ok(r.closed, 'the connection of an oversized body is closed');
  });

  test('a valid request split anywhere and trickled in is served', { timeout: 180_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), async (points) => {
        const msg = Buffer.from(
          JSON.stringify({ ...TOOL_CALL, params: { name: 'echo', arguments: { text: 'trickled' } } }),
        );
        // An answer on an event stream ends with its message; the connection may stay open.
        const r = await raw(splitAt(request(msg), points), 15, 20_000, /trickled[^\n]*\n/);
        assert.match(r.text, /^HTTP\/1\.1 200 /, r.text.slice(0, 300));
        assert.match(r.text, /trickled/);
        noSecrets({ status: 200, contentType: '', text: r.text }, 'trickled request');
      }),
      { numRuns: 15 },
    );
    // A body that stops half way (the caller goes quiet, then leaves) ends nothing else.
    const msg = Buffer.from(JSON.stringify(TOOL_CALL));
    const half = request(msg).subarray(0, request(msg).length - 10);
    const r = await raw([half], 0, 1500);
    assert.equal(r.text, '', 'nothing is answered to a body that never ends');
    const list = await good.listTools();
    assert.ok(list.tools.length > 0);
  });

  test("made-up, ended and other principals' session ids answer 404 like a missing session", {
    timeout: 120_000,
  }, async () => {
    const bodies = [JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })];
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^[\x21-\x7e]{1,80}$/), async (sid) => {
        fc.pre(sid !== goodSession);
        const e = assertRpcError(await post(bodies[0]!, {}, { session: sid }), 404, -32001);
        assert.ok(!e.message.includes(sid) || sid.length < 4, 'the answer echoes the session id');
      }),
      { numRuns: 40 },
    );
    // Alice's session with the agent's token is no session of the agent's.
    const alice = await gw.client('tools', 'alice');
    const aliceSession = (alice.transport as StreamableHTTPClientTransport).sessionId!;
    assertRpcError(await post(bodies[0]!, {}, { session: aliceSession }), 404, -32001);
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(`${gw.apiUrl}/mcp/tools`, {
        method,
        headers: {
          authorization: `Bearer ${gw.tokens.agent}`,
          'mcp-session-id': aliceSession,
          accept: 'text/event-stream',
        },
        signal: AbortSignal.timeout(30_000),
      });
      assertRpcError(
        { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() },
        404,
      );
    }
    assert.ok((await alice.listTools()).tools.length > 0, "alice's session is untouched");
    // An ended session stays ended.
    await (alice.transport as StreamableHTTPClientTransport).terminateSession();
    assertRpcError(
      await post(bodies[0]!, {}, { session: aliceSession, token: gw.tokens.alice }),
      404,
      -32001,
    );
    // No token, or a wrong one, on a real session id: 401, and nothing about the session.
    const e = assertRpcError(await post(bodies[0]!, {}, { token: 'alk_test_nobody_0123456789abcdef' }), 401);
    assert.doesNotMatch(e.message, new RegExp(goodSession));
  });

  test('batch abuse gets JSON-RPC errors or per-message answers', { timeout: 180_000 }, async () => {
    const ping = (id: unknown) => ({ jsonrpc: '2.0', id, method: 'ping' });
    // The transport takes at most 100 messages per batch.
    for (const n of [101, 1000, 20_000])
      assertRpcError(await post(JSON.stringify(Array.from({ length: n }, (_, i) => ping(i)))), 400, -32600);
    for (const body of [
      '[[[]]]',
      '[1,2,3]',
      '[null]',
      '["ping"]',
      `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
    ])
      assertRpcError(await post(body), 400);
    // An empty batch and a batch of notifications need no answer.
    assert.equal((await post('[]')).status, 202);
    assert.equal(
      (await post(JSON.stringify([{ jsonrpc: '2.0', method: 'notifications/progress' }]))).status,
      202,
    );
    // A second initialize inside a session is refused; so is one riding in a batch.
    const init = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    assertRpcError(await post(JSON.stringify(init)), 400, -32600);
    assertRpcError(await post(JSON.stringify([init, ping(2)])), 400);
    // Duplicate ids and a full batch of tool calls: every call gets its own answer.
    const calls = Array.from({ length: 100 }, (_, i) => ({ ...TOOL_CALL, id: i % 3 }));
    const a = await post(JSON.stringify(calls));
    assertProtocolAnswer(a, 'a batch of 100 tool calls');
    assert.equal(a.status, 200);
    // A batch with a valid call and junk: the call is answered or the whole batch is refused.
    assertProtocolAnswer(await post(JSON.stringify([TOOL_CALL, { junk: true }, 5])), 'mixed batch');
  });

  test('bytes that are not HTTP never get a 5xx or a hang', { timeout: 180_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
          fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }).map((s) => Buffer.from(`${s}\r\n\r\n`)),
          fc
            .constantFrom(
              'POST /mcp/tools HTTP/1.1\r\ncontent-length: -1\r\n\r\n',
              'POST /mcp/tools HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n',
              'POST /mcp/tools HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
              'GET /mcp/tools HTTP/9.9\r\n\r\n',
              `POST /mcp/tools HTTP/1.1\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`,
            )
            .map((s) => Buffer.from(s)),
        ),
        fc.array(fc.nat(), { maxLength: 5 }),
        async (bytes, points) => {
          const r = await raw(splitAt(bytes, points), 5, 15_000);
          // The server answers an error or nothing (it waits for the rest of a request that
          // could still be valid) — and never a 5xx.
          assert.doesNotMatch(r.text, /^HTTP\/1\.1 5\d\d /, r.text.slice(0, 200));
          if (r.text.length > 0) assert.match(r.text, /^HTTP\/1\.1 [1-4]\d\d /, r.text.slice(0, 200));
        },
      ),
      { numRuns: 60 },
    );
  });

  test('the well-behaved clients were served throughout', { timeout: 60_000 }, async () => {
    const r = (await good.callTool({ name: 'echo', arguments: { text: 'after all that' } })) as {
      content: { text?: string }[];
    };
    assert.match(r.content[0]?.text ?? '', /after all that/);
    await stopWellBehaved?.();
    stopWellBehaved = undefined;
    assert.deepEqual(served.failed, []);
    assert.ok(served.ok > 0, 'the other client made no call');
  });
});
