/**
 * `kubectl exec` and `kubectl attach` on `kubernetes` connections. kubectl 1.30+ opens them as a
 * WebSocket (`v5.channel.k8s.io`); Airlock is the WebSocket server to kubectl and a WebSocket
 * client to the API server with the credential it holds, so every message passes through the
 * channel decoder: what is typed and printed is recorded as asciicast, and a message outside
 * the protocol ends the session instead of being passed on.
 *
 * The handshake with kubectl completes before the request is judged: a refusal then reaches
 * kubectl as a `Status` on the error stream (printed as `error: <message>`), not as an HTTP
 * error that would make kubectl retry over SPDY, and a held exec can say that it waits.
 * SPDY upgrades are refused with a message asking for a kubectl that speaks WebSocket, unless
 * the connection's `spdy: unrecorded` lets them through (judged, not recorded). port-forward
 * (SPDY tunnelled through a WebSocket) is judged per port: portforward.ts.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/
 * https://github.com/kubernetes/enhancements/tree/master/keps/sig-api-machinery/4006-transition-spdy-to-websockets
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { Action, Principal } from '../../../core/action.ts';
import { AirlockError, isAirlockError } from '../../../core/errors.ts';
import type { GateOutcome } from '../../../core/gate-types.ts';
import { maskerFor } from '../../../core/masking/masker.ts';
import type { KubernetesConnection } from '../../../core/policy/connections/kubernetes.ts';
import { AsciicastWriter } from '../../../core/recording/asciicast.ts';
import { TerminalRecording } from '../../../core/recording/terminal.ts';
import { authenticateCaller } from '../caller-auth.ts';
import { normalizeTarget } from '../proxy.ts';
import type { UpgradeContext } from '../upgrade.ts';
import {
  CHANNEL_PROTOCOLS,
  ChannelDecoder,
  type ChannelEvent,
  type ChannelProtocol,
  ChannelProtocolError,
  channelMessage,
  ERROR,
  type KubeStatus,
  STDERR,
  STDOUT,
} from './channels.ts';
import { classifyKubernetes, kubeRequestInfo } from './classify.ts';
import { PORT_FORWARD_PROTOCOL, PortForwardTunnel } from './portforward.ts';
import { spdyPassThrough } from './spdy.ts';
import { refuseUpgrade, statusBody } from './status.ts';
import { acceptProtocol, MAX_MESSAGE, openUpstream } from './upstream-ws.ts';

/** Messages queued towards one side before the other side is no longer read. */
const HIGH_WATER = 1024 * 1024;
/** What kubectl may send while its exec is judged, before Airlock stops reading it. */
const MAX_EARLY = 1024 * 1024;
/** How often a held exec says it is still waiting. */
const KEEPALIVE_MS = 30_000;

const SPDY_REFUSED =
  'airlock: kubectl asked for an SPDY stream; Airlock reviews and records exec, attach and port-forward only over WebSocket — use kubectl 1.30 or newer (WebSocket is its default; leave KUBECTL_REMOTE_COMMAND_WEBSOCKETS unset)';
const PORT_FORWARD_SPDY_REFUSED =
  'airlock: kubectl asked for port-forward over SPDY; Airlock reviews each forwarded port only over WebSocket — use kubectl 1.31 or newer (WebSocket is its default; leave KUBECTL_PORT_FORWARD_WEBSOCKETS unset)';

/** A close code `ws` may send: 1005/1006/1015 only describe what happened, they are never sent. */
function sendableCode(code: number): number {
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
    return code;
  return code === 1005 ? 1000 : 1011;
}

const server = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: MAX_MESSAGE,
  handleProtocols: (offered) => CHANNEL_PROTOCOLS.find((p) => offered.has(p)) ?? false,
});
const tunnelServer = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: MAX_MESSAGE,
});
tunnelServer.on('headers', (headers) => headers.push(`Sec-WebSocket-Protocol: ${PORT_FORWARD_PROTOCOL}`));

/** Completes the handshake; undefined if `ws` refused it (it answers 400 and closes the socket). */
function accept(
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const gone = () => resolve(undefined);
    socket.once('close', gone);
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('close', gone);
      resolve(ws);
    });
  });
}

export async function handleKubernetesUpgrade(
  ctx: UpgradeContext,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  route: { readonly name: string; readonly target: string },
): Promise<void> {
  const connection = ctx.policy.connections.get(route.name);
  if (connection?.type !== 'kubernetes') {
    refuseUpgrade(socket, 404, 'NotFound', `airlock: there is no kubernetes connection "${route.name}"`);
    return;
  }
  const source = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
  const auth = await authenticateCaller(ctx, req, source, 'kubernetes', connection.name);
  if ('error' in auth) {
    refuseUpgrade(socket, 401, 'Unauthorized', `airlock: ${auth.error.describe()}`);
    return;
  }
  const principal = auth.principal;
  const method = (req.method ?? 'GET').toUpperCase();
  const target = normalizeTarget(route.target);
  const query = new URLSearchParams(target.includes('?') ? target.slice(target.indexOf('?') + 1) : '');
  const sub = kubeRequestInfo(method, target, query)?.subresource;
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  if (sub !== 'exec' && sub !== 'attach' && sub !== 'portforward') {
    refuseUpgrade(
      socket,
      403,
      'Forbidden',
      'airlock: on kubernetes connections only exec, attach and port-forward streams are proxied',
    );
    return;
  }
  const classified = classifyKubernetes({
    method,
    target,
    query,
    body: undefined,
    impersonating: Object.keys(req.headers).some((h) => h.startsWith('impersonate-')),
  });
  const session = await ctx.session(socket, 'kubernetes', connection, principal, source);
  const action: Action = {
    protocol: 'kubernetes',
    connection: connection.name,
    principal,
    sessionId: session.id,
    source,
    ...classified,
    attributes: { ...classified.attributes, upgrade },
  };

  if (upgrade.startsWith('spdy/')) {
    if (sub === 'portforward' || connection.spdy !== 'unrecorded') {
      session.record('stream', { target, upgrade, verdict: 'refused', reason: 'spdy' });
      refuseUpgrade(
        socket,
        403,
        'Forbidden',
        sub === 'portforward' ? PORT_FORWARD_SPDY_REFUSED : SPDY_REFUSED,
      );
      return;
    }
    await spdyPassThrough(ctx, { req, socket, head, target, connection, action, record: session.record });
    return;
  }
  if (upgrade !== 'websocket') {
    refuseUpgrade(socket, 400, 'BadRequest', `airlock: an upgrade to "${upgrade}" is not one Airlock speaks`);
    return;
  }
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim());
  if (sub === 'portforward') {
    if (!offered.includes(PORT_FORWARD_PROTOCOL)) {
      refuseUpgrade(
        socket,
        400,
        'BadRequest',
        `airlock: port-forward needs the WebSocket protocol ${PORT_FORWARD_PROTOCOL} (kubectl 1.31 or newer)`,
      );
      return;
    }
    // `ws` refuses subprotocol names with '/': the header is taken out of its sight and the
    // choice is written into the 101 answer by tunnelServer.
    delete req.headers['sec-websocket-protocol'];
    const client = await accept(tunnelServer, req, socket, head);
    if (!client) return;
    new PortForwardTunnel(ctx, client, {
      req,
      target,
      connection,
      principal,
      action,
      record: session.record,
    }).run();
    return;
  }
  const protocol = offered.find((p): p is ChannelProtocol =>
    (CHANNEL_PROTOCOLS as readonly string[]).includes(p),
  );
  if (!protocol) {
    refuseUpgrade(
      socket,
      400,
      'BadRequest',
      `airlock: exec and attach need the WebSocket protocol ${CHANNEL_PROTOCOLS.join(' or ')} (kubectl 1.30 or newer)`,
    );
    return;
  }
  const client = await accept(server, req, socket, head);
  if (!client) return;
  if (client.protocol !== protocol) {
    client.terminate();
    return;
  }
  await new ExecStream(ctx, client, protocol, {
    req,
    target,
    query,
    connection,
    principal,
    action,
    record: session.record,
  }).run();
}

interface StreamFacts {
  readonly req: IncomingMessage;
  readonly target: string;
  readonly query: URLSearchParams;
  readonly connection: KubernetesConnection;
  readonly principal: Principal;
  readonly action: Action;
  readonly record: (type: string, fields: Record<string, unknown>) => void;
}

/** One exec/attach: judged with kubectl already connected, then relayed and recorded. */
class ExecStream {
  readonly #ctx: UpgradeContext;
  readonly #client: WebSocket;
  readonly #protocol: ChannelProtocol;
  readonly #f: StreamFacts;
  readonly #decoder: ChannelDecoder;
  readonly #early: { data: Buffer; isBinary: boolean }[] = [];
  #earlyBytes = 0;
  #upstream: WebSocket | undefined;
  #recording: TerminalRecording | undefined;
  #exitCode: number | undefined;
  #ended = false;
  readonly #started = Date.now();

  constructor(ctx: UpgradeContext, client: WebSocket, protocol: ChannelProtocol, f: StreamFacts) {
    this.#ctx = ctx;
    this.#client = client;
    this.#protocol = protocol;
    this.#f = f;
    this.#decoder = new ChannelDecoder(protocol);
  }

  async run(): Promise<void> {
    const client = this.#client;
    client.on('error', () => client.terminate());
    // What kubectl sends before the upstream is open (stdin piped in, its close signal) waits
    // here, bounded, until the relay takes over.
    client.on('message', this.#hold);
    const gone = new AbortController();
    client.once('close', () => gone.abort());
    const allowed = await this.#judge(gone.signal);
    if (!allowed || gone.signal.aborted) {
      client.off('message', this.#hold);
      return;
    }
    this.#connect();
  }

  readonly #hold = (data: Buffer, isBinary: boolean): void => {
    this.#early.push({ data, isBinary });
    this.#earlyBytes += data.length;
    if (this.#earlyBytes > MAX_EARLY) this.#client.pause();
  };

  /** Writes Airlock's own line where kubectl shows it: stderr, or the terminal when there is one. */
  #say(line: string): void {
    const channel =
      this.#f.query.get('stderr') === 'true'
        ? STDERR
        : this.#f.query.get('stdout') === 'true'
          ? STDOUT
          : undefined;
    if (channel === undefined || this.#client.readyState !== WebSocket.OPEN) return;
    this.#client.send(channelMessage(channel, `airlock: ${line}\r\n`));
  }

  /** Ends the stream with a Status on the error stream: kubectl prints its message and exits 1. */
  #fail(error: AirlockError, verdict: string, extra: Record<string, unknown> = {}): void {
    this.#f.record('stream', { target: this.#f.target, verdict, reason: error.message, ...extra });
    this.#end();
    const client = this.#client;
    if (client.readyState !== WebSocket.OPEN) return;
    const reasons: Record<number, string> = {
      403: 'Forbidden',
      503: 'ServiceUnavailable',
      400: 'BadRequest',
    };
    const status = statusBody(
      error.status,
      reasons[error.status] ?? 'InternalError',
      `airlock: ${error.describe()}`,
    );
    client.send(channelMessage(ERROR, JSON.stringify(status)));
    client.close(1000);
  }

  async #judge(signal: AbortSignal): Promise<boolean> {
    const { gate } = this.#ctx;
    let outcome: GateOutcome;
    try {
      outcome = await gate.decide(this.#f.action);
    } catch (err) {
      this.#fail(
        isAirlockError(err) ? err : new AirlockError('AIRLOCK_E_INTERNAL', 'the exec could not be judged'),
        'error',
      );
      return false;
    }
    if (outcome.verdict === 'allow') return true;
    if (outcome.verdict === 'deny') {
      this.#fail(
        new AirlockError('AIRLOCK_E_DENIED', outcome.reason, {
          hint: `rule "${outcome.decision.rule.name}"`,
        }),
        'deny',
      );
      return false;
    }
    const id = outcome.request.id;
    if (outcome.mode === 'retry') {
      this.#fail(
        new AirlockError(
          'AIRLOCK_E_APPROVAL_REQUIRED',
          `${outcome.message} — run the same command again once it is approved`,
          { status: 403 },
        ),
        'hold',
        { request: id },
      );
      return false;
    }
    const waiting = `waiting for approval: request ${id}, ${outcome.url}`;
    this.#say(waiting);
    const keepalive = setInterval(
      () => this.#say(`still ${waiting} (${Math.round((Date.now() - this.#started) / 1000)}s so far)`),
      KEEPALIVE_MS,
    );
    let settled: Awaited<ReturnType<typeof gate.settled>>;
    try {
      settled = await gate.settled(id, signal);
    } finally {
      clearInterval(keepalive);
    }
    if (settled.status !== 'approved') {
      this.#fail(
        new AirlockError(
          settled.status === 'expired' ? 'AIRLOCK_E_REQUEST_EXPIRED' : 'AIRLOCK_E_DENIED',
          settled.reason,
          { status: 403 },
        ),
        settled.status,
        { request: id },
      );
      return false;
    }
    if (signal.aborted) return false;
    try {
      await gate.release(id);
    } catch (err) {
      this.#fail(
        isAirlockError(err)
          ? err
          : new AirlockError('AIRLOCK_E_INTERNAL', 'the approval could not be recorded'),
        'error',
        { request: id },
      );
      return false;
    }
    return true;
  }

  #connect(): void {
    const { connection, req, target } = this.#f;
    const upstream = openUpstream(connection, req, target, this.#protocol);
    upstream.once('upgrade', (res) => acceptProtocol(upstream, res, this.#protocol));
    this.#upstream = upstream;
    let opened = false;
    const unreachable = (why: string) =>
      this.#fail(
        new AirlockError(
          'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
          `${connection.name} could not be reached: ${why}`,
          {
            status: 503,
          },
        ),
        'error',
      );
    upstream.once('unexpected-response', (_r, res) => {
      // The API server refused the stream: its own Status is what kubectl should show.
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 64 * 1024) chunks.push(c);
      });
      res.on('end', () => {
        let message = `${connection.name} answered ${res.statusCode}`;
        try {
          const s = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeStatus;
          if (typeof s.message === 'string') message = s.message;
        } catch {}
        this.#f.record('stream', { target, verdict: 'upstream-refused', status: res.statusCode });
        this.#end();
        if (this.#client.readyState === WebSocket.OPEN) {
          this.#client.send(
            channelMessage(ERROR, JSON.stringify(statusBody(res.statusCode ?? 502, 'Failure', message))),
          );
          this.#client.close(1000);
        }
        upstream.terminate();
      });
      res.on('error', () => upstream.terminate());
    });
    upstream.once('open', () => {
      opened = true;
      this.#relay(upstream);
    });
    upstream.on('error', (err) => {
      if (!opened) unreachable(err.message);
      else this.#violation('the API server stream failed');
    });
  }

  #relay(upstream: WebSocket): void {
    const client = this.#client;
    const { connection, principal, target } = this.#f;
    // kubectl left while the API server was being reached: the stream is not started.
    if (client.readyState !== WebSocket.OPEN) {
      upstream.terminate();
      this.#end();
      return;
    }
    this.#recording = this.#openRecording();
    this.#f.record('stream', {
      target,
      verdict: 'allow',
      ...(this.#recording ? {} : { recorded: false }),
    });
    const pump = (from: WebSocket, to: WebSocket, side: 'client' | 'server') => {
      let queued = 0;
      return (data: Buffer, isBinary: boolean) => {
        if (this.#ended) return;
        let events: ChannelEvent[];
        try {
          if (!isBinary) throw new ChannelProtocolError('a text message on a binary channel protocol');
          events = side === 'client' ? this.#decoder.fromClient(data) : this.#decoder.fromServer(data);
        } catch (err) {
          this.#violation(err instanceof ChannelProtocolError ? err.message : 'an undecodable message', side);
          return;
        }
        this.#observe(events);
        queued += data.length;
        if (queued > HIGH_WATER && !from.isPaused) from.pause();
        to.send(data, { binary: true }, () => {
          queued -= data.length;
          if (queued < HIGH_WATER / 2 && from.isPaused) from.resume();
        });
      };
    };
    const fromClient = pump(client, upstream, 'client');
    client.off('message', this.#hold);
    client.on('message', fromClient);
    upstream.on('message', pump(upstream, client, 'server'));
    for (const m of this.#early.splice(0)) fromClient(m.data, m.isBinary);
    if (client.isPaused) client.resume();
    upstream.once('close', (code, reason) => {
      this.#end();
      if (client.readyState === WebSocket.OPEN) client.close(sendableCode(code), reason);
    });
    client.once('close', (code, reason) => {
      this.#end();
      if (upstream.readyState === WebSocket.OPEN) upstream.close(sendableCode(code), reason);
      else upstream.terminate();
    });
    this.#ctx.log?.info(
      { connection: connection.name, principal: principal.name, target, protocol: this.#protocol },
      'kubernetes stream opened',
    );
  }

  #observe(events: ChannelEvent[]): void {
    const r = this.#recording;
    for (const e of events) {
      switch (e.type) {
        case 'stdin':
          r?.input(e.data);
          break;
        case 'stdout':
        case 'stderr':
          r?.output(e.data);
          break;
        case 'resize':
          r?.resize(e.cols, e.rows);
          break;
        case 'status':
          this.#exitCode = e.exitCode;
          break;
        case 'close':
          break;
      }
    }
  }

  #openRecording(): TerminalRecording | undefined {
    const recorder = this.#ctx.recorder;
    if (!recorder) return undefined;
    const { connection, principal, action } = this.#f;
    try {
      const writer = recorder.open(this.#f.action.sessionId, connection.name, 'asciicast-v2', {
        protocol: 'kubernetes',
        principal: principal.name,
      });
      const cast = new AsciicastWriter(writer, {
        width: 80,
        height: 24,
        title: `${principal.name} on ${connection.name}`,
        command: action.summary,
      });
      return new TerminalRecording(cast, {
        masker: maskerFor(this.#ctx.policy.masking, connection.name, principal),
      });
    } catch (err) {
      this.#ctx.log?.error({ err: (err as Error).message }, 'kubernetes stream recording could not start');
      return undefined;
    }
  }

  /** A message outside the protocol: nothing more is passed on, and the violation is audited. */
  #violation(reason: string, side: 'client' | 'server' = 'server'): void {
    if (this.#ended) return;
    this.#ctx.gate.protocolViolation({
      protocol: 'kubernetes',
      connection: this.#f.connection.name,
      session: this.#f.action.sessionId,
      side,
      reason,
    });
    this.#f.record('stream-violation', { target: this.#f.target, side, reason });
    this.#end();
    if (this.#client.readyState === WebSocket.OPEN) this.#client.close(1008, 'airlock: protocol violation');
    this.#upstream?.terminate();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const recording = this.#recording;
    const fields = {
      target: this.#f.target,
      ms: Date.now() - this.#started,
      ...(this.#exitCode === undefined ? {} : { exitCode: this.#exitCode }),
    };
    if (!recording) {
      this.#f.record('stream-closed', fields);
      return;
    }
    recording.close().then(
      (meta) => this.#f.record('stream-closed', { ...fields, recording: meta.id }),
      (err: Error) => {
        this.#f.record('stream-closed', fields);
        this.#ctx.log?.error({ err: err.message }, 'kubernetes stream recording could not be sealed');
      },
    );
  }
}
