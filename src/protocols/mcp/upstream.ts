/**
 * The transport to a connection's tool server, one per caller session: Streamable HTTP with the
 * credential Airlock holds, or a child process Airlock launches with the secrets in its
 * environment. Secrets are read at connect time (a rotated file needs no restart) and never
 * logged.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/transports
 */
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Logger } from 'pino';
import type { McpConnection } from '../../core/policy/connections/mcp.ts';
import { ownSignalFetch } from './own-signal-fetch.ts';

/** Lines of a tool server's stderr kept per chunk in the log: enough to debug, bounded. */
const STDERR_LINE_MAX = 500;

export interface UpstreamTransport {
  readonly transport: Transport;
  /** What it is, for logs and error messages (no secrets): the URL or the command. */
  readonly describe: string;
  /** Tells an HTTP transport the negotiated protocol version (the header on later requests). */
  setProtocolVersion(version: string): void;
}

/**
 * Ends the session with the tool server for good: Airlock is closing, so its close is no news to
 * act on, and an HTTP server is told to drop the session. Failures are moot by then.
 */
export async function endUpstream(up: UpstreamTransport): Promise<void> {
  up.transport.onclose = undefined;
  if ('terminateSession' in up.transport)
    await (up.transport as { terminateSession(): Promise<void> }).terminateSession().catch(() => {});
  await up.transport.close().catch(() => {});
}

export function openUpstream(connection: McpConnection, log: Logger | undefined): UpstreamTransport {
  const up = connection.upstream;
  if (up.transport === 'http') {
    const headers: Record<string, string> = {};
    for (const [k, v] of up.headers) headers[k] = v.reveal();
    if (up.token) headers.authorization = `Bearer ${up.token.reveal()}`;
    const transport = new StreamableHTTPClientTransport(new URL(up.url), {
      requestInit: { headers },
      fetch: ownSignalFetch,
    });
    return {
      transport,
      describe: up.url,
      setProtocolVersion: (v) => transport.setProtocolVersion(v),
    };
  }
  const env: Record<string, string> = {};
  for (const [k, v] of up.env) env[k] = v.reveal();
  const transport = new StdioClientTransport({
    command: up.command,
    args: [...up.args],
    env,
    cwd: up.cwd,
    stderr: 'pipe',
  });
  // The tool server's diagnostics go to the gateway log; the caller never sees them.
  transport.stderr?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      log?.debug(
        { connection: connection.name, stderr: line.slice(0, STDERR_LINE_MAX) },
        'mcp tool server stderr',
      );
    }
  });
  return { transport, describe: up.command, setProtocolVersion: () => {} };
}
