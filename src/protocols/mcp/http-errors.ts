/**
 * Errors raised before an MCP request reaches its session (the body could not be read: not
 * JSON, not a JSON content type, larger than the limit) answered the way the transport answers
 * its own: an HTTP status and a JSON-RPC error object with no id, so an MCP client reports the
 * reason instead of failing on an unexpected body shape.
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#sending-messages-to-the-server
 * https://www.jsonrpc.org/specification#error_object
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AirlockError } from '../../core/errors.ts';

/** JSON-RPC: "Invalid JSON was received by the server". */
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
/** What the transport itself answers a wrong content type with. */
const SERVER_ERROR = -32000;
const INTERNAL_ERROR = -32603;

export function mcpBodyErrorHandler(bodyLimit: number, log: Logger | undefined) {
  return (err: unknown, _request: FastifyRequest, reply: FastifyReply): void => {
    const { statusCode, code } = (err ?? {}) as { statusCode?: unknown; code?: unknown };
    let status = typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500 ? statusCode : 500;
    let rpc = INVALID_REQUEST;
    let e: AirlockError;
    if (status === 413 || code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      e = new AirlockError(
        'AIRLOCK_E_MESSAGE_TOO_LARGE',
        `the JSON-RPC message is larger than ${bodyLimit} bytes`,
        { hint: 'send smaller arguments, or pass large data by reference (a file or URL)' },
      );
    } else if (status === 415 || code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      rpc = SERVER_ERROR;
      e = new AirlockError('AIRLOCK_E_BAD_REQUEST', 'the request body is not application/json', {
        hint: 'send JSON-RPC messages with Content-Type: application/json',
      });
    } else if (status === 400) {
      rpc = PARSE_ERROR;
      e = new AirlockError('AIRLOCK_E_BAD_REQUEST', 'the request body is not valid JSON', {
        hint: 'send one JSON-RPC message (or a batch) as JSON',
      });
    } else if (status < 500) {
      e = new AirlockError('AIRLOCK_E_BAD_REQUEST', 'the request could not be read', { status });
    } else {
      rpc = INTERNAL_ERROR;
      log?.warn({ err: (err as Error)?.message }, 'mcp request failed before its session');
      e = new AirlockError('AIRLOCK_E_INTERNAL', 'an internal error occurred', {
        hint: 'see the gateway log for details',
      });
    }
    void reply.status(status).send({
      jsonrpc: '2.0',
      error: { code: rpc, message: e.describe(), data: { code: e.code } },
      id: null,
    });
  };
}
