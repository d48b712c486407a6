/**
 * One caller's MCP session on `/mcp/CONNECTION`, relayed message by message to its own session
 * with the connection's tool server. Everything passes through unchanged (notifications,
 * progress, cancellation, resources, prompts, sampling, elicitation, methods we do not know)
 * except three things Airlock owns:
 *
 * - `tools/call` is an Action: allowed calls are forwarded, denied ones answered with a tool
 *   error carrying the reason, held ones wait for people (with progress notifications when the
 *   caller asked for progress) or are answered at once in `retry` mode.
 * - `tools/list` results leave out the tools this caller could never call.
 * - A cancellation of a call that is still held cancels its approval request instead of
 *   reaching the tool server, which never saw the call.
 *
 * Request ids pass through unchanged: each caller session has its own upstream session, so the
 * id spaces cannot collide.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/basic
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
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { Principal } from '../../core/action.ts';
import type { GatePort } from '../../core/gate-types.ts';
import { maskerFor, type SessionMasker } from '../../core/masking/masker.ts';
import type { McpConnection } from '../../core/policy/connections/mcp.ts';
import { globMatch } from '../../core/policy/evaluate.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { progressTokenOf, sendToCaller, TOOL_CALL_NEEDS, toolCallParams } from './caller.ts';
import { failClosedText, type HeldRequest, type JudgedCaller, judgeToolCall } from './judge.ts';
import { maskResourceResult, maskToolResult } from './mask.ts';
import { SessionRecording } from './record.ts';
import { initializeForUpstream, refuseRoots } from './roots.ts';
import {
  canonicalJson,
  methodAction,
  possibleKinds,
  type SqlClassifier,
  type ToolInfo,
  toolCallAction,
  UNJUDGED_METHODS,
} from './tool-action.ts';
import { endUpstream, openUpstream, type UpstreamTransport } from './upstream.ts';
import { mayEverCall } from './visibility.ts';

/** JSON-RPC error codes Airlock answers with (the implementation-defined server range). */
export const MCP_ERRORS = {
  /** The tool server could not be reached or failed mid-request. */
  upstream: -32000,
  /** Airlock could not record or judge the call (audit log down): refused, fail closed. */
  gate: -32001,
  /** A request other than tools/call that policy refused (a tool call is refused as a tool error). */
  refused: -32003,
  invalidParams: -32602,
} as const;

/** Restarts of a tool server's session allowed per window, before the caller's session ends. */
const RESTARTS = 3;
const RESTART_WINDOW_MS = 5 * 60_000;
const RESTART_TIMEOUT_MS = 30_000;
/** How long the person at the agent's client has to confirm a call. */
const CONFIRM_TIMEOUT_MS = 5 * 60_000;

export interface RelayContext {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly connection: McpConnection;
  readonly principal: Principal;
  readonly source?: string | undefined;
  readonly log?: Logger | undefined;
  readonly classifySql?: SqlClassifier | undefined;
  /** Where session recordings go; none are made without it. */
  readonly recorder?: Recorder | undefined;
  /** How often a held call sends a progress notification. */
  readonly progressIntervalMs: number;
}

interface Pending extends HeldRequest {
  readonly method: string;
  /** True once the tool server has the request (so a cancel must go there). */
  forwarded: boolean;
}

export class RelaySession {
  readonly downstream: StreamableHTTPServerTransport;
  readonly ctx: RelayContext;
  /** Set when the caller's initialize arrives. */
  id = '';
  lastActive = Date.now();
  #upstream: UpstreamTransport | undefined;
  #ready: Promise<boolean>;
  #setReady!: (ok: boolean) => void;
  readonly #pending = new Map<RequestId, Pending>();
  readonly #tools = new Map<string, ToolInfo>();
  /** The policy's masking rules for this connection and caller; undefined when none apply. */
  readonly #masker: SessionMasker | undefined;
  #recording: SessionRecording | undefined;
  #opened = false;
  #closed = false;
  /** The caller's initialize params, replayed when the tool server needs a new session. */
  #initParams: unknown;
  #restarts: number[] = [];
  /** Airlock's own requests to the tool server (a replayed initialize), by id. */
  readonly #internal = new Map<RequestId, (msg: JSONRPCMessage) => void>();
  /** Airlock's own requests to the caller (confirmations), by id. */
  readonly #askedClient = new Map<RequestId, (msg: JSONRPCMessage) => void>();
  #clientCanElicit = false;
  readonly #onClosed: (session: RelaySession) => void;
  readonly #caller: JudgedCaller;

  constructor(
    ctx: RelayContext,
    onInitialized: (s: RelaySession) => void,
    onClosed: (s: RelaySession) => void,
  ) {
    this.ctx = ctx;
    this.#onClosed = onClosed;
    this.#masker = maskerFor(ctx.policy.masking, ctx.connection.name, ctx.principal);
    this.#caller = { toCaller: (msg, related) => this.#toClient(msg, related), closed: () => this.#closed };
    this.#ready = new Promise((resolve) => {
      this.#setReady = resolve;
    });
    this.downstream = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        this.id = id;
        onInitialized(this);
      },
    });
    this.downstream.onmessage = (msg) => this.#fromClient(msg);
    this.downstream.onclose = () => void this.close('the caller ended the session');
    this.downstream.onerror = (err) =>
      ctx.log?.debug({ session: this.id, err: err.message }, 'mcp caller transport error');
  }

  async start(): Promise<void> {
    await this.downstream.start();
  }

  /** Requests in flight, held calls included: a session with any is not idle. */
  get busy(): boolean {
    return this.#pending.size > 0;
  }

  // ------------------------------------------------------------------------------------------
  // Caller → tool server

  #fromClient(msg: JSONRPCMessage): void {
    this.lastActive = Date.now();
    if (isJSONRPCRequest(msg)) {
      const pending: Pending = { method: msg.method, progressToken: progressTokenOf(msg), forwarded: false };
      this.#pending.set(msg.id, pending);
      if (msg.method !== 'tools/call') this.#recording?.request(msg.id, msg.method);
      if (msg.method === 'initialize') void this.#initialize(msg, pending);
      else if (msg.method === 'tools/call') void this.#toolsCall(msg, pending);
      else if (UNJUDGED_METHODS.has(msg.method)) void this.#forward(msg, pending);
      else void this.#judged(msg, pending);
      return;
    }
    if (isJSONRPCResultResponse(msg) || isJSONRPCErrorResponse(msg)) {
      const asked = this.#askedClient.get(msg.id as RequestId);
      if (asked) {
        asked(msg);
        return;
      }
    }
    if (isJSONRPCNotification(msg) && msg.method === 'notifications/cancelled') {
      const id = (msg.params as { requestId?: RequestId } | undefined)?.requestId;
      const pending = id === undefined ? undefined : this.#pending.get(id);
      if (pending && !pending.forwarded) {
        // The tool server never saw it; cancelling the hold cancels the approval request.
        pending.hold?.abort();
        return;
      }
    }
    // A "notification" named like a request (tools/call without an id) would reach the tool
    // server unjudged; only the notifications/ namespace passes.
    if (isJSONRPCNotification(msg) && !msg.method.startsWith('notifications/')) {
      this.ctx.log?.warn(
        { session: this.id, method: msg.method },
        'mcp notification outside notifications/ dropped',
      );
      return;
    }
    // Notifications, and the caller's answers to the tool server's own requests.
    void this.#forward(msg);
  }

  async #initialize(msg: JSONRPCRequest, pending: Pending): Promise<void> {
    const { connection, gate, log, principal } = this.ctx;
    try {
      await gate.sessionOpened({
        sessionId: this.id,
        protocol: 'mcp',
        connection: connection.name,
        principal,
        source: this.ctx.source,
        attributes: {
          client: (msg.params as { clientInfo?: unknown } | undefined)?.clientInfo ?? null,
          transport: connection.upstream.transport,
        },
      });
      this.#opened = true;
      if (this.ctx.recorder)
        this.#recording = new SessionRecording(this.ctx.recorder, {
          session: this.id,
          connection: connection.name,
          principal: principal.name,
          source: this.ctx.source,
        });
    } catch (err) {
      this.#setReady(false);
      this.#error(msg.id, MCP_ERRORS.gate, failClosedText(err));
      void this.close('the audit log could not be written');
      return;
    }
    this.#initParams = initializeForUpstream(msg.params);
    this.#clientCanElicit =
      (msg.params as { capabilities?: { elicitation?: unknown } } | undefined)?.capabilities?.elicitation !==
      undefined;
    try {
      await this.#openUpstream();
    } catch (err) {
      log?.warn(
        { session: this.id, connection: connection.name, err: (err as Error)?.message },
        'mcp tool server could not be started',
      );
      this.#setReady(false);
      this.#error(
        msg.id,
        MCP_ERRORS.upstream,
        `Airlock could not reach the tool server of connection ${connection.name}; ask an Airlock admin to check it`,
      );
      void this.close('the tool server could not be reached');
      return;
    }
    this.#setReady(true);
    await this.#forward({ ...msg, params: this.#initParams } as JSONRPCMessage, pending);
  }

  async #openUpstream(): Promise<void> {
    const { connection, log } = this.ctx;
    const up = openUpstream(connection, log);
    up.transport.onmessage = (m) => this.#fromServer(m);
    up.transport.onclose = () => this.#upstreamClosed();
    up.transport.onerror = (err) =>
      log?.warn({ session: this.id, connection: connection.name, err: err.message }, 'mcp tool server error');
    this.#upstream = up;
    await up.transport.start();
  }

  /**
   * Supervision: a stdio tool server that exits, or an HTTP one that forgot the session (404),
   * gets a new session with the caller's original initialize, at most RESTARTS times per
   * RESTART_WINDOW_MS. Calls in flight fail; the caller's session carries on.
   */
  #mayRestart(): boolean {
    const now = Date.now();
    this.#restarts = this.#restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    if (this.#restarts.length >= RESTARTS) return false;
    this.#restarts.push(now);
    return true;
  }

  async #restart(): Promise<void> {
    const { connection, log } = this.ctx;
    this.#ready = new Promise((resolve) => {
      this.#setReady = resolve;
    });
    const old = this.#upstream;
    if (old) {
      old.transport.onclose = undefined;
      await old.transport.close().catch(() => {});
    }
    try {
      await this.#openUpstream();
      const up = this.#upstream!;
      const id = `airlock-reinit-${randomUUID()}`;
      const answer = new Promise<JSONRPCMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer to initialize')), RESTART_TIMEOUT_MS);
        timer.unref();
        this.#internal.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
      });
      await up.transport.send({
        jsonrpc: '2.0',
        id,
        method: 'initialize',
        params: this.#initParams as never,
      });
      const res = await answer;
      if (!isJSONRPCResultResponse(res)) throw new Error('the tool server refused initialize');
      const version = (res.result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') up.setProtocolVersion(version);
      await up.transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      log?.info({ session: this.id, connection: connection.name }, 'mcp tool server session restarted');
      this.#setReady(true);
    } catch (err) {
      log?.warn(
        { session: this.id, connection: connection.name, err: (err as Error)?.message },
        'mcp tool server could not be restarted',
      );
      this.#setReady(false);
      void this.close('the tool server could not be restarted');
    }
  }

  /** Fails the requests the tool server had when it went away. */
  #failForwarded(restarting: boolean): void {
    for (const [id, p] of this.#pending)
      if (p.forwarded)
        this.#error(
          id,
          MCP_ERRORS.upstream,
          `the tool server of connection ${this.ctx.connection.name} stopped while handling this request; ${
            restarting ? 'Airlock started a new session with it, so try again' : 'start a new session'
          }`,
        );
  }

  async #forward(msg: JSONRPCMessage, pending?: Pending): Promise<void> {
    if (!(await this.#ready) || this.#closed || !this.#upstream) {
      if (isJSONRPCRequest(msg))
        this.#error(msg.id, MCP_ERRORS.upstream, 'the session with the tool server is closed');
      return;
    }
    if (pending) pending.forwarded = true;
    try {
      await this.#upstream.transport.send(msg);
    } catch (err) {
      const status = (err as { code?: unknown })?.code;
      // The tool server no longer knows the session (it restarted): open a new one.
      if (status === 404 && !this.#closed && this.#mayRestart()) {
        if (pending) pending.forwarded = false;
        if (isJSONRPCRequest(msg))
          this.#error(
            msg.id,
            MCP_ERRORS.upstream,
            `the tool server of connection ${this.ctx.connection.name} lost the session; Airlock started a new one, so try again`,
          );
        void this.#restart();
        return;
      }
      this.ctx.log?.warn(
        { session: this.id, connection: this.ctx.connection.name, err: (err as Error)?.message },
        'mcp message could not be sent to the tool server',
      );
      if (isJSONRPCRequest(msg))
        this.#error(
          msg.id,
          MCP_ERRORS.upstream,
          `the tool server of connection ${this.ctx.connection.name} did not accept the request${
            typeof status === 'number' ? ` (HTTP ${status})` : ''
          }; try again, and if it persists ask an Airlock admin to check the tool server`,
        );
    }
  }

  // ------------------------------------------------------------------------------------------
  // tools/call

  async #toolsCall(msg: JSONRPCRequest, pending: Pending): Promise<void> {
    const { connection } = this.ctx;
    const call = toolCallParams(msg);
    if (!call) {
      this.#error(msg.id, MCP_ERRORS.invalidParams, TOOL_CALL_NEEDS);
      return;
    }
    const { name, args } = call;
    const action = toolCallAction(
      { name, arguments: args },
      {
        connection,
        principal: this.ctx.principal,
        sessionId: this.id,
        source: this.ctx.source,
        info: this.#tools.get(name),
        classifySql: this.ctx.classifySql,
      },
    );
    this.#recording?.call(msg.id, name, args);
    const verdict = await judgeToolCall(action, msg.id, pending, this.ctx, this.#caller);
    let refusal = verdict.forward ? undefined : verdict.text;
    // Allowed by policy; some tools are also confirmed by the person at the agent's client.
    if (refusal === undefined && connection.confirm.some((p) => globMatch(p, name)))
      refusal = await this.#confirm(msg.id, name, args);
    this.#recording?.decision(msg.id, refusal === undefined ? 'forwarded' : 'refused', refusal);
    if (refusal === undefined) return this.#forward(msg, pending);
    if (!this.#closed) this.#toolError(msg.id, refusal);
  }

  /**
   * Asks the person at the agent's client to confirm a call (MCP elicitation). Resolves with
   * undefined when they allow it, or the text to refuse it with.
   * https://modelcontextprotocol.io/specification/2025-06-18/client/elicitation
   */
  async #confirm(relatedId: RequestId, name: string, args: unknown): Promise<string | undefined> {
    if (!this.#clientCanElicit)
      return `${name} must be confirmed by the person at the agent's client, and this client cannot ask (it does not support elicitation)`;
    const id = `airlock-confirm-${randomUUID()}`;
    const answer = new Promise<JSONRPCMessage | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), CONFIRM_TIMEOUT_MS);
      timer.unref();
      this.#askedClient.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
    this.#toClient(
      {
        jsonrpc: '2.0',
        id,
        method: 'elicitation/create',
        params: {
          message: `Airlock: allow ${name} ${canonicalJson(args)} on ${this.ctx.connection.name}?`,
          requestedSchema: {
            type: 'object',
            properties: { allow: { type: 'boolean', title: 'Allow this call' } },
            required: ['allow'],
          },
        },
      },
      relatedId,
    );
    const res = await answer;
    this.#askedClient.delete(id);
    const result =
      res && isJSONRPCResultResponse(res)
        ? (res.result as { action?: unknown; content?: { allow?: unknown } })
        : undefined;
    if (result?.action === 'accept' && result.content?.allow === true) return undefined;
    return `the person at the agent's client did not confirm ${name}`;
  }

  /** Any request but tools/call that is not plainly descriptive: judged, refused as an error. */
  async #judged(msg: JSONRPCRequest, pending: Pending): Promise<void> {
    const action = methodAction(msg.method, msg.params, {
      connection: this.ctx.connection,
      principal: this.ctx.principal,
      sessionId: this.id,
      source: this.ctx.source,
    });
    const verdict = await judgeToolCall(action, msg.id, pending, this.ctx, this.#caller);
    if (verdict.forward) return this.#forward(msg, pending);
    if (!this.#closed) this.#error(msg.id, MCP_ERRORS.refused, verdict.text);
  }

  // ------------------------------------------------------------------------------------------
  // Tool server → caller

  #fromServer(msg: JSONRPCMessage): void {
    this.lastActive = Date.now();
    if (isJSONRPCResultResponse(msg) || isJSONRPCErrorResponse(msg)) {
      const id = msg.id as RequestId;
      const internal = this.#internal.get(id);
      if (internal) {
        this.#internal.delete(id);
        internal(msg);
        return;
      }
      const pending = this.#pending.get(id);
      if (pending && isJSONRPCResultResponse(msg)) {
        if (pending.method === 'initialize') {
          const version = (msg.result as { protocolVersion?: unknown }).protocolVersion;
          if (typeof version === 'string') this.#upstream?.setProtocolVersion(version);
        } else if (pending.method === 'tools/list') msg = { ...msg, result: this.#visibleTools(msg.result) };
        // A task's result is the result of the tools/call that started it.
        else if ((pending.method === 'tools/call' || pending.method === 'tasks/result') && this.#masker)
          msg = { ...msg, result: maskToolResult(this.#masker, msg.result) };
        else if (pending.method === 'resources/read' && this.#masker)
          msg = { ...msg, result: maskResourceResult(this.#masker, msg.result) };
      }
      this.#pending.delete(id);
      if (pending?.method === 'tools/call')
        if (isJSONRPCResultResponse(msg)) this.#recording?.result(id, msg.result);
        else this.#recording?.error(id, msg.error);
      this.#toClient(msg);
      return;
    }
    if (isJSONRPCNotification(msg)) {
      const token = (msg.params as { progressToken?: unknown } | undefined)?.progressToken;
      this.#toClient(msg, token === undefined ? undefined : this.#requestWithToken(token));
      return;
    }
    const refused = refuseRoots(msg as JSONRPCRequest);
    if (refused) {
      void this.#upstream?.transport.send(refused).catch(() => {});
      return;
    }
    // A request of the tool server's own (sampling, elicitation): it belongs with a call in
    // flight, whose response stream the caller is reading.
    this.#toClient(msg, this.#latestForwarded());
  }

  #visibleTools(result: Record<string, unknown>): Record<string, unknown> {
    const tools = result.tools;
    if (!Array.isArray(tools)) return result;
    const { policy, connection, principal } = this.ctx;
    const visible = tools.filter((t: unknown) => {
      const name = (t as { name?: unknown } | null)?.name;
      if (typeof name !== 'string') return false;
      const info = t as ToolInfo;
      this.#tools.set(name, info);
      return mayEverCall(policy, connection.name, principal, name, possibleKinds(connection, info));
    });
    return { ...result, tools: visible };
  }

  #requestWithToken(token: unknown): RequestId | undefined {
    for (const [id, p] of this.#pending) if (p.progressToken === token) return id;
    return undefined;
  }

  #latestForwarded(): RequestId | undefined {
    let last: RequestId | undefined;
    for (const [id, p] of this.#pending) if (p.forwarded && p.method !== 'initialize') last = id;
    return last;
  }

  #toClient(msg: JSONRPCMessage, relatedRequestId?: RequestId): void {
    if (!this.#closed) sendToCaller(this, this.ctx.log, msg, relatedRequestId);
  }

  #toolError(id: RequestId, text: string): void {
    this.#pending.delete(id);
    this.#toClient({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }], isError: true } });
  }

  #error(id: RequestId, code: number, message: string): void {
    this.#pending.delete(id);
    this.#toClient({ jsonrpc: '2.0', id, error: { code, message } });
  }

  #upstreamClosed(): void {
    if (this.#closed) return;
    this.ctx.log?.warn(
      { session: this.id, connection: this.ctx.connection.name },
      'mcp tool server closed the session',
    );
    const restarting = this.#initParams !== undefined && this.#mayRestart();
    this.#failForwarded(restarting);
    if (restarting) void this.#restart();
    else void this.close('the tool server closed the session');
  }

  // ------------------------------------------------------------------------------------------

  async close(reason: string): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Forget it (and free its slot) at once: nothing new reaches a closing session.
    this.#onClosed(this);
    this.#setReady(false);
    for (const p of this.#pending.values()) p.hold?.abort();
    if (this.#upstream) await endUpstream(this.#upstream);
    await this.downstream.close().catch(() => {});
    if (this.#opened) this.ctx.gate.sessionClosed(this.id, { reason });
    await this.#recording?.close(reason, this.ctx.log);
    this.ctx.log?.info(
      { session: this.id, connection: this.ctx.connection.name, reason },
      'mcp session closed',
    );
  }
}
