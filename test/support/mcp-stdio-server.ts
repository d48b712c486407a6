/**
 * The test tool server over stdio, as Airlock launches it: `node --import tsx
 * test/support/mcp-stdio-server.ts`. Writes nothing to stdout but protocol messages.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { buildToolServer } from './mcp-tools.ts';

const server = buildToolServer('stdio-tools', { writes: [], statements: [] });
// Only here, never in-process: the way a tool server dies mid-call, for the supervision test.
server.registerTool('crash', { description: 'Exits the process mid-call' }, async () => {
  setTimeout(() => process.exit(3), 10);
  return new Promise<never>(() => {});
});
await server.connect(new StdioServerTransport());
process.stderr.write('stdio tool server ready\n');
// Like most stdio tool servers: when the client closes stdin, the session is over.
process.stdin.on('end', () => process.exit(0));
