/**
 * An Airlock gateway with MCP connections only: one to the test tool server over Streamable
 * HTTP (its credential by `${file:...}` reference) and one to the same tools over stdio (a
 * process Airlock launches, a secret in its environment). Principals as in ./gateway.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pino from 'pino';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { startGateway } from '../../src/server/gateway.ts';
import { PRINCIPALS, type PrincipalName } from './gateway.ts';
import type { HttpToolServer } from './mcp-http-server.ts';
import { findLeaks, leaksIn } from './secret-scan.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface McpTestGateway {
  readonly apiUrl: string;
  readonly tokens: Record<PrincipalName, string>;
  readonly gateway: Awaited<ReturnType<typeof startGateway>>;
  /** Every credential the gateway holds, by label: scanned for in its files at close. */
  readonly secrets: Readonly<Record<string, string>>;
  /** An SDK client connected to /mcp/CONNECTION (or to /mcp for '') as `who` (or with a raw token). */
  client(connection: string, who: PrincipalName | { token: string }, opts?: ClientOptions): Promise<Client>;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    as?: PrincipalName,
  ): Promise<{ status: number; body: T; text: string }>;
  close(): Promise<void>;
}

export interface ClientOptions {
  /** Answers sampling/createMessage with this text. */
  readonly sampling?: string;
  /** Answers elicitation/create (the person at the keyboard) from the request's message. */
  readonly elicit?: (message: string) => boolean;
}

export async function startMcpTestGateway(http: HttpToolServer, rules: string): Promise<McpTestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-mcp-'));
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const tokens = {} as Record<PrincipalName, string>;
  const identities: string[] = [];
  for (const [name, p] of Object.entries(PRINCIPALS) as [
    PrincipalName,
    (typeof PRINCIPALS)[PrincipalName],
  ][]) {
    tokens[name] = `alk_test_${name}_${randomBytes(24).toString('base64url')}`;
    writeFileSync(join(dir, 'secrets', `${name}.token`), `${tokens[name]}\n`, { mode: 0o600 });
    identities.push(
      `    - { name: ${name}, token: "\${file:./secrets/${name}.token}", kind: ${p.kind}, groups: [${p.groups.join(', ')}] }`,
    );
  }
  writeFileSync(join(dir, 'secrets', 'tools.token'), `${http.token}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'secrets', 'stdio.secret'), 'stdio-secret-value\n', { mode: 0o600 });
  const policyFile = join(dir, 'airlock.yaml');
  writeFileSync(
    policyFile,
    `listen:
  api: 127.0.0.1:0
  postgres: false
store: sqlite:./data/airlock.db

identities:
  tokens:
${identities.join('\n')}

connections:
  tools:
    type: mcp
    upstream:
      url: ${http.url}
      token: "\${file:./secrets/tools.token}"
    tools:
      echo: read
      read_file: read
      "count": read
      ask_model: read
      lookup_customer: read
      write_file: write
      execute_sql: { sql: sql }
    confirm: [read_file]
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: wait }
  local:
    type: mcp
    upstream:
      command: ${process.execPath}
      args: [--import, tsx, test/support/mcp-stdio-server.ts]
      cwd: ${ROOT}
      env: { STDIO_SECRET: "\${file:./secrets/stdio.secret}" }
    annotations: trust
    default: review
    review: { groups: [dba], approvals: 1, expires: 10m, hold: retry, window: 5m }
${rules}
`,
  );
  const policy = loadPolicyFile(policyFile);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    // Everything the gateway logs, at debug level, is scanned for secrets when the test closes it.
    gateway = await startGateway({
      policy,
      listen: { api: '127.0.0.1:0', postgres: false },
      logger: pino({ level: 'debug' }, pino.destination({ dest: join(dir, 'gateway.log'), sync: true })),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const apiUrl = gateway.api.url.replace(/\/$/, '');
  const clients: Client[] = [];
  const secrets: Record<string, string> = {
    ...Object.fromEntries(Object.entries(tokens).map(([n, t]) => [`${n}'s token`, t])),
    "the tool server's token": http.token,
    'the stdio secret': 'stdio-secret-value',
  };

  return {
    apiUrl,
    tokens,
    gateway,
    secrets,
    async client(connection, who, opts = {}) {
      const token = typeof who === 'string' ? tokens[who] : who.token;
      const client = new Client(
        { name: 'airlock-test-agent', version: '1.0.0' },
        {
          capabilities: {
            ...(opts.sampling === undefined ? {} : { sampling: {} }),
            ...(opts.elicit === undefined ? {} : { elicitation: {} }),
          },
        },
      );
      if (opts.elicit !== undefined) {
        const decide = opts.elicit;
        const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
        client.setRequestHandler(ElicitRequestSchema, async (req) =>
          decide(req.params.message) ? { action: 'accept', content: { allow: true } } : { action: 'decline' },
        );
      }
      if (opts.sampling !== undefined) {
        const answer = opts.sampling;
        const { CreateMessageRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
        client.setRequestHandler(CreateMessageRequestSchema, async () => ({
          role: 'assistant',
          content: { type: 'text', text: answer },
          model: 'test-model',
        }));
      }
      const transport = new StreamableHTTPClientTransport(
        new URL(connection === '' ? `${apiUrl}/mcp` : `${apiUrl}/mcp/${connection}`),
        {
          requestInit: { headers: { authorization: `Bearer ${token}` } },
        },
      );
      await client.connect(transport);
      clients.push(client);
      return client;
    },
    async api<T>(method: string, path: string, body?: unknown, as?: PrincipalName) {
      const headers: Record<string, string> = {};
      if (as) headers.authorization = `Bearer ${tokens[as]}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(apiUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      const leaked = leaksIn(text, secrets);
      if (leaked.length > 0)
        throw new Error(`${method} ${path} answered with a secret in it: ${leaked.join(', ')}`);
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON
      }
      return { status: res.status, body: parsed as T, text };
    },
    async close() {
      // End each session first (DELETE), as a well-behaved client does: a client that only drops
      // its streams reconnects its GET stream while the gateway is closing.
      await Promise.all(
        clients.map(async (c) => {
          await (c.transport as StreamableHTTPClientTransport | undefined)
            ?.terminateSession()
            .catch(() => {});
          await c.close().catch(() => {});
        }),
      );
      try {
        await gateway.close();
        const leaks = findLeaks(dir, secrets, (path) => path === join(dir, 'secrets') || path === policyFile);
        if (leaks.length > 0)
          throw new Error(
            `secrets leaked into the gateway's files: ${leaks.map((l) => `${l.secret} in ${l.where}`).join('; ')}`,
          );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
