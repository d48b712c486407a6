/**
 * One caller's session on the aggregated endpoint `/mcp`: the tools of every MCP connection,
 * named `CONNECTION__tool`, behind one MCP server. Airlock answers `initialize` itself and opens
 * a session with each tool server (passing the caller's capabilities on, so sampling and
 * elicitation still reach the caller); `tools/list` is the union of what each server lists and
 * the caller may call; `tools/call` is judged against the connection it names and relayed there.
 * Resources and prompts stay on `/mcp/CONNECTION`, where they keep their own names.
 *
 * Ids: the caller's request ids are unique in its session, so they go to a tool server as they
 * are. Requests the tool servers send the caller get fresh ids (two servers may both use id 0),
 * mapped back when the caller answers.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/lifecycle
 */
import { randomUUID } from 'node:crypto';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCMessage,
  type JSONRPCRequest,
  LATEST_PROTOCOL_VERSION,
  type RequestId,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { Principal } from '../../core/action.ts';
import type { GatePort } from '../../core/gate-types.ts';
import { maskerFor, type SessionMasker } from '../../core/masking/masker.ts';
import type { McpConnection } from '../../core/policy/connections/mcp.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { progressTokenOf, sendToCaller, TOOL_CALL_NEEDS, toolCallParams } from './caller.ts';
import { failClosedText, type HeldRequest, type JudgedCaller, judgeToolCall } from './judge.ts';
import { maskToolResult } from './mask.ts';
import { SessionRecording } from './record.ts';
import { initializeForUpstream, refuseRoots } from './roots.ts';
import { MCP_ERRORS } from './session.ts';
import { possibleKinds, type SqlClassifier, type ToolInfo, toolCallAction } from './tool-action.ts';
import { endUpstream, openUpstream, type UpstreamTransport } from './upstream.ts';
import { mayEverCall } from './visibility.ts';

/** Between the connection name and the tool name: `files__read_file`. */
export const TOOL_SEPARATOR = '__';
/** How long Airlock waits for a tool server's own answer to initialize or tools/list. */
const UPSTREAM_TIMEOUT_MS = 30_000;
/** New sessions with one tool server allowed per window (as on /mcp/CONNECTION). */
const RESTARTS = 3;
const RESTART_WINDOW_MS = 5 * 60_000;
/** Pages of tools/list fetched from one server before the rest is left out. */
const MAX_PAGES = 20;

export interface FederationContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly connections: readonly McpConnection[];
  readonly principal: Principal;
  readonly source?: string | undefined;
  readonly log?: Logger | undefined;
  readonly classifySql?: SqlClassifier | undefined;
  readonly progressIntervalMs: number;
  readonly serverVersion: string;
  /** Where the session recording goes; none is made without it. */
  readonly recorder?: Recorder | undefined;
}

interface Link {
  readonly connection: McpConnection;
  readonly up: UpstreamTransport;
  readonly tools: Map<string, ToolInfo>;
  ok: boolean;
}

interface Pending extends HeldRequest {
  readonly method: string;
  link?: Link;
}

export class FederatedSession {
  readonly downstream: StreamableHTTPServerTransport;
  readonly ctx: FederationContext;
  id = '';
  lastActive = Date.now();
  readonly #links = new Map<string, Link>();
  readonly #pending = new Map<RequestId, Pending>();
  /** Airlock's own requests to tool servers, by id. */
  readonly #internal = new Map<RequestId, (msg: JSONRPCMessage) => void>();
  /** Tool servers' requests to the caller: Airlock's id → the server and its id. */
  readonly #relayed = new Map<RequestId, { link: Link; id: RequestId }>();
  readonly #idPrefix = `airlock-${randomUUID()}-`;
  /** Masking per connection for this caller (absent: nothing to mask). */
  readonly #maskers = new Map<string, SessionMasker>();
  #nextId = 0;
  #opened = false;
  #closed = false;
  #recording: SessionRecording | undefined;
  /** The caller's initialize, replayed to a tool server that needs a new session. */
  #init: JSONRPCRequest | undefined;
  readonly #restarts = new Map<string, number[]>();
  /** Tool servers getting a new session; calls wait for them rather than find no tool. */
  readonly #reconnecting = new Map<string, Promise<void>>();
  readonly #onClosed: (s: FederatedSession) => void;
  readonly #caller: JudgedCaller;

  constructor(
    ctx: FederationContext,
    onInitialized: (s: FederatedSession) => void,
    onClosed: (s: FederatedSession) => void,
  ) {
    this.ctx = ctx;
    this.#onClosed = onClosed;
    this.#caller = { toCaller: (msg, related) => this.#toClient(msg, related), closed: () => this.#closed };
    for (const c of ctx.connections) {
      const masker = maskerFor(ctx.policy.masking, c.name, ctx.principal);
      if (masker) this.#maskers.set(c.name, masker);
    }
    this.downstream = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        this.id = id;
        onInitialized(this);
      },
    });
    this.downstream.onmessage = (msg) => this.#fromClient(msg);
    this.downstream.onclose = () => void this.close('the caller ended the session');
  }

  async start(): Promise<void> {
    await this.downstream.start();
  }

  get busy(): boolean {
    return this.#pending.size > 0;
  }

  // ------------------------------------------------------------------------------------------
  // Caller → Airlock

  #fromClient(msg: JSONRPCMessage): void {
    this.lastActive = Date.now();
    if (isJSONRPCRequest(msg)) {
      const pending: Pending = { method: msg.method, progressToken: progressTokenOf(msg) };
      this.#pending.set(msg.id, pending);
      switch (msg.method) {
        case 'initialize':
          void this.#initialize(msg);
          return;
        case 'ping':
          this.#reply(msg.id, {});
          return;
        case 'tools/list':
          void this.#listTools(msg);
          return;
        case 'tools/call':
          void this.#callTool(msg, pending);
          return;
        default:
          this.#error(
            msg.id,
            -32601,
            `${msg.method} is not offered on the aggregated endpoint /mcp, which federates tools only; use /mcp/CONNECTION for resources and prompts`,
          );
          return;
      }
    }
    if (isJSONRPCNotification(msg)) {
      if (msg.method === 'notifications/cancelled') {
        const id = (msg.params as { requestId?: RequestId } | undefined)?.requestId;
        const pending = id === undefined ? undefined : this.#pending.get(id);
        if (pending?.hold) pending.hold.abort();
        else if (pending?.link) this.#send(pending.link, msg);
      }
      // notifications/initialized was sent to each tool server by Airlock already; the others
      // (roots changed) concern every server. Outside notifications/ nothing passes unjudged.
      else if (msg.method !== 'notifications/initialized' && msg.method.startsWith('notifications/'))
        for (const link of this.#links.values()) if (link.ok) this.#send(link, msg);
      return;
    }
    if (isJSONRPCResultResponse(msg) || isJSONRPCErrorResponse(msg)) {
      // The caller answering a tool server's request: back to that server under its own id.
      const relayed = this.#relayed.get(msg.id as RequestId);
      if (!relayed) return;
      this.#relayed.delete(msg.id as RequestId);
      this.#send(relayed.link, { ...msg, id: relayed.id } as JSONRPCMessage);
    }
  }

  async #initialize(msg: JSONRPCRequest): Promise<void> {
    const { gate, principal, log } = this.ctx;
    try {
      await gate.sessionOpened({
        sessionId: this.id,
        protocol: 'mcp',
        connection: '*',
        principal,
        source: this.ctx.source,
        attributes: {
          client: (msg.params as { clientInfo?: unknown } | undefined)?.clientInfo ?? null,
          connections: this.ctx.connections.map((c) => c.name),
        },
      });
      this.#opened = true;
      if (this.ctx.recorder)
        this.#recording = new SessionRecording(this.ctx.recorder, {
          session: this.id,
          connection: '*',
          principal: principal.name,
          source: this.ctx.source,
        });
    } catch (err) {
      this.#error(msg.id, MCP_ERRORS.gate, failClosedText(err));
      void this.close('the audit log could not be written');
      return;
    }
    const params = (msg.params ?? {}) as { protocolVersion?: unknown };
    this.#init = msg;
    await Promise.all(this.ctx.connections.map((c) => this.#connect(c, msg)));
    if (this.#closed) return;
    const asked = typeof params.protocolVersion === 'string' ? params.protocolVersion : '';
    this.#reply(msg.id, {
      protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(asked) ? asked : LATEST_PROTOCOL_VERSION,
      capabilities: { tools: { listChanged: true } },
      serverInfo: { name: 'airlock', version: this.ctx.serverVersion },
      instructions: `Tools of the MCP connections behind Airlock, named CONNECTION${TOOL_SEPARATOR}TOOL. Every call is checked against policy; a call may wait for a person to approve it, and a refused call says why.`,
    });
    log?.info(
      {
        session: this.id,
        connections: [...this.#links.values()].filter((l) => l.ok).map((l) => l.connection.name),
      },
      'mcp aggregated session opened',
    );
  }

  async #connect(connection: McpConnection, init: JSONRPCRequest): Promise<void> {
    const { log } = this.ctx;
    let link: Link | undefined;
    try {
      const up = openUpstream(connection, log);
      link = { connection, up, tools: new Map(), ok: false };
      const l = link;
      up.transport.onmessage = (m) => this.#fromServer(l, m);
      up.transport.onclose = () => this.#linkClosed(l);
      up.transport.onerror = (err) =>
        log?.warn(
          { session: this.id, connection: connection.name, err: err.message },
          'mcp tool server error',
        );
      this.#links.set(connection.name, link);
      await up.transport.start();
      const answer = await this.#request(
        link,
        'initialize',
        initializeForUpstream(init.params ?? {}) as never,
      );
      const version = (answer as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') up.setProtocolVersion(version);
      link.ok = true;
      this.#send(link, { jsonrpc: '2.0', method: 'notifications/initialized' });
    } catch (err) {
      // One tool server down leaves the others usable; its tools are simply not listed.
      log?.warn(
        { session: this.id, connection: connection.name, err: (err as Error)?.message },
        'mcp tool server left out of the aggregated session',
      );
      if (link) {
        link.ok = false;
        await link.up.transport.close().catch(() => {});
      }
    }
  }

  /** A request of Airlock's own to one tool server; resolves with its result. */
  #request(link: Link, method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = `${this.#idPrefix}${++this.#nextId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#internal.delete(id);
        reject(new Error(`${method} got no answer within ${UPSTREAM_TIMEOUT_MS / 1000}s`));
      }, UPSTREAM_TIMEOUT_MS);
      this.#internal.set(id, (msg) => {
        clearTimeout(timer);
        if (isJSONRPCResultResponse(msg)) resolve(msg.result as Record<string, unknown>);
        else
          reject(new Error((msg as { error?: { message?: string } }).error?.message ?? `${method} failed`));
      });
      link.up.transport.send({ jsonrpc: '2.0', id, method, params }).catch((err: unknown) => {
        clearTimeout(timer);
        this.#internal.delete(id);
        reject(err);
      });
    });
  }

  async #listTools(msg: JSONRPCRequest): Promise<void> {
    const { policy, principal } = this.ctx;
    const lists = await Promise.all(
      [...this.#links.values()]
        .filter((l) => l.ok)
        .map(async (link) => {
          const out: Record<string, unknown>[] = [];
          try {
            let cursor: string | undefined;
            for (let page = 0; page < MAX_PAGES; page++) {
              const result = await this.#request(link, 'tools/list', cursor === undefined ? {} : { cursor });
              const tools = Array.isArray(result.tools) ? (result.tools as Record<string, unknown>[]) : [];
              for (const t of tools) {
                if (typeof t?.name !== 'string') continue;
                const info = t as unknown as ToolInfo;
                link.tools.set(info.name, info);
                if (
                  !mayEverCall(
                    policy,
                    link.connection.name,
                    principal,
                    info.name,
                    possibleKinds(link.connection, info),
                  )
                )
                  continue;
                out.push({ ...t, name: `${link.connection.name}${TOOL_SEPARATOR}${info.name}` });
              }
              cursor = typeof result.nextCursor === 'string' ? result.nextCursor : undefined;
              if (cursor === undefined) break;
            }
          } catch (err) {
            this.ctx.log?.warn(
              { session: this.id, connection: link.connection.name, err: (err as Error)?.message },
              'mcp tools/list failed on one tool server',
            );
          }
          return out;
        }),
    );
    this.#reply(msg.id, { tools: lists.flat() });
  }

  /** The connection a prefixed tool name points at (the longest matching connection name). */
  #route(name: string): { link: Link; tool: string } | undefined {
    let best: Link | undefined;
    for (const link of this.#links.values())
      if (
        link.ok &&
        name.startsWith(`${link.connection.name}${TOOL_SEPARATOR}`) &&
        (!best || link.connection.name.length > best.connection.name.length)
      )
        best = link;
    if (!best) return undefined;
    return { link: best, tool: name.slice(best.connection.name.length + TOOL_SEPARATOR.length) };
  }

  async #callTool(msg: JSONRPCRequest, pending: Pending): Promise<void> {
    const call = toolCallParams(msg);
    if (!call) {
      this.#error(msg.id, MCP_ERRORS.invalidParams, TOOL_CALL_NEEDS);
      return;
    }
    const { name, args } = call;
    if (this.#reconnecting.size > 0) await Promise.all(this.#reconnecting.values());
    const route = this.#route(name);
    if (!route) {
      this.#toolError(
        msg.id,
        `there is no tool ${name}: tools here are named CONNECTION${TOOL_SEPARATOR}TOOL; list them with tools/list`,
      );
      return;
    }
    const { link, tool } = route;
    const action = toolCallAction(
      { name: tool, arguments: args },
      {
        connection: link.connection,
        principal: this.ctx.principal,
        sessionId: this.id,
        source: this.ctx.source,
        info: link.tools.get(tool),
        classifySql: this.ctx.classifySql,
        calledAs: name,
      },
    );
    this.#recording?.call(msg.id, name, args);
    const verdict = await judgeToolCall(action, msg.id, pending, this.ctx, this.#caller);
    if (this.#closed) return;
    this.#recording?.decision(
      msg.id,
      verdict.forward ? 'forwarded' : 'refused',
      verdict.forward ? undefined : verdict.text,
    );
    if (!verdict.forward) return this.#toolError(msg.id, verdict.text);
    pending.link = link;
    this.#send(link, { ...msg, params: { ...msg.params, name: tool } }, msg.id);
  }

  // ------------------------------------------------------------------------------------------
  // Tool servers → caller

  #fromServer(link: Link, msg: JSONRPCMessage): void {
    this.lastActive = Date.now();
    if (isJSONRPCResultResponse(msg) || isJSONRPCErrorResponse(msg)) {
      const id = msg.id as RequestId;
      const internal = this.#internal.get(id);
      if (internal) {
        this.#internal.delete(id);
        internal(msg);
        return;
      }
      if (this.#pending.get(id)?.link !== link) return;
      this.#pending.delete(id);
      // Only tools/call is relayed here, so every result is a tool result.
      const masker = this.#maskers.get(link.connection.name);
      const out =
        masker && isJSONRPCResultResponse(msg) ? { ...msg, result: maskToolResult(masker, msg.result) } : msg;
      if (isJSONRPCResultResponse(out)) this.#recording?.result(id, out.result);
      else this.#recording?.error(id, (out as { error?: unknown }).error);
      this.#toClient(out);
      return;
    }
    if (isJSONRPCNotification(msg)) {
      const token = (msg.params as { progressToken?: unknown } | undefined)?.progressToken;
      if (msg.method !== 'notifications/progress' || token === undefined) {
        // list_changed, logging and other server notifications: the caller's standalone stream.
        this.#toClient(msg);
        return;
      }
      for (const [id, p] of this.#pending)
        if (p.link === link && p.progressToken === token) {
          this.#toClient(msg, id);
          return;
        }
      return;
    }
    const request = msg as JSONRPCRequest;
    const refused = refuseRoots(request);
    if (refused) {
      this.#send(link, refused);
      return;
    }
    // A request of the tool server's own (sampling, elicitation), under a fresh id.
    const id = `${this.#idPrefix}${++this.#nextId}`;
    this.#relayed.set(id, { link, id: request.id });
    let related: RequestId | undefined;
    for (const [rid, p] of this.#pending) if (p.link === link) related = rid;
    this.#toClient({ ...request, id }, related);
  }

  #linkClosed(link: Link): void {
    if (this.#closed || !link.ok) return;
    link.ok = false;
    this.ctx.log?.warn(
      { session: this.id, connection: link.connection.name },
      'mcp tool server closed its session',
    );
    const restarting = this.#mayRestart(link.connection.name);
    for (const [id, p] of this.#pending)
      if (p.link === link)
        this.#error(
          id,
          MCP_ERRORS.upstream,
          `the tool server of connection ${link.connection.name} stopped while handling this request; ${
            restarting ? 'Airlock started a new session with it, so try again' : 'start a new session'
          }`,
        );
    if (restarting) void this.#reconnect(link);
  }

  /** Like /mcp/CONNECTION: a few new sessions with a tool server that went away, then none. */
  #mayRestart(connection: string): boolean {
    if (!this.#init) return false;
    const now = Date.now();
    const recent = (this.#restarts.get(connection) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
    if (recent.length >= RESTARTS) return false;
    recent.push(now);
    this.#restarts.set(connection, recent);
    return true;
  }

  #reconnect(link: Link): Promise<void> {
    const name = link.connection.name;
    const running = this.#reconnectLink(link).finally(() => this.#reconnecting.delete(name));
    this.#reconnecting.set(name, running);
    return running;
  }

  async #reconnectLink(link: Link): Promise<void> {
    link.ok = false;
    link.up.transport.onclose = undefined;
    await link.up.transport.close().catch(() => {});
    if (this.#closed || !this.#init) return;
    await this.#connect(link.connection, this.#init);
    // What the old session listed still describes the tools until the caller lists them again.
    const fresh = this.#links.get(link.connection.name);
    if (fresh && fresh !== link) for (const [name, info] of link.tools) fresh.tools.set(name, info);
  }

  #send(link: Link, msg: JSONRPCMessage, callerId?: RequestId): void {
    link.up.transport.send(msg).catch((err: unknown) => {
      // The tool server forgot the session (it restarted): open a new one.
      if ((err as { code?: unknown })?.code === 404 && link.ok && this.#mayRestart(link.connection.name)) {
        if (callerId !== undefined)
          this.#error(
            callerId,
            MCP_ERRORS.upstream,
            `the tool server of connection ${link.connection.name} lost the session; Airlock started a new one, so try again`,
          );
        void this.#reconnect(link);
        return;
      }
      this.ctx.log?.warn(
        { session: this.id, connection: link.connection.name, err: (err as Error)?.message },
        'mcp message could not be sent to the tool server',
      );
      if (callerId !== undefined)
        this.#error(
          callerId,
          MCP_ERRORS.upstream,
          `the tool server of connection ${link.connection.name} did not accept the request; try again, and if it persists ask an Airlock admin to check it`,
        );
    });
  }

  #toClient(msg: JSONRPCMessage, relatedRequestId?: RequestId): void {
    if (!this.#closed) sendToCaller(this, this.ctx.log, msg, relatedRequestId);
  }

  #reply(id: RequestId, result: Record<string, unknown>): void {
    this.#pending.delete(id);
    this.#toClient({ jsonrpc: '2.0', id, result });
  }

  #toolError(id: RequestId, text: string): void {
    this.#reply(id, { content: [{ type: 'text', text }], isError: true });
  }

  #error(id: RequestId, code: number, message: string): void {
    this.#pending.delete(id);
    this.#toClient({ jsonrpc: '2.0', id, error: { code, message } });
  }

  async close(reason: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Forget it (and free its slot) at once: nothing new reaches a closing session.
    this.#onClosed(this);
    for (const p of this.#pending.values()) p.hold?.abort();
    await Promise.all([...this.#links.values()].map((link) => endUpstream(link.up)));
    await this.downstream.close().catch(() => {});
    if (this.#opened) this.ctx.gate.sessionClosed(this.id, { reason });
    await this.#recording?.close(reason, this.ctx.log);
    this.ctx.log?.info({ session: this.id, reason }, 'mcp aggregated session closed');
  }
}
