/**
 * The test tool server over stdio, as Airlock launches it: `node --import tsx
 * test/support/mcp-stdio-server.ts`. Writes nothing to stdout but protocol messages.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { buildToolServer } from './mcp-tools.ts';

const server = buildToolServer('stdio-tools', { writes: [], statements: [] });
await server.connect(new StdioServerTransport());
process.stderr.write('stdio tool server ready\n');
// Like most stdio tool servers: when the client closes stdin, the session is over.
process.stdin.on('end', () => process.exit(0));
