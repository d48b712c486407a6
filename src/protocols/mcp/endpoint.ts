/**
 * Airlock's MCP endpoints on the API port: `/mcp/CONNECTION` speaks Streamable HTTP to callers
 * and relays each session to the connection's tool server. Every HTTP request carries the
 * caller's Airlock token (`Authorization: Bearer`); a session belongs to the principal that
 * opened it, and to no one else.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/authorization
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Principal } from '../../core/action.ts';
import type { ApprovalRequest, NewRequest, RequestFilter } from '../../core/approvals/request.ts';
import { AirlockError, isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import type { McpConnection } from '../../core/policy/connections/mcp.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { FederatedSession } from './federation.ts';
import { mcpBodyErrorHandler } from './http-errors.ts';
import type { OwnSshListener } from './own-exec.ts';
import { OWN_TOOLS_ROUTE, OwnToolsSession } from './own-tools.ts';
import { RelaySession } from './session.ts';
import type { SqlClassifier } from './tool-action.ts';

export interface McpEndpointOptions {
  readonly policy: Policy;
  /** The Gate; a getter because the gateway builds it once the API port is bound. */
  readonly gate: () => GatePort;
  readonly tokens: Authenticator;
  readonly log?: Logger | undefined;
  readonly classifySql?: SqlClassifier | undefined;
  /** A session with nothing in flight and no message for this long is closed (default 30 min). */
  readonly idleMs?: number;
  /** How often a held call tells the caller it is still waiting (default 10 s). */
  readonly progressIntervalMs?: number;
  /** Airlock's version, as the aggregated endpoint reports it in initialize. */
  readonly serverVersion?: string;
  /** Where session recordings go (one per /mcp/CONNECTION session). */
  readonly recorder?: Recorder | undefined;
  /** Connection slots per principal and in total: every MCP session takes one. */
  readonly limits?: Pick<Limits, 'openConnection'> | undefined;
  /** Files an approval request (for the own tools' request_access). */
  readonly createRequest?: ((request: NewRequest) => Promise<ApprovalRequest>) | undefined;
  /** Looks up an approval request (for the own tools' request_status). */
  readonly request?: (id: number) => Promise<ApprovalRequest | undefined>;
  /** Where Airlock's PostgreSQL listener runs (for the own tools' query). */
  readonly postgres?: () => { readonly host: string; readonly port: number } | undefined;
  /** Where Airlock's SSH listener runs and its host key (for the own tools' exec). */
  readonly ssh?: () => OwnSshListener | undefined;
  /** Where Airlock's MySQL listener runs (for the own tools' query on MySQL connections). */
  readonly mysql?: () => { readonly host: string; readonly port: number } | undefined;
  /** Where Airlock's HTTP listener runs (for the own tools' http_request). */
  readonly http?: () => { readonly host: string; readonly port: number } | undefined;
  /** Lists approval requests (for the own tools' http_request progress). */
  readonly listRequests?: (filter: RequestFilter) => Promise<ApprovalRequest[]>;
  /** Largest JSON-RPC message a caller may send (default 4 MiB). */
  readonly bodyLimit?: number;
}

export interface McpEndpoint {
  /** Sessions open now. */
  readonly sessions: number;
  /** End every session (held calls are cancelled) and stop the tool servers Airlock launched. */
  close(): Promise<void>;
}

/** The route key of the aggregated endpoint `/mcp` (not a valid connection name). */
const AGGREGATED = '*';

type McpSession = RelaySession | FederatedSession | OwnToolsSession;

function routeOf(session: McpSession): string {
  if (session instanceof RelaySession) return session.ctx.connection.name;
  return session instanceof OwnToolsSession ? OWN_TOOLS_ROUTE : AGGREGATED;
}

/** JSON-RPC error body for an HTTP-level refusal (no request id is known yet). */
function refuse(reply: FastifyReply, status: number, code: number, e: AirlockError): FastifyReply {
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="airlock"');
  return reply.status(status).send({
    jsonrpc: '2.0',
    error: { code, message: e.describe(), data: { code: e.code } },
    id: null,
  });
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : '';
}

function isInitialize(body: unknown): boolean {
  const msgs = Array.isArray(body) ? body : [body];
  return msgs.some((m) => (m as { method?: unknown } | null)?.method === 'initialize');
}

export function registerMcpRoutes(app: FastifyInstance, opts: McpEndpointOptions): McpEndpoint {
  const { policy, tokens, log } = opts;
  const sessions = new Map<string, McpSession>();
  let closing = false;

  const idleMs = opts.idleMs ?? 30 * 60_000;
  const reaper = setInterval(
    () => {
      const now = Date.now();
      for (const s of sessions.values())
        if (!s.busy && now - s.lastActive > idleMs)
          void s.close(`idle for ${Math.round(idleMs / 60_000)} min`);
    },
    Math.min(60_000, idleMs),
  );
  reaper.unref();

  const authenticate = async (request: FastifyRequest, connection: string): Promise<Principal> => {
    try {
      return await tokens.authenticate(bearer(request), { source: request.ip, protocol: 'mcp', connection });
    } catch (err) {
      const e = isAirlockError(err)
        ? err
        : new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the Airlock token was not recognised');
      try {
        opts.gate().authFailed({ protocol: 'mcp', source: request.ip, connection, reason: e.code });
      } catch {
        // The Gate is not built yet (the gateway is starting): nothing to record it in.
      }
      throw e;
    }
  };

  const mcpConnections = (): McpConnection[] =>
    [...policy.connections.values()].filter((c): c is McpConnection => c.type === 'mcp');

  const mcpConnection = (name: string): McpConnection | undefined => {
    const c = policy.connections.get(name);
    return c?.type === 'mcp' ? c : undefined;
  };

  /** `name` is the connection, or AGGREGATED for `/mcp`. */
  const handle = async (request: FastifyRequest, reply: FastifyReply, name: string) => {
    let principal: Principal;
    try {
      principal = await authenticate(request, name);
    } catch (err) {
      const e = err as AirlockError;
      // 401 and 403 as they are; a throttled caller gets 429, an unreachable issuer 503.
      return refuse(reply, [401, 403, 429, 503].includes(e.status) ? e.status : 401, -32001, e);
    }
    const connection = name === AGGREGATED ? undefined : mcpConnection(name);
    const own = name === OWN_TOOLS_ROUTE && !policy.connections.has(name);
    if (name !== AGGREGATED && !connection && !own) {
      const names = [...policy.connections.values()].filter((c) => c.type === 'mcp').map((c) => c.name);
      return refuse(
        reply,
        404,
        -32001,
        new AirlockError('AIRLOCK_E_CONNECTION_UNKNOWN', `there is no MCP connection "${name}" in Airlock`, {
          hint:
            names.length > 0
              ? `use one of: ${names.map((n) => `/mcp/${n}`).join(', ')} (or /mcp for all of them)`
              : 'no MCP connections are configured',
        }),
      );
    }
    if (closing)
      return refuse(
        reply,
        503,
        -32000,
        new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', 'Airlock is shutting down', {
          hint: 'reconnect in a moment',
        }),
      );

    const sid = request.headers['mcp-session-id'];
    let session: McpSession | undefined;
    let created: (() => void) | undefined;
    if (typeof sid === 'string') {
      session = sessions.get(sid);
      // Another principal's session answers exactly like a missing one.
      if (!session || session.ctx.principal.name !== principal.name || routeOf(session) !== name)
        return refuse(
          reply,
          404,
          -32001,
          new AirlockError('AIRLOCK_E_BAD_REQUEST', 'this MCP session does not exist (it ended or expired)', {
            hint: 'start a new session: send initialize without an Mcp-Session-Id header',
            status: 404,
          }),
        );
    } else if (request.method === 'POST' && isInitialize(request.body)) {
      let gate: GatePort;
      try {
        gate = opts.gate();
      } catch {
        return refuse(
          reply,
          503,
          -32000,
          new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', 'Airlock is still starting', {
            hint: 'retry in a moment',
          }),
        );
      }
      const common = {
        policy,
        gate,
        principal,
        source: request.ip,
        log,
        classifySql: opts.classifySql,
        progressIntervalMs: opts.progressIntervalMs ?? 10_000,
      };
      // A session may launch a process: it takes one of the caller's connection slots.
      let release: (() => void) | undefined;
      try {
        release = opts.limits?.openConnection(principal, 'mcp', request.ip);
      } catch (err) {
        const e = isAirlockError(err)
          ? err
          : new AirlockError('AIRLOCK_E_LIMIT_CONNECTIONS', 'too many sessions');
        return refuse(reply, 429, -32000, e);
      }
      const register = (s: McpSession) => sessions.set(s.id, s);
      const unregister = (s: McpSession) => {
        sessions.delete(s.id);
        release?.();
        release = undefined;
      };
      created = () => {
        // An initialize the transport refused never became a session: give the slot back.
        if (session && !session.id) {
          release?.();
          release = undefined;
        }
      };
      session = connection
        ? new RelaySession({ ...common, connection, recorder: opts.recorder }, register, unregister)
        : own
          ? new OwnToolsSession(
              {
                ...common,
                credential: bearer(request) ?? '',
                serverVersion: opts.serverVersion ?? '1',
                request: opts.request ?? (async () => undefined),
                createRequest: opts.createRequest,
                postgres: opts.postgres ?? (() => undefined),
                ssh: opts.ssh,
                http: opts.http,
                mysql: opts.mysql,
                listRequests: opts.listRequests,
              },
              register,
              unregister,
            )
          : new FederatedSession(
              {
                ...common,
                connections: mcpConnections(),
                serverVersion: opts.serverVersion ?? '1',
                recorder: opts.recorder,
              },
              register,
              unregister,
            );
      await session.start();
    } else {
      return refuse(
        reply,
        400,
        -32600,
        new AirlockError(
          'AIRLOCK_E_BAD_REQUEST',
          'no Mcp-Session-Id header, and this is not an initialize request',
          {
            hint: 'start a session with initialize, then send its Mcp-Session-Id header on every request',
          },
        ),
      );
    }
    session.lastActive = Date.now();
    reply.hijack();
    try {
      await session.downstream.handleRequest(request.raw, reply.raw, request.body);
      created?.();
    } catch (err) {
      created?.();
      log?.warn({ err: (err as Error)?.message, connection: name }, 'mcp request failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' });
        reply.raw.end(
          JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null }),
        );
      }
    }
  };

  const bodyLimit = opts.bodyLimit ?? 4 * 1024 * 1024;
  const route = {
    method: ['GET', 'POST', 'DELETE'],
    bodyLimit,
    errorHandler: mcpBodyErrorHandler(bodyLimit, log),
  } as const;
  app.route({
    ...route,
    method: [...route.method],
    url: '/mcp/:connection',
    handler: (request, reply) =>
      handle(request, reply, (request.params as { connection: string }).connection),
  });
  app.route({
    ...route,
    method: [...route.method],
    url: '/mcp',
    handler: (request, reply) => handle(request, reply, AGGREGATED),
  });

  return {
    get sessions() {
      return sessions.size;
    },
    async close() {
      closing = true;
      clearInterval(reaper);
      await Promise.all([...sessions.values()].map((s) => s.close('Airlock is shutting down')));
    },
  };
}
