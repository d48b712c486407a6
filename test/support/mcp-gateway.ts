/**
 * An Airlock gateway with MCP connections only: one to the test tool server over Streamable
 * HTTP (its credential by `${file:...}` reference) and one to the same tools over stdio (a
 * process Airlock launches, a secret in its environment). Principals as in ./gateway.ts.
 */
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { startGateway } from '../../src/server/gateway.ts';
import type { HttpToolServer } from './mcp-http-server.ts';
import { apiUrlOf, makePolicyDir, PRINCIPALS, type PrincipalName } from './policy-dir.ts';

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

/** What a tools/call answers, as far as the tests read it. */
export type ToolResult = { content: { type: string; text?: string }[]; isError?: boolean };

/** The text parts of a tool result, one a line. */
export function textOf(result: unknown): string {
  return (result as ToolResult).content.map((c) => c.text ?? '').join('\n');
}

/** Connects `client` (by default a plain agent) to the MCP endpoint at `url` with a bearer token. */
export async function connectMcpClient(
  url: string,
  token: string,
  client = new Client({ name: 'coding-agent', version: '1.0.0' }),
): Promise<Client> {
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

/**
 * Ends the client's session (DELETE) and then closes it, as a well-behaved client does: one that
 * only drops its streams reconnects its GET stream while the gateway is closing. A gateway that
 * is already gone is no error here.
 */
export async function closeMcpClient(client: Client | undefined): Promise<void> {
  await (client?.transport as StreamableHTTPClientTransport | undefined)?.terminateSession().catch(() => {});
  await client?.close().catch(() => {});
}

export interface ClientOptions {
  /** Answers sampling/createMessage with this text. */
  readonly sampling?: string;
  /** Answers elicitation/create (the person at the keyboard) from the request's message. */
  readonly elicit?: (message: string) => boolean;
}

export async function startMcpTestGateway(http: HttpToolServer, rules: string): Promise<McpTestGateway> {
  const files = makePolicyDir('airlock-mcp-', PRINCIPALS);
  files.secret('tools.token', `${http.token}\n`, "the tool server's token");
  files.secret('stdio.secret', 'stdio-secret-value\n', 'the stdio secret');
  files.writePolicy(
    { listen: [] },
    `connections:
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
${rules}`,
  );
  // Everything the gateway logs, at debug level, is scanned for secrets when the test closes it.
  const gateway = await files.start({ debugLog: true, listen: { api: '127.0.0.1:0', postgres: false } });
  const apiUrl = apiUrlOf(gateway);
  const { tokens, secrets } = files;
  const clients: Client[] = [];

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
      await connectMcpClient(
        connection === '' ? `${apiUrl}/mcp` : `${apiUrl}/mcp/${connection}`,
        token,
        client,
      );
      clients.push(client);
      return client;
    },
    api: files.api(gateway, true),
    async close() {
      await Promise.all(clients.map(closeMcpClient));
      await files.close(gateway, true);
    },
  };
}
