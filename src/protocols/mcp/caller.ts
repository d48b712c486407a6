/**
 * The caller's side of an MCP session, the same on /mcp/CONNECTION and on the aggregated /mcp:
 * what its requests carry, and sending to it.
 */
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage, JSONRPCRequest, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';

export function progressTokenOf(msg: JSONRPCRequest): string | number | undefined {
  const token = (msg.params as { _meta?: { progressToken?: unknown } } | undefined)?._meta?.progressToken;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

export const TOOL_CALL_NEEDS = 'tools/call needs a tool name and an object of arguments';

/** The tool a `tools/call` names and its arguments; undefined when they are not a name and an object. */
export function toolCallParams(
  msg: JSONRPCRequest,
): { readonly name: string; readonly args: Record<string, unknown> } | undefined {
  const params = msg.params as { name?: unknown; arguments?: unknown } | undefined;
  const name = params?.name;
  const args = params?.arguments ?? {};
  if (typeof name !== 'string' || typeof args !== 'object' || args === null || Array.isArray(args))
    return undefined;
  return { name, args: args as Record<string, unknown> };
}

/**
 * Sends to the caller, on the response stream of `relatedRequestId` when given. A message the
 * caller's transport no longer takes (it went away) is dropped.
 */
export function sendToCaller(
  session: { readonly id: string; readonly downstream: StreamableHTTPServerTransport },
  log: Logger | undefined,
  msg: JSONRPCMessage,
  relatedRequestId?: RequestId,
): void {
  session.downstream
    .send(msg, relatedRequestId === undefined ? undefined : { relatedRequestId })
    .catch((err: Error) =>
      log?.debug({ session: session.id, err: err.message }, 'mcp message to the caller dropped'),
    );
}
