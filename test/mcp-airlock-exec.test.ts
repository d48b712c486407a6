/**
 * Airlock's own MCP tools `exec` and `http_request`, driven by the MCP SDK client as an agent:
 * `exec` goes through Airlock's own SSH listener to a private sshd, `http_request` through
 * Airlock's own HTTP listener to a real HTTP service, each as the caller and so under the same
 * gate, holds, approvals and audit as `ssh` and `curl` users.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import Database from 'better-sqlite3';
import type { requestJson } from '../src/server/api.ts';
import type { Gateway } from '../src/server/gateway.ts';
import { pendingRequestWhere } from './support/eventually.ts';
import { type HttpUpstream, startHttpUpstream } from './support/http-upstream.ts';
import { type KubeApiServer, startKubeApiServer } from './support/kube-apiserver.ts';
import { closeMcpClient, connectMcpClient, type ToolResult, textOf } from './support/mcp-gateway.ts';
import {
  apiUrlOf,
  makePolicyDir,
  type PolicyDir,
  PRINCIPALS,
  type PrincipalName,
} from './support/policy-dir.ts';
import { stopAll } from './support/processes.ts';
import { sshConnection } from './support/ssh-gateway.ts';
import { type PrivateSshd, startSshd } from './support/sshd.ts';

const TEST_TIMEOUT = 120_000;
type RequestView = ReturnType<typeof requestJson>;

let sshd: PrivateSshd;
let service: HttpUpstream;
let cluster: KubeApiServer;
let files: PolicyDir<PrincipalName>;
let gateway: Gateway;
let agent: Client;

before(async () => {
  sshd = await startSshd();
  service = await startHttpUpstream();
  cluster = await startKubeApiServer('cluster-secret-token');
  cluster.addPod('prod', 'web-1');
  files = makePolicyDir('airlock-mcp-exec-', PRINCIPALS);
  files.secret('host.key', sshd.clientKey);
  files.secret('api.token', 'upstream-api-secret\n');
  files.secret('cluster.token', 'cluster-secret-token\n');
  files.writePolicy(
    { listen: ['ssh', 'http'] },
    `connections:
${sshConnection(sshd)}
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
  api:
    type: http
    upstream: { url: "${service.url}/svc" }
    credential: { type: bearer, token: "\${file:./secrets/api.token}" }
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
  cluster:
    type: kubernetes
    upstream: { url: "${cluster.url}" }
    credential: { type: bearer, token: "\${file:./secrets/cluster.token}" }
    default: review

rules:
  - name: cluster reads are free
    connections: [cluster]
    kinds: [read]
    effect: allow
  - name: nothing is deleted in prod
    connections: [cluster]
    verbs: [delete]
    namespaces: [prod]
    effect: deny
    reason: prod workloads are changed through the deploy pipeline
  - name: harmless commands
    connections: [web]
    commands: ["echo *", "sh -c *", "cat *"]
    effect: allow
  - name: no recursive deletes
    commands: ["rm -rf *"]
    effect: deny
    reason: recursive deletes are not allowed on production hosts
  - name: reads are free
    connections: [api]
    kinds: [read]
    effect: allow`,
  );
  gateway = await files.start({ listen: { api: '127.0.0.1:0', postgres: false } });
  agent = await connectMcpClient(`${apiUrlOf(gateway)}/mcp/airlock`, files.tokens.agent);
});

after(async () => {
  await closeMcpClient(agent);
  try {
    if (gateway) await files.close(gateway);
    else files?.remove();
  } finally {
    await service?.close();
    await cluster?.close();
    await sshd?.stop();
    await stopAll();
  }
});

/** The API as alice, a reviewer. */
function api<T>(method: string, path: string, body?: unknown) {
  return files.api(gateway)<T>(method, path, body, 'alice');
}

function pendingRequest(connection: string, text: string): Promise<RequestView> {
  return pendingRequestWhere(
    files.api(gateway),
    `a pending request on ${connection} for ${text}`,
    (r: RequestView) =>
      r.principal.name === 'agent' && r.connection === connection && r.summary.includes(text),
    50,
  );
}

describe('exec over MCP', () => {
  test('the tools are listed, and list_connections says which tool reaches each connection', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const names = (await agent.listTools()).tools.map((t) => t.name);
    for (const n of ['exec', 'http_request', 'query', 'list_connections'])
      assert.ok(names.includes(n), names.join(', '));
    const list = JSON.parse(textOf(await agent.callTool({ name: 'list_connections', arguments: {} }))) as {
      name: string;
      use: string;
    }[];
    assert.match(list.find((c) => c.name === 'web')?.use ?? '', /exec tool/);
    assert.match(list.find((c) => c.name === 'api')?.use ?? '', /http_request tool/);
  });

  test('an allowed command returns its stdout, stderr and exit status', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const ok = await agent.callTool({
      name: 'exec',
      arguments: { connection: 'web', command: 'echo hello' },
    });
    assert.notEqual((ok as ToolResult).isError, true, textOf(ok));
    assert.deepEqual(JSON.parse(textOf(ok)), { exitStatus: 0, stdout: 'hello\n', stderr: '' });

    const failing = await agent.callTool({
      name: 'exec',
      arguments: { connection: 'web', command: "sh -c 'printf out; printf err >&2; exit 3'" },
    });
    assert.equal((failing as ToolResult).isError, true);
    assert.deepEqual(JSON.parse(textOf(failing)), { exitStatus: 3, stdout: 'out', stderr: 'err' });

    // stderr alone, without a newline, is the command's own output, byte for byte.
    const stderrOnly = await agent.callTool({
      name: 'exec',
      arguments: { connection: 'web', command: 'sh -c \'printf "a\\r\\nb" >&2; exit 2\'' },
    });
    assert.deepEqual(JSON.parse(textOf(stderrOnly)), { exitStatus: 2, stdout: '', stderr: 'a\r\nb' });
  });

  test('a held command reports progress and runs once approved through the API', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const marker = join(sshd.dir, `touched-${randomBytes(4).toString('hex')}`);
    const progress: string[] = [];
    const call = agent.callTool(
      { name: 'exec', arguments: { connection: 'web', command: `touch ${marker}` } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? ''), resetTimeoutOnProgress: true },
    );
    const request = await pendingRequest('web', 'touch');
    assert.equal(request.protocol, 'ssh');
    const approved = await api('POST', `/api/v1/requests/${request.id}/approve`, {});
    assert.equal(approved.status, 200);
    const result = await call;
    assert.notEqual((result as ToolResult).isError, true, textOf(result));
    const body = JSON.parse(textOf(result)) as { exitStatus: number; airlock: string[] };
    assert.equal(body.exitStatus, 0);
    assert.ok(
      progress.some((p) => p.includes(`waiting for approval: request ${request.id}`)),
      progress.join(' | '),
    );
    const check = await agent.callTool({
      name: 'exec',
      arguments: { connection: 'web', command: `cat ${marker}` },
    });
    assert.notEqual((check as ToolResult).isError, true, textOf(check));
  });

  test('a denied command returns the reason as a tool error', { timeout: TEST_TIMEOUT }, async () => {
    const result = await agent.callTool({
      name: 'exec',
      arguments: { connection: 'web', command: 'rm -rf /srv/app' },
    });
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /recursive deletes are not allowed on production hosts/);
  });

  test('the exec is audited as the agent on the SSH connection', { timeout: TEST_TIMEOUT }, async () => {
    const db = new Database(files.storeFile, { readonly: true });
    try {
      const rows = db.prepare("SELECT type, data FROM audit WHERE data LIKE '%echo hello%'").all() as {
        type: string;
        data: string;
      }[];
      assert.ok(rows.length > 0, 'an audit event names the command');
      const data = JSON.parse(rows[0]!.data) as { protocol: string; principal: { name: string } };
      assert.equal(data.protocol, 'ssh');
      assert.equal(data.principal.name, 'agent');
    } finally {
      db.close();
    }
  });

  test('a connection that is not SSH is refused with the ones to use', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const result = await agent.callTool({
      name: 'exec',
      arguments: { connection: 'api', command: 'echo hi' },
    });
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /no ssh connection "api"; use one of: web/);
  });
});

describe('http_request over MCP', () => {
  test('a GET is allowed and returns the service answer; the service sees the held credential', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const result = await agent.callTool({
      name: 'http_request',
      arguments: { connection: 'api', method: 'GET', path: '/orders?limit=2' },
    });
    assert.notEqual((result as ToolResult).isError, true, textOf(result));
    const text = textOf(result);
    assert.match(text, /^HTTP 200/);
    assert.match(text, /"url":"\/svc\/orders\?limit=2"/);
    const seen = service.seen.at(-1);
    assert.equal(seen?.headers.authorization, 'Bearer upstream-api-secret');
    assert.doesNotMatch(text, /upstream-api-secret/);
  });

  test('a DELETE is held and reaches the service once approved through the API', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const seenBefore = service.seen.length;
    const progress: string[] = [];
    const call = agent.callTool(
      { name: 'http_request', arguments: { connection: 'api', method: 'DELETE', path: '/orders/7' } },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? ''), resetTimeoutOnProgress: true },
    );
    const request = await pendingRequest('api', '/orders/7');
    assert.equal(request.protocol, 'http');
    assert.equal(service.seen.length, seenBefore, 'nothing reaches the service while held');
    const deadline = Date.now() + 30_000;
    while (!progress.some((p) => p.includes(`waiting for approval: request ${request.id}`))) {
      assert.ok(Date.now() < deadline, `no progress names request ${request.id}: ${progress.join(' | ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const approved = await api('POST', `/api/v1/requests/${request.id}/approve`, {});
    assert.equal(approved.status, 200);
    const result = await call;
    assert.notEqual((result as ToolResult).isError, true, textOf(result));
    assert.match(textOf(result), /^HTTP 200/);
    assert.equal(service.seen.at(-1)?.method, 'DELETE');
    assert.equal(service.seen.at(-1)?.url, '/svc/orders/7');
  });

  test('a denied DELETE returns the reason; a path cannot leave its connection', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const call = agent.callTool({
      name: 'http_request',
      arguments: { connection: 'api', method: 'DELETE', path: '/orders/8' },
    });
    const request = await pendingRequest('api', '/orders/8');
    const denied = await api('POST', `/api/v1/requests/${request.id}/deny`, { reason: 'order 8 is audited' });
    assert.equal(denied.status, 200);
    const result = await call;
    assert.equal((result as ToolResult).isError, true);
    assert.match(textOf(result), /order 8 is audited/);

    const leaving = await agent.callTool({
      name: 'http_request',
      arguments: { connection: 'api', method: 'GET', path: '/../../kubernetes/other/api' },
    });
    assert.equal((leaving as ToolResult).isError, true);
    assert.match(textOf(leaving), /leaves connection "api"/);
    const header = await agent.callTool({
      name: 'http_request',
      arguments: { connection: 'api', method: 'GET', path: '/x', headers: { Authorization: 'Bearer x' } },
    });
    assert.equal((header as ToolResult).isError, true);
  });
});

describe('http_request on a Kubernetes connection', () => {
  test('a pod list passes with the cluster credential added; a delete in prod is refused with the reason', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const list = await agent.callTool({
      name: 'http_request',
      arguments: { connection: 'cluster', method: 'GET', path: '/api/v1/namespaces/prod/pods' },
    });
    assert.notEqual((list as ToolResult).isError, true, textOf(list));
    assert.match(textOf(list), /"web-1"/);
    assert.equal(cluster.seen.at(-1)?.authorized, true);
    const seen = cluster.seen.length;
    const remove = await agent.callTool({
      name: 'http_request',
      arguments: { connection: 'cluster', method: 'DELETE', path: '/api/v1/namespaces/prod/pods/web-1' },
    });
    assert.equal((remove as ToolResult).isError, true);
    assert.match(textOf(remove), /prod workloads are changed through the deploy pipeline/);
    assert.equal(cluster.seen.length, seen, 'the refused delete never reached the cluster');
  });
});
