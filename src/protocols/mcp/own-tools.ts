/**
 * Airlock's own MCP tools at `/mcp/airlock`: what an agent needs to use the systems behind
 * Airlock without holding any credential of theirs.
 *
 * - `list_connections`: the connections configured, and how to reach each.
 * - `query`: SQL on a PostgreSQL connection (MySQL connections: see own-mysql.ts). It is sent through Airlock's own PostgreSQL
 *   listener as the caller, with the caller's token, so it meets exactly the gate, holds,
 *   approvals, masking and audit a `psql` user would; "waiting for approval" notices become MCP
 *   progress.
 * - `exec`: one command on an SSH connection, through Airlock's own SSH listener as the caller
 *   (see own-exec.ts).
 * - `http_request`: one request to an HTTP or Kubernetes connection, through Airlock's own HTTP
 *   listener as the caller (see own-http.ts).
 * - `request_access`: a just-in-time access request, with a reason.
 * - `request_status`: where one of the caller's approval requests stands.
 */
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import pg from 'pg';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Principal } from '../../core/action.ts';
import { ACTION_KINDS } from '../../core/action.ts';
import { accessRequest } from '../../core/approvals/access.ts';
import type { ApprovalRequest, NewRequest, RequestFilter } from '../../core/approvals/request.ts';
import { isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Policy } from '../../core/policy/policy.ts';
import { parseDuration } from '../../core/policy/review.ts';
import { type OwnSshListener, runExec } from './own-exec.ts';
import { type OwnHttpListener, runHttpRequest } from './own-http.ts';
import { type OwnMysqlListener, runMysqlQuery } from './own-mysql.ts';
import { progressReporter, type ToolExtra } from './own-progress.ts';

/** The route of the own tools; a connection of this name takes precedence. */
export const OWN_TOOLS_ROUTE = 'airlock';
/** Rows returned to the model at most; the rest is counted, not sent. */
const MAX_ROWS = 500;

export interface OwnToolsContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly principal: Principal;
  /** The caller's credential, used only to act as the caller through Airlock's own listeners. */
  readonly credential: string;
  readonly source?: string | undefined;
  readonly log?: Logger | undefined;
  readonly serverVersion: string;
  /** Looks up an approval request. */
  readonly request: (id: number) => Promise<ApprovalRequest | undefined>;
  /** Files an approval request (a just-in-time access request). */
  readonly createRequest?: ((request: NewRequest) => Promise<ApprovalRequest>) | undefined;
  /** Where Airlock's PostgreSQL listener runs, if it does. */
  readonly postgres: () => { readonly host: string; readonly port: number } | undefined;
  /** Where Airlock's SSH listener runs and its host key, if it does (for exec). */
  readonly ssh?: (() => OwnSshListener | undefined) | undefined;
  /** Where Airlock's MySQL listener runs, if it does (for query on MySQL connections). */
  readonly mysql?: (() => OwnMysqlListener | undefined) | undefined;
  /** Where Airlock's HTTP listener runs, if it does (for http_request). */
  readonly http?: (() => OwnHttpListener | undefined) | undefined;
  /**
   * Lists approval requests: HTTP tells a held caller nothing while it waits, so http_request
   * finds its request here to report it as progress.
   */
  readonly listRequests?: ((filter: RequestFilter) => Promise<ApprovalRequest[]>) | undefined;
}

function text(t: string, isError = false): CallToolResult {
  return { content: [{ type: 'text', text: t }], ...(isError ? { isError: true } : {}) };
}

export class OwnToolsSession {
  readonly downstream: StreamableHTTPServerTransport;
  readonly ctx: OwnToolsContext;
  id = '';
  lastActive = Date.now();
  #inFlight = 0;
  #opened = false;
  #closed = false;
  readonly #server: McpServer;
  readonly #onClosed: (s: OwnToolsSession) => void;

  constructor(
    ctx: OwnToolsContext,
    onInitialized: (s: OwnToolsSession) => void,
    onClosed: (s: OwnToolsSession) => void,
  ) {
    this.ctx = ctx;
    this.#onClosed = onClosed;
    this.downstream = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: async (id) => {
        this.id = id;
        onInitialized(this);
        try {
          await ctx.gate.sessionOpened({
            sessionId: id,
            protocol: 'mcp',
            connection: OWN_TOOLS_ROUTE,
            principal: ctx.principal,
            source: ctx.source,
          });
          this.#opened = true;
        } catch (err) {
          // Fail closed: a session the audit log does not know about does not run.
          ctx.log?.error(
            { session: id, err: (err as Error)?.message },
            'mcp session refused: audit unavailable',
          );
          setImmediate(() => void this.close('the audit log could not be written'));
        }
      },
    });
    this.#server = new McpServer(
      { name: 'airlock', version: ctx.serverVersion },
      {
        instructions:
          'Airlock guards databases, hosts and APIs. Use list_connections to see them, query to run SQL, exec to run a command on a host and http_request to call an API; an action may wait for a person to approve it, and a refused one says why.',
      },
    );
    this.#register();
  }

  async start(): Promise<void> {
    await this.#server.connect(this.downstream);
    this.downstream.onclose = () => void this.close('the caller ended the session');
  }

  get busy(): boolean {
    return this.#inFlight > 0;
  }

  #register(): void {
    const { policy } = this.ctx;
    this.#server.registerTool(
      'list_connections',
      {
        description: 'Lists the connections behind Airlock: name, type, description and how to use each.',
        annotations: { readOnlyHint: true },
      },
      async () => {
        const list = [...policy.connections.values()].map((c) => ({
          name: c.name,
          type: c.type,
          description: c.description ?? null,
          unmatched: c.default,
          use: howToUse(c.type, c.name),
        }));
        return text(JSON.stringify(list, null, 2));
      },
    );

    this.#server.registerTool(
      'request_status',
      {
        description:
          'Shows where one of your approval requests stands (pending, approved, denied, expired, ...).',
        inputSchema: { id: z.number().int().positive() },
        annotations: { readOnlyHint: true },
      },
      async ({ id }) => {
        const r = await this.ctx.request(id);
        // Someone else's request answers like a missing one: ids are sequential.
        if (!r || r.principal.name !== this.ctx.principal.name)
          return text(`there is no request ${id} of yours`, true);
        return text(
          JSON.stringify(
            {
              id: r.id,
              status: r.status,
              connection: r.connection,
              summary: r.summary,
              approvals: r.approvals.map((a) => a.by),
              ...(r.reason ? { reason: r.reason } : {}),
              ...(r.deniedBy ? { deniedBy: r.deniedBy } : {}),
            },
            null,
            2,
          ),
        );
      },
    );

    this.#server.registerTool(
      'request_access',
      {
        description:
          'Asks people for just-in-time access to a connection for a while, with a reason. Returns the request; once approved, your actions on that connection (of the kinds asked for) pass for the duration. Check it with request_status.',
        inputSchema: {
          connection: z.string().min(1),
          duration: z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 30m or 2h'),
          reason: z.string().min(1),
          kinds: z.array(z.enum(ACTION_KINDS)).optional(),
        },
      },
      async ({ connection, duration, reason, kinds }) => {
        const create = this.ctx.createRequest;
        if (!create) return text('just-in-time access is not available on this gateway', true);
        try {
          const ask = accessRequest(
            policy,
            this.ctx.principal,
            { connection, durationMs: parseDuration(duration), reason, kinds },
            Date.now(),
          );
          const r = await create(ask);
          return text(
            `access request ${r.id} is waiting for approval (${r.review.groups.join(', ')}); check it with request_status`,
          );
        } catch (err) {
          return text(isAirlockError(err) ? err.describe() : 'the access request could not be filed', true);
        }
      },
    );

    // A tool with no connection to reach is left out: it would only cost the model's context.
    const types = new Set([...policy.connections.values()].map((c) => c.type));
    if (types.has('ssh')) this.#registerExec();
    if (types.has('http') || types.has('kubernetes')) this.#registerHttpRequest();

    this.#server.registerTool(
      'query',
      {
        description:
          'Runs SQL on a PostgreSQL or MySQL connection behind Airlock, as you. Reads are usually allowed; writes may wait for a person to approve them (progress says where), and a refused statement returns the reason.',
        inputSchema: { connection: z.string().min(1), sql: z.string().min(1) },
      },
      async ({ connection, sql }, extra) => {
        const c = policy.connections.get(connection);
        if (c?.type === 'mysql') return this.#mysqlQuery(connection, sql, extra);
        if (c?.type !== 'postgres') {
          const names = [...policy.connections.values()]
            .filter((x) => x.type === 'postgres' || x.type === 'mysql')
            .map((x) => x.name);
          return text(
            `there is no PostgreSQL${names.length > 0 && [...policy.connections.values()].some((x) => x.type === 'mysql') ? ' or MySQL' : ''} connection "${connection}"${names.length ? `; use one of: ${names.join(', ')}` : ''}`,
            true,
          );
        }
        const listener = this.ctx.postgres();
        if (!listener)
          return text(
            "Airlock's PostgreSQL listener is off, so query cannot run; ask an Airlock admin",
            true,
          );
        this.#inFlight++;
        const client = new pg.Client({
          host: listener.host,
          port: listener.port,
          database: connection,
          user: this.ctx.principal.name,
          password: this.ctx.credential,
          application_name: 'airlock-mcp-query',
        });
        const token = extra._meta?.progressToken;
        let progress = 0;
        client.on('notice', (n) => {
          if (token === undefined) return;
          progress += 1;
          void extra
            .sendNotification({
              method: 'notifications/progress',
              params: { progressToken: token, progress, message: n.message ?? 'waiting' },
            })
            .catch(() => {});
        });
        client.on('error', () => {});
        // Cancelling the MCP call closes the connection: Airlock cancels a held request then.
        const onAbort = () => void client.end().catch(() => {});
        extra.signal.addEventListener('abort', onAbort, { once: true });
        try {
          await client.connect();
          const results = await client.query({ text: sql, rowMode: 'array' } as pg.QueryConfig);
          const list = (Array.isArray(results) ? results : [results]) as pg.QueryResult<unknown[]>[];
          return text(list.map(describeResult).join('\n\n'));
        } catch (err) {
          return text((err as Error)?.message ?? String(err), true);
        } finally {
          extra.signal.removeEventListener('abort', onAbort);
          this.#inFlight--;
          await client.end().catch(() => {});
        }
      },
    );
  }

  #registerExec(): void {
    const { policy } = this.ctx;
    this.#server.registerTool(
      'exec',
      {
        description:
          'Runs one command on an SSH connection behind Airlock, as you, and returns its exit status, stdout and stderr. Risky commands may wait for a person to approve them (progress says where), and a refused command returns the reason.',
        inputSchema: { connection: z.string().min(1), command: z.string().min(1) },
      },
      async ({ connection, command }, extra) => {
        if (policy.connections.get(connection)?.type !== 'ssh')
          return this.#noConnection(connection, ['ssh']);
        const listener = this.ctx.ssh?.();
        if (!listener)
          return text("Airlock's SSH listener is off, so exec cannot run; ask an Airlock admin", true);
        this.#inFlight++;
        try {
          return await runExec(listener, connection, this.ctx.credential, command, extra);
        } finally {
          this.#inFlight--;
        }
      },
    );
  }

  #registerHttpRequest(): void {
    const { policy } = this.ctx;
    this.#server.registerTool(
      'http_request',
      {
        description:
          'Sends one HTTP request to an HTTP (or Kubernetes API) connection behind Airlock, as you; Airlock adds the credential. path is appended to the connection (e.g. /v1/items?limit=5). Risky requests may wait for a person to approve them, and a refused one returns the reason.',
        inputSchema: {
          connection: z.string().min(1),
          method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']),
          path: z.string().min(1),
          headers: z.record(z.string(), z.string()).optional(),
          body: z.string().optional(),
        },
      },
      async ({ connection, method, path, headers, body }, extra) => {
        const type = policy.connections.get(connection)?.type;
        if (type !== 'http' && type !== 'kubernetes')
          return this.#noConnection(connection, ['http', 'kubernetes']);
        const listener = this.ctx.http?.();
        if (!listener)
          return text(
            "Airlock's HTTP listener is off, so http_request cannot run; ask an Airlock admin",
            true,
          );
        this.#inFlight++;
        const stopWatching = this.#watchHold(type, connection, extra);
        try {
          return await runHttpRequest(
            listener,
            type,
            connection,
            this.ctx.credential,
            { method, path, headers, body },
            extra,
          );
        } finally {
          stopWatching();
          this.#inFlight--;
        }
      },
    );
  }

  /**
   * While a request of the caller's on this connection is pending, says so as progress, the way
   * the SSH and PostgreSQL listeners do on their own wire: polls until one appears, then repeats
   * the line every 10 s. Only informs; the HTTP listener alone decides and waits.
   */
  #watchHold(protocol: string, connection: string, extra: ToolExtra): () => void {
    const list = this.ctx.listRequests;
    if (!list || extra._meta?.progressToken === undefined) return () => {};
    const progress = progressReporter(extra);
    const since = Date.now() - 1000;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const poll = async () => {
      if (stopped) return;
      const found = await list({
        status: ['pending'],
        connection,
        protocol,
        principal: this.ctx.principal.name,
        since,
        limit: 1,
      }).catch(() => []);
      if (stopped) return;
      const r = found[0];
      if (!r) {
        timer = setTimeout(() => void poll(), 250);
        return;
      }
      const url = `${this.ctx.policy.publicUrl.replace(/\/+$/, '')}/requests/${r.id}`;
      const started = Date.now();
      progress(`waiting for approval: request ${r.id}, ${url}`);
      const again = () => {
        timer = setTimeout(() => {
          if (stopped) return;
          progress(
            `still waiting for approval: request ${r.id}, ${url} (${Math.round((Date.now() - started) / 1000)}s so far)`,
          );
          again();
        }, 10_000);
      };
      again();
    };
    timer = setTimeout(() => void poll(), 100);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  async #mysqlQuery(connection: string, sql: string, extra: ToolExtra): Promise<CallToolResult> {
    const listener = this.ctx.mysql?.();
    if (!listener)
      return text("Airlock's MySQL listener is off, so query cannot run; ask an Airlock admin", true);
    this.#inFlight++;
    // The MySQL protocol has no notice to carry "waiting for approval": found in the store instead.
    const stopWatching = this.#watchHold('mysql', connection, extra);
    try {
      return await runMysqlQuery(
        listener,
        connection,
        this.ctx.principal.name,
        this.ctx.credential,
        sql,
        extra,
      );
    } finally {
      stopWatching();
      this.#inFlight--;
    }
  }

  #noConnection(connection: string, types: readonly string[]): CallToolResult {
    const names = [...this.ctx.policy.connections.values()]
      .filter((x) => types.includes(x.type))
      .map((x) => x.name);
    return text(
      `there is no ${types.join(' or ')} connection "${connection}"${names.length ? `; use one of: ${names.join(', ')}` : ''}`,
      true,
    );
  }

  async close(reason: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Forget it (and free its slot) at once: nothing new reaches a closing session.
    this.#onClosed(this);
    await this.#server.close().catch(() => {});
    if (this.#opened) this.ctx.gate.sessionClosed(this.id, { reason });
    this.ctx.log?.info({ session: this.id, reason }, 'mcp airlock tools session closed');
  }
}

/** Which own tool (or endpoint) reaches a connection of this type. */
function howToUse(type: string, name: string): string {
  switch (type) {
    case 'postgres':
    case 'mysql':
      return `the query tool with connection "${name}"`;
    case 'ssh':
      return `the exec tool with connection "${name}"`;
    case 'http':
    case 'kubernetes':
      return `the http_request tool with connection "${name}"`;
    case 'mcp':
      return `the MCP endpoint /mcp/${name}`;
    default:
      return `Airlock's ${type} listener`;
  }
}

function describeResult(r: pg.QueryResult<unknown[]>): string {
  if (!r.fields || r.fields.length === 0)
    return `${r.command ?? 'OK'}${r.rowCount === null ? '' : ` ${r.rowCount}`}`;
  const columns = r.fields.map((f) => f.name);
  const rows = r.rows.slice(0, MAX_ROWS);
  const more = r.rows.length - rows.length;
  return JSON.stringify(
    {
      columns,
      rows,
      rowCount: r.rows.length,
      ...(more > 0 ? { note: `${more} more rows not shown; narrow the query` } : {}),
    },
    null,
    2,
  );
}
