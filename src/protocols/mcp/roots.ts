/**
 * Roots stay with the caller. MCP lets a client tell a tool server which directories it may work
 * in (`roots`); a tool server such as the reference filesystem server then replaces the
 * directories its administrator gave it with the client's list. Behind Airlock the administrator's
 * configuration is the boundary, so the caller's `roots` capability is not passed on and a tool
 * server's `roots/list` is answered by Airlock with an error (the tool server keeps its own
 * configuration).
 * https://modelcontextprotocol.io/specification/2025-06-18/client/roots
 */
import type { JSONRPCMessage, JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';

/** The caller's initialize params as a tool server gets them: without the roots capability. */
export function initializeForUpstream(params: unknown): unknown {
  const p = params as { capabilities?: Record<string, unknown> } | undefined;
  if (!p?.capabilities || !('roots' in p.capabilities)) return params;
  const { roots: _roots, ...capabilities } = p.capabilities;
  return { ...p, capabilities };
}

/** Airlock's answer to a tool server that asks for the caller's roots. */
export function refuseRoots(request: JSONRPCRequest): JSONRPCMessage | undefined {
  if (request.method !== 'roots/list') return undefined;
  return {
    jsonrpc: '2.0',
    id: request.id,
    error: {
      code: -32601,
      message:
        'Airlock does not pass the caller’s roots to tool servers; use the directories you were configured with',
    },
  };
}
