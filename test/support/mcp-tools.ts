/**
 * The tool server the MCP tests put behind Airlock, built with the MCP SDK: a few tools whose
 * names and arguments the test policies judge, a tool that reports progress, one that asks the
 * caller's model (sampling), a resource and a prompt. Side effects are kept in `effects`, so a
 * test can tell whether a call actually reached the server.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CreateMessageResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export interface ToolEffects {
  /** Every write_file call the server ran, in order. */
  readonly writes: { path: string; content: string }[];
  /** Every execute_sql call the server ran. */
  readonly statements: string[];
}

export function buildToolServer(name: string, effects: ToolEffects): McpServer {
  const server = new McpServer({ name, version: '1.0.0' }, { capabilities: { logging: {} } });

  server.registerTool(
    'echo',
    {
      description: 'Returns its text',
      inputSchema: { text: z.string() },
      annotations: { readOnlyHint: true },
    },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );

  server.registerTool(
    'read_file',
    { description: 'Reads a file', inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } },
    async ({ path }) => ({ content: [{ type: 'text', text: `contents of ${path}` }] }),
  );

  server.registerTool(
    'write_file',
    {
      description: 'Writes a file',
      inputSchema: { path: z.string(), content: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: true },
    },
    async ({ path, content }) => {
      effects.writes.push({ path, content });
      return { content: [{ type: 'text', text: `wrote ${content.length} bytes to ${path}` }] };
    },
  );

  server.registerTool(
    'execute_sql',
    { description: 'Runs SQL', inputSchema: { sql: z.string() } },
    async ({ sql }) => {
      effects.statements.push(sql);
      return { content: [{ type: 'text', text: `ran: ${sql}` }] };
    },
  );

  server.registerTool(
    'drop_everything',
    { description: 'Deletes all data', inputSchema: { confirm: z.boolean() } },
    async () => ({ content: [{ type: 'text', text: 'everything is gone' }] }),
  );

  server.registerTool(
    'count',
    { description: 'Counts to n, reporting progress', inputSchema: { n: z.number().int().min(1).max(20) } },
    async ({ n }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= n; i++)
        if (token !== undefined)
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: n, message: `step ${i}` },
          });
      return { content: [{ type: 'text', text: `counted to ${n}` }] };
    },
  );

  server.registerTool(
    'ask_model',
    { description: "Asks the caller's model a question (sampling)", inputSchema: { question: z.string() } },
    async ({ question }, extra) => {
      const answer = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: { type: 'text', text: question } }], maxTokens: 50 },
        },
        CreateMessageResultSchema,
      );
      const text = answer.content.type === 'text' ? answer.content.text : '(not text)';
      return { content: [{ type: 'text', text: `the model said: ${text}` }] };
    },
  );

  server.registerTool(
    'lookup_customer',
    {
      description: 'Looks a customer up',
      inputSchema: { id: z.number().int() },
      outputSchema: { name: z.string(), email: z.string(), card_number: z.string() },
      annotations: { readOnlyHint: true },
    },
    async ({ id }) => {
      const customer = {
        name: `Customer ${id}`,
        email: `customer${id}@example.com`,
        card_number: '4111 1111 1111 1111',
      };
      return { content: [{ type: 'text', text: JSON.stringify(customer) }], structuredContent: customer };
    },
  );

  server.registerTool(
    'env_has',
    { description: 'Says whether an environment variable is set', inputSchema: { name: z.string() } },
    async ({ name: variable }) => ({
      content: [
        { type: 'text', text: process.env[variable] ? `${variable} is set` : `${variable} is not set` },
      ],
    }),
  );

  server.registerResource(
    'readme',
    'file:///readme.txt',
    { description: 'The readme', mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, text: 'hello from the readme' }] }),
  );

  server.registerPrompt(
    'greet',
    { description: 'A greeting', argsSchema: { who: z.string() } },
    ({ who }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Say hello to ${who}` } }] }),
  );

  return server;
}
