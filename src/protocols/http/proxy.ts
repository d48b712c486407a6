/**
 * The HTTP proxy: `/TYPE/NAME/rest` → authenticate the caller, build the Action, ask the Gate,
 * and forward, refuse or hold. Forwarding streams both ways with backpressure (the caller's
 * response is written only as fast as the caller reads it; the upstream is read no faster).
 */
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { Action, Principal } from '../../core/action.ts';
import { AirlockError, isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import type { Policy, PolicyConnection } from '../../core/policy/policy.ts';
import { EventStreamWriter } from '../../core/recording/events.ts';
import type { Recorder } from '../../core/recording/types.ts';
import type { Classified, Exchange, ProxyAdapter, ResponseFilter } from './adapter.ts';
import { sendJson } from './adapter.ts';
import { hasBody, readBody } from './body.ts';
import { authenticateCaller } from './caller-auth.ts';
import { BodyCapture, withoutCredentials } from './capture.ts';
import { plainTarget } from './classify.ts';
import { pruneStaleScratch, removeActiveScratch } from './git/inspect.ts';
import { callerHeaders, callerToken, upstreamHeaders } from './headers.ts';
import { hostRoutes, routeByHost } from './host-route.ts';
import { relayBody } from './relay-body.ts';
import { UpstreamPools } from './upstream.ts';

export interface Logger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

export interface ProxyOptions {
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly tokens: Authenticator;
  readonly adapters: readonly ProxyAdapter<never>[];
  readonly log?: Logger | undefined;
  /** Each caller session's exchanges are recorded as an event stream when given. */
  readonly recorder?: Recorder | undefined;
  /** Connection slots (total and per principal) shared with the other protocols. */
  readonly limits?: Limits | undefined;
}

/** Largest response body buffered to be rewritten (masked). */
const MAX_FILTERED_BODY = 64 * 1024 * 1024;
/** First TCP keep-alive probe on the socket of a request held in `wait` mode. */
const HELD_KEEPALIVE_MS = 30_000;
/** Longest line of a rewritten stream (one watch event). */
const MAX_FILTERED_LINE = 16 * 1024 * 1024;

/** Headers that describe the body as the upstream sent it, not as it is once rewritten. */
const REWRITTEN_BODY_HEADERS = [
  'content-length',
  'content-encoding',
  'content-md5',
  'digest',
  'content-digest',
  'repr-digest',
];

/** Content codings a body to mask may come in (RFC 9110 §8.4.1), decoded with a bound on the output. */
const DECODERS: Readonly<Record<string, (body: Buffer, limit: number) => Buffer>> = {
  identity: (b) => b,
  gzip: (b, limit) => gunzipSync(b, { maxOutputLength: limit }),
  'x-gzip': (b, limit) => gunzipSync(b, { maxOutputLength: limit }),
  deflate: (b, limit) => inflateSync(b, { maxOutputLength: limit }),
  br: (b, limit) => brotliDecompressSync(b, { maxOutputLength: limit }),
};

/** Reads a body until it ends or passes `limit` bytes; past the limit the stream is left paused. */
function readUpTo(body: Readable, limit: number): Promise<{ chunks: Buffer[]; over: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (over: boolean) => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      resolve({ chunks, over });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        body.pause();
        done(true);
      }
    };
    const onEnd = () => done(false);
    const onError = (err: Error) => {
      body.off('data', onData);
      body.off('end', onEnd);
      reject(err);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}

/** Applies a filter to each newline-terminated line of a stream. */
class LineFilter extends Transform {
  #pending: Buffer = Buffer.alloc(0);
  readonly #rewrite: ResponseFilter;
  constructor(rewrite: ResponseFilter) {
    super();
    this.#rewrite = rewrite;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    try {
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
        const line = buf.subarray(0, nl);
        buf = buf.subarray(nl + 1);
        if (line.length > 0) this.push(Buffer.concat([this.#rewrite.apply(line), Buffer.from('\n')]));
      }
    } catch (err) {
      done(err as Error);
      return;
    }
    if (buf.length > MAX_FILTERED_LINE) {
      done(new Error('a streamed line is too long to mask'));
      return;
    }
    this.#pending = Buffer.from(buf);
    done();
  }
  override _flush(done: TransformCallback): void {
    try {
      if (this.#pending.length > 0) this.push(this.#rewrite.apply(this.#pending));
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/**
 * The caller going away, in the form undici takes as a request's `signal` (an EventEmitter with
 * `aborted`): an AbortController per request, with its EventTarget listeners, costs more than
 * the rest of a small request's bookkeeping, and nearly every request ends without the caller
 * leaving. A real AbortSignal is made only for what needs one (a held request's wait).
 */
class CallerGone {
  aborted = false;
  #listeners: (() => void)[] | undefined;
  #controller: AbortController | undefined;
  readonly #res: ServerResponse;
  readonly #onClose: () => void;

  /** Watches `res`: closed before it has finished means the caller has gone. */
  constructor(res: ServerResponse) {
    this.#res = res;
    this.#onClose = this.#closed.bind(this);
    res.on('close', this.#onClose);
  }

  #closed(): void {
    if (!this.#res.writableFinished) this.abort();
  }

  /** Stops watching the response (the request is over). */
  detach(): void {
    this.#res.off('close', this.#onClose);
  }

  on(_event: 'abort', listener: () => void): this {
    if (this.#listeners) this.#listeners.push(listener);
    else this.#listeners = [listener];
    return this;
  }

  /** Each listener runs at most once anyway: abort happens once. */
  once(event: 'abort', listener: () => void): this {
    return this.on(event, listener);
  }

  removeListener(_event: 'abort', listener: () => void): this {
    const i = this.#listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.#listeners?.splice(i, 1);
    return this;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const l of listeners) l();
    this.#controller?.abort();
  }

  /** An AbortSignal that aborts with this (already aborted if the caller has gone). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** For undici, which takes an EventEmitter's `once`/`removeListener`. */
  get emitter(): EventEmitter {
    return this as unknown as EventEmitter;
  }
}

/** One request as the adapters see it; the query string is parsed only when one asks for it. */
class ProxyExchange implements Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly target: string;
  readonly source: string;
  body: Buffer | undefined = undefined;
  #query: URLSearchParams | undefined;
  #credentials: string[] | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, target: string, source: string) {
    this.req = req;
    this.res = res;
    this.method = (req.method ?? 'GET').toUpperCase();
    this.target = target;
    this.source = source;
  }

  get pathname(): string {
    const q = this.target.indexOf('?');
    return q < 0 ? this.target : this.target.slice(0, q);
  }

  get query(): URLSearchParams {
    if (!this.#query) {
      const q = this.target.indexOf('?');
      this.#query = new URLSearchParams(q < 0 ? '' : this.target.slice(q + 1));
    }
    return this.#query;
  }

  /** The credentials that must not appear in what is recorded of this exchange, read once. */
  credentials(connection: PolicyConnection): readonly string[] {
    this.#credentials ??= credentialsIn(connection, this.req);
    return this.#credentials;
  }
}

interface ProxySession {
  readonly id: string;
  readonly recording?: EventStreamWriter | undefined;
}

interface SocketSessions {
  readonly ids: Map<string, ProxySession>;
  /** The session the socket's last request used: a keep-alive caller mostly stays in one. */
  last?: { readonly connection: string; readonly principal: string; readonly session: ProxySession };
}

/** Connection slots a caller's socket holds, one per principal that has used it. */
interface SocketSlots {
  readonly byPrincipal: Map<string, () => void>;
}

/** Request headers kept in recordings: anything that may carry a credential is left out. */
const UNRECORDED_HEADER = /auth|cookie|token|secret|key|password|signature|session/i;

function recordedHeaders(
  headers: IncomingMessage['headers'],
  credentials: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(headers)) {
    const v = headers[k];
    if (v === undefined || UNRECORDED_HEADER.test(k)) continue;
    // A credential repeated under another header name is still a credential.
    out[k] = withoutCredentials(Array.isArray(v) ? v.join(', ') : v, credentials);
  }
  return out;
}

/** Every credential that could show up in a response: the upstream's, and the caller's token. */
function credentialsIn(connection: PolicyConnection, req: IncomingMessage): string[] {
  const out: string[] = [];
  const token = callerToken(req.headers.authorization);
  if (token) out.push(token);
  const c = 'credential' in connection ? connection.credential : undefined;
  try {
    if (c?.type === 'bearer') out.push(c.token.reveal());
    if (c?.type === 'basic') {
      const password = c.password.reveal();
      out.push(password, Buffer.from(`${c.username}:${password}`).toString('base64'));
    }
    if (c?.type === 'header') out.push(c.value.reveal());
  } catch {
    // A credential that cannot be read now was not sent either.
  }
  return out;
}

/** `/http/NAME/rest?q` → type, name and `/rest?q`. */
export function parseRoute(url: string): { prefix: string; name: string; target: string } | undefined {
  const m = /^\/([a-z]+)\/([A-Za-z0-9][A-Za-z0-9_.-]{0,62})([/?][\s\S]*)?$/.exec(url);
  if (!m) return undefined;
  const rest = m[3] ?? '/';
  return { prefix: m[1]!, name: m[2]!, target: rest.startsWith('?') ? `/${rest}` : rest };
}

/**
 * The path and query as they are judged and forwarded: dot segments (also `%2e%2e`) resolved the
 * way servers resolve them, so `/http/api/../x` cannot step out of the connection's base path
 * upstream, and what the rules saw is what the upstream gets.
 */
export function normalizeTarget(target: string): string {
  if (plainTarget(target)) return target;
  try {
    const u = new URL(target, 'http://airlock.invalid');
    return u.pathname + u.search;
  } catch {
    return target;
  }
}

export class HttpProxy {
  readonly #o: ProxyOptions;
  readonly #pools = new UpstreamPools();
  readonly #adapters: Map<string, ProxyAdapter>;
  readonly #sessions = new WeakMap<Socket, SocketSessions>();
  readonly #slots = new WeakMap<Socket, SocketSlots>();
  readonly #open = new Set<CallerGone>();
  readonly #hosts: ReadonlyMap<string, string>;

  constructor(o: ProxyOptions) {
    this.#o = o;
    this.#hosts = hostRoutes(o.policy);
    pruneStaleScratch();
    this.#adapters = new Map(o.adapters.map((a) => [a.protocol, a as unknown as ProxyAdapter]));
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const gone = new CallerGone(res);
    this.#open.add(gone);
    try {
      await this.#handle(req, res, gone);
    } catch (err) {
      this.#o.log?.error({ err: (err as Error).message }, 'http proxy error');
      if (!res.headersSent)
        sendJson(res, 500, new AirlockError('AIRLOCK_E_INTERNAL', 'the proxy failed').toJSON());
      else res.destroy();
    } finally {
      this.#open.delete(gone);
      gone.detach();
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse, gone: CallerGone): Promise<void> {
    const route = routeByHost(req, this.#hosts) ?? parseRoute(req.url ?? '/');
    const adapter = route ? this.#adapters.get(route.prefix) : undefined;
    if (!route || !adapter) {
      const types = [...this.#adapters.keys()].map((t) => `/${t}/NAME/...`).join(', ');
      sendJson(
        res,
        404,
        new AirlockError('AIRLOCK_E_CONNECTION_UNKNOWN', `no connection at ${req.url ?? '/'}`, {
          hint: `address a connection as ${types}`,
        }).toJSON(),
      );
      return;
    }
    const connection = this.#o.policy.connections.get(route.name);
    const source = `${req.socket.remoteAddress ?? 'unknown'}:${req.socket.remotePort ?? 0}`;
    const ex = new ProxyExchange(req, res, normalizeTarget(route.target), source);
    if (connection?.type !== adapter.protocol) {
      const names = [...this.#o.policy.connections.values()]
        .filter((c) => c.type === adapter.protocol)
        .map((c) => c.name);
      adapter.refuse(
        ex,
        new AirlockError(
          'AIRLOCK_E_CONNECTION_UNKNOWN',
          `there is no ${adapter.protocol} connection "${route.name}"`,
          {
            hint:
              names.length > 0
                ? `configured ${adapter.protocol} connections: ${names.join(', ')}`
                : `no ${adapter.protocol} connections are configured`,
          },
        ),
      );
      return;
    }

    const auth = await authenticateCaller(this.#o, req, source, adapter.protocol, connection.name);
    if ('error' in auth) {
      req.resume();
      adapter.unauthorized(ex, auth.error);
      return;
    }
    const principal = auth.principal;

    const refused = this.#takeSlot(req.socket, principal, adapter.protocol, source);
    if (refused) {
      req.resume();
      res.shouldKeepAlive = false;
      adapter.refuse(ex, refused, { reason: refused.message });
      return;
    }

    if (hasBody(req)) {
      try {
        ex.body = await readBody(
          req,
          adapter.maxBody(connection as never),
          this.#o.limits?.config.writeTimeoutMs ?? 0,
        );
      } catch (err) {
        // The rest of a body not read cannot be told from the next request: the connection ends.
        res.shouldKeepAlive = false;
        if (isAirlockError(err)) adapter.refuse(ex, err);
        else res.destroy();
        return;
      }
    }
    const pending = adapter.classify(ex, connection as never);
    const classified = pending instanceof Promise ? await pending : pending;
    const session =
      this.#sessionNow(req.socket, connection, principal) ??
      (await this.#session(req.socket, adapter.protocol, connection, principal, source));
    const sessionId = session.id;
    const started = Date.now();
    const recording = session.recording;
    const action: Action = {
      protocol: adapter.protocol,
      connection: connection.name,
      principal,
      sessionId,
      source,
      ...classified,
    };

    let outcome: Awaited<ReturnType<GatePort['decide']>>;
    try {
      outcome = await this.#o.gate.decide(action);
    } catch (err) {
      adapter.refuse(
        ex,
        isAirlockError(err) ? err : new AirlockError('AIRLOCK_E_INTERNAL', 'the request could not be judged'),
      );
      return;
    }
    if (outcome.verdict === 'deny') {
      if (recording) this.#record(recording, ex, connection, classified, 'deny', { reason: outcome.reason });
      adapter.refuse(
        ex,
        new AirlockError('AIRLOCK_E_DENIED', outcome.reason, {
          hint: `rule "${outcome.decision.rule.name}"`,
        }),
        {
          reason: outcome.reason,
        },
      );
      return;
    }
    if (outcome.verdict === 'hold') {
      const hold = { requestId: outcome.request.id, url: outcome.url, message: outcome.message };
      if (outcome.mode === 'retry') {
        if (recording)
          this.#record(recording, ex, connection, classified, 'hold', { request: hold.requestId });
        adapter.retry(ex, hold);
        return;
      }
      // Probes keep NAT and firewall state for a connection that is quiet while it waits. No
      // `102 Processing` is sent: clients that do not expect an interim response may take it as
      // the final one (see docs/http.md).
      req.socket.setKeepAlive(true, HELD_KEEPALIVE_MS);
      const stopWaiting = adapter.waiting?.(ex, hold);
      let settled: Awaited<ReturnType<GatePort['settled']>>;
      try {
        settled = await this.#o.gate.settled(outcome.request.id, gone.signal);
      } finally {
        stopWaiting?.();
      }
      if (settled.status !== 'approved') {
        if (recording)
          this.#record(recording, ex, connection, classified, settled.status, {
            request: hold.requestId,
            reason: settled.reason,
          });
        adapter.refuse(
          ex,
          new AirlockError(
            settled.status === 'expired' ? 'AIRLOCK_E_REQUEST_EXPIRED' : 'AIRLOCK_E_DENIED',
            settled.reason,
            {
              status: 403,
            },
          ),
          { reason: settled.reason, request: outcome.request.id },
        );
        return;
      }
      try {
        await this.#o.gate.release(outcome.request.id);
      } catch (err) {
        adapter.refuse(
          ex,
          isAirlockError(err)
            ? err
            : new AirlockError('AIRLOCK_E_INTERNAL', 'the approval could not be recorded'),
        );
        return;
      }
    }
    const filter = adapter.responseFilter?.(ex, connection as never, classified, {
      principal,
      masking: this.#o.policy.masking,
    });
    const recordLimit = session.recording ? (adapter.recordBody?.(connection as never) ?? 0) : 0;
    const capture = recordLimit > 0 ? new BodyCapture(recordLimit) : undefined;
    const status = await this.#forward(ex, connection, adapter, gone, filter, capture);
    if (!recording) return;
    const extra: Record<string, unknown> = {};
    if (outcome.verdict === 'hold') extra.request = outcome.request.id;
    extra.status = status ?? null;
    extra.ms = Date.now() - started;
    if (filter) extra.masked = true;
    if (capture) extra.response = capture.record(ex.credentials(connection));
    this.#record(recording, ex, connection, classified, 'allow', extra);
  }

  /** One exchange of the session recording: the request as judged, its outcome, no credentials. */
  #record(
    recording: EventStreamWriter,
    ex: ProxyExchange,
    connection: PolicyConnection,
    classified: Classified,
    verdict: string,
    extra: Readonly<Record<string, unknown>>,
  ): void {
    const fields: Record<string, unknown> = {
      method: ex.method,
      target: ex.target,
      kind: classified.kind,
      summary: classified.summary,
      verdict,
      headers: recordedHeaders(ex.req.headers, ex.credentials(connection)),
    };
    if (classified.attributes.body !== undefined) fields.body = classified.attributes.body;
    for (const k of Object.keys(extra)) fields[k] = extra[k];
    recording.event('exchange', fields);
  }

  /**
   * A connection slot for `principal` on this caller socket, held until the socket closes (a
   * keep-alive connection is one connection however many requests it carries). Returns the
   * refusal when the gateway (503) or the principal (429) is at its limit.
   */
  #takeSlot(
    socket: Socket,
    principal: Principal,
    protocol: string,
    source: string,
  ): AirlockError | undefined {
    const limits = this.#o.limits;
    if (!limits) return undefined;
    let slots = this.#slots.get(socket);
    if (slots?.byPrincipal.has(principal.name)) return undefined;
    let release: () => void;
    try {
      release = limits.openConnection(principal, protocol, source);
    } catch (err) {
      if (!isAirlockError(err)) throw err;
      const full = limits.openConnections >= limits.config.maxConnections;
      return new AirlockError(err.code, err.message, {
        ...(err.hint === undefined ? {} : { hint: err.hint }),
        status: full ? 503 : 429,
      });
    }
    if (!slots) {
      const created: SocketSlots = { byPrincipal: new Map() };
      slots = created;
      this.#slots.set(socket, created);
      socket.once('close', () => {
        for (const r of created.byPrincipal.values()) r();
        created.byPrincipal.clear();
      });
    }
    slots.byPrincipal.set(principal.name, release);
    if (socket.destroyed) release();
    return undefined;
  }

  async #forward(
    ex: Exchange,
    connection: PolicyConnection,
    adapter: ProxyAdapter,
    gone: CallerGone,
    filter?: ResponseFilter | undefined,
    capture?: BodyCapture | undefined,
  ): Promise<number | undefined> {
    if (connection.type !== 'http' && connection.type !== 'kubernetes' && connection.type !== 'git')
      return undefined;
    const upstream = this.#pools.get(connection.name, connection.upstream);
    let response: Awaited<ReturnType<typeof upstream.pool.request>>;
    const headers = upstreamHeaders(ex.req.headers, connection.credential, ex.body?.length);
    // A body Airlock rewrites should arrive uncompressed (one that still comes compressed is
    // decoded), and as JSON where only JSON can be passed on.
    if (filter) {
      headers['accept-encoding'] = 'identity';
      if (filter.otherTypes !== 'pass') headers.accept = 'application/json';
    }
    try {
      response = await upstream.pool.request({
        method: ex.method as 'GET',
        path: upstream.basePath + ex.target,
        headers,
        body: ex.body ?? null,
        signal: gone.emitter,
      });
    } catch (err) {
      if (gone.aborted) return undefined;
      adapter.refuse(
        ex,
        new AirlockError(
          'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
          `${connection.name} could not be reached: ${(err as Error).message}`,
          {
            hint: 'check that the upstream is running and its URL in the policy is right',
            status: 502,
          },
        ),
      );
      return 502;
    }
    const { res } = ex;
    if (res.headersSent) {
      // The adapter already answered (git progress while held): only the body follows.
      if (response.statusCode >= 400) {
        await response.body.dump().catch(() => {});
        adapter.refuse(
          ex,
          new AirlockError(
            'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
            `${connection.name} answered ${response.statusCode}`,
            { status: 502 },
          ),
        );
        return 502;
      }
    } else if (filter) {
      await this.#filtered(ex, connection.name, adapter, response, filter, capture);
      return response.statusCode;
    } else {
      res.writeHead(response.statusCode, callerHeaders(response.headers));
      // Watches and log streams (no length): send headers now, not with the first event.
      if (response.headers['content-length'] === undefined) res.flushHeaders();
      capture?.describe(response.headers['content-type'], response.headers['content-encoding']);
      capture?.watch(response.body);
    }
    try {
      await relayBody(response.body, res);
    } catch {
      // Either side went away; the other is closed by relayBody.
    }
    return response.statusCode;
  }

  /** Sends a response rewritten by `filter`; a body that cannot be rewritten is not sent as is. */
  async #filtered(
    ex: Exchange,
    name: string,
    adapter: ProxyAdapter,
    response: {
      statusCode: number;
      headers: Record<string, string | string[] | undefined>;
      body: Readable & { dump(): Promise<void> };
    },
    filter: ResponseFilter,
    capture: BodyCapture | undefined,
  ): Promise<void> {
    const headers = callerHeaders(response.headers);
    const type = String(response.headers['content-type'] ?? '');
    const encoding = String(response.headers['content-encoding'] ?? 'identity')
      .trim()
      .toLowerCase();
    const limit = Math.min(filter.maxBody ?? MAX_FILTERED_BODY, MAX_FILTERED_BODY);
    const refuse = (why: string) =>
      adapter.refuse(
        ex,
        new AirlockError(
          'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
          `the response from ${name} could not be masked: ${why}`,
          {
            hint: 'ask for JSON; Airlock does not pass on responses it must mask but cannot',
            status: 502,
          },
        ),
      );
    const passAsIs = async (buffered: readonly Buffer[]) => {
      ex.res.writeHead(response.statusCode, headers);
      capture?.describe(type, encoding);
      for (const b of buffered) {
        capture?.add(b);
        ex.res.write(b);
      }
      capture?.watch(response.body);
      try {
        await pipeline(response.body, ex.res);
      } catch {
        ex.res.destroy();
      }
    };
    // No body to rewrite: HEAD, 204, 304 (RFC 9110 §6.4.1).
    if (ex.method === 'HEAD' || response.statusCode === 204 || response.statusCode === 304) {
      await response.body.dump().catch(() => {});
      ex.res.writeHead(response.statusCode, headers);
      ex.res.end();
      return;
    }
    if (!/json/i.test(type)) {
      if (filter.otherTypes === 'pass') return passAsIs([]);
      await response.body.dump().catch(() => {});
      refuse(`it is ${type || 'untyped'} (${encoding})`);
      return;
    }
    const unmaskable = async (why: string, buffered: readonly Buffer[]) => {
      if (filter.unmaskable === 'pass') return passAsIs(buffered);
      response.body.on('error', () => {});
      response.body.destroy();
      refuse(why);
    };
    const decoder = DECODERS[encoding];
    if (!decoder) return unmaskable(`its content encoding is ${encoding}`, []);
    for (const h of REWRITTEN_BODY_HEADERS) delete headers[h];
    // Line-delimited JSON (and Kubernetes watches) is rewritten a line at a time, unbuffered.
    if (filter.mode === 'lines' || /ndjson|jsonl|json-seq/i.test(type)) {
      if (encoding !== 'identity') return unmaskable(`a ${encoding} stream is not masked`, []);
      ex.res.writeHead(response.statusCode, headers);
      ex.res.flushHeaders();
      const lines = new LineFilter(filter);
      capture?.describe(type, 'identity');
      capture?.watch(lines);
      try {
        await pipeline(response.body, lines, ex.res);
      } catch {
        ex.res.destroy();
      }
      return;
    }
    const read = await readUpTo(response.body, limit);
    if (read.over) return unmaskable(`it is larger than ${limit} bytes`, read.chunks);
    let plain: Buffer;
    try {
      plain = decoder(Buffer.concat(read.chunks), limit);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError)
        return unmaskable(`it is larger than ${limit} bytes once decoded`, read.chunks);
      return unmaskable(`its ${encoding} encoding could not be decoded`, read.chunks);
    }
    let out: Buffer;
    try {
      out = filter.apply(plain);
    } catch (err) {
      refuse((err as Error).message);
      return;
    }
    ex.res.writeHead(response.statusCode, { ...headers, 'content-length': String(out.length) });
    capture?.describe(type, 'identity');
    capture?.add(out);
    ex.res.end(out);
  }

  /** The caller's session on this socket for `connection`, if it has one already. */
  #sessionNow(socket: Socket, connection: PolicyConnection, principal: Principal): ProxySession | undefined {
    const s = this.#sessions.get(socket);
    if (!s) return undefined;
    const last = s.last;
    if (last?.connection === connection.name && last.principal === principal.name) return last.session;
    const session = s.ids.get(`${connection.name}\0${principal.name}`);
    if (session) s.last = { connection: connection.name, principal: principal.name, session };
    return session;
  }

  async #session(
    socket: Socket,
    protocol: string,
    connection: PolicyConnection,
    principal: Principal,
    source: string,
  ): Promise<ProxySession> {
    let s = this.#sessions.get(socket);
    if (!s) {
      const created: SocketSessions = { ids: new Map() };
      s = created;
      this.#sessions.set(socket, created);
      socket.once('close', () => {
        for (const session of created.ids.values()) {
          this.#o.gate.sessionClosed(session.id);
          session.recording?.close().catch((err: Error) => {
            this.#o.log?.error({ err: err.message }, 'http recording could not be sealed');
          });
        }
      });
    }
    const key = `${connection.name}\0${principal.name}`;
    let session = s.ids.get(key);
    if (!session) {
      const id = randomUUID();
      const recording = this.#o.recorder
        ? new EventStreamWriter(
            this.#o.recorder.open(id, connection.name, 'events-jsonl', {
              protocol,
              principal: principal.name,
            }),
            { session: id, connection: connection.name, protocol, principal: principal.name, source },
          )
        : undefined;
      session = { id, recording };
      s.ids.set(key, session);
      await this.#o.gate.sessionOpened({
        sessionId: id,
        protocol,
        connection: connection.name,
        principal,
        source,
      });
    }
    return session;
  }

  /** The caller's session for a protocol upgrade on this socket, with its event recorder. */
  async sessionFor(
    socket: Socket,
    protocol: string,
    connection: PolicyConnection,
    principal: Principal,
    source: string,
  ): Promise<{ id: string; record(type: string, fields: Record<string, unknown>): void }> {
    const session = await this.#session(socket, protocol, connection, principal, source);
    return { id: session.id, record: (type, fields) => void session.recording?.event(type, fields) };
  }

  /** Cancel held requests and stop streams; used on shutdown. */
  async close(): Promise<void> {
    for (const g of this.#open) g.abort();
    removeActiveScratch();
    await this.#pools.close();
  }
}
