/**
 * MCP progress from the own tools: what Airlock's listeners tell a caller while an action is
 * held ("waiting for approval: request N, URL") reaches the agent as `notifications/progress`.
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/utilities/progress
 */
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';

export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** A function that sends one progress message, or does nothing if the caller asked for none. */
export function progressReporter(extra: ToolExtra): (message: string) => void {
  const token = extra._meta?.progressToken;
  let progress = 0;
  return (message) => {
    if (token === undefined) return;
    progress += 1;
    void extra
      .sendNotification({
        method: 'notifications/progress',
        params: { progressToken: token, progress, message },
      })
      .catch(() => {});
  };
}
