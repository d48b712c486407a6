/**
 * `kubectl port-forward` through Airlock. kubectl 1.31+ tunnels an SPDY/3.1 session through a
 * WebSocket (`SPDY/3.1+portforward.k8s.io`); each connection made to the local port becomes a
 * pair of streams (`streamtype: error`, then `data`) whose headers name the pod's port. Airlock
 * ends the tunnel on both sides and reads every frame kubectl sends: the first stream for a port
 * is judged as its own action (fields `port`, `resource: pods/portforward`, ...), held or
 * refused like any request, and the API server is reached only once a port is allowed. A
 * refused port is answered by Airlock itself: its error stream carries the reason, which
 * kubectl prints (`an error occurred forwarding L -> P: airlock: ...`).
 * https://github.com/kubernetes/enhancements/tree/master/keps/sig-api-machinery/4006-transition-spdy-to-websockets
 * https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/
 *
 * kubectl waits 30 s for the answer to a new stream; a port held longer than that fails that one
 * connection, and once approved the port is open for the rest of the tunnel.
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { Action, Principal } from '../../../core/action.ts';
import { isAirlockError } from '../../../core/errors.ts';
import type { KubernetesConnection } from '../../../core/policy/connections/kubernetes.ts';
import type { UpgradeContext } from '../upgrade.ts';
import {
  controlStreamId,
  dataFrame,
  encodeFrame,
  type Frame,
  FrameReader,
  GOAWAY,
  HEADERS,
  HeaderDeflater,
  HeaderInflater,
  header,
  headerBlockOffset,
  headersOf,
  PING,
  RST_STREAM,
  SETTINGS,
  SpdyProtocolError,
  SYN_REPLY,
  SYN_STREAM,
  synReply,
  WINDOW_UPDATE,
  withHeaders,
} from './spdy-frames.ts';
import { acceptProtocol, openUpstream } from './upstream-ws.ts';

export const PORT_FORWARD_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';

/** Frames kubectl may have sent while a port is judged, before Airlock stops reading it. */
const MAX_QUEUED = 1024 * 1024;
const HIGH_WATER = 1024 * 1024;

export interface PortForwardFacts {
  readonly req: IncomingMessage;
  readonly target: string;
  readonly connection: KubernetesConnection;
  readonly principal: Principal;
  /** The tunnel's action (`create pods/NAME portforward`); each port adds its own field. */
  readonly action: Action;
  readonly record: (type: string, fields: Record<string, unknown>) => void;
}

type Verdict = { readonly allow: true } | { readonly allow: false; readonly message: string };

export class PortForwardTunnel {
  readonly #ctx: UpgradeContext;
  readonly #client: WebSocket;
  readonly #f: PortForwardFacts;
  readonly #fromClient = new FrameReader();
  readonly #fromServer = new FrameReader();
  readonly #clientHeaders = new HeaderInflater();
  readonly #serverHeaders = new HeaderInflater();
  readonly #toClient = new HeaderDeflater();
  readonly #toServer = new HeaderDeflater();
  /** Decided ports of this tunnel; a hold is not remembered (it is asked again). */
  readonly #ports = new Map<string, Verdict>();
  readonly #streams = new Map<number, { readonly port: string; readonly allowed: boolean }>();
  readonly #inbox: Frame[] = [];
  #inboxBytes = 0;
  #busy = false;
  #upstream: WebSocket | undefined;
  #opened: Promise<boolean> | undefined;
  #ended = false;
  readonly #gone = new AbortController();
  readonly #started = Date.now();

  constructor(ctx: UpgradeContext, client: WebSocket, f: PortForwardFacts) {
    this.#ctx = ctx;
    this.#client = client;
    this.#f = f;
  }

  run(): void {
    const client = this.#client;
    this.#f.record('stream', { target: this.#f.target, protocol: PORT_FORWARD_PROTOCOL, verdict: 'open' });
    client.on('error', () => client.terminate());
    client.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.#ended) return;
      let frames: Frame[];
      try {
        if (!isBinary) throw new SpdyProtocolError('a text message in an SPDY tunnel');
        frames = this.#fromClient.push(data);
      } catch (err) {
        this.#violation((err as Error).message, 'client');
        return;
      }
      for (const f of frames) {
        // Pings keep kubectl's session alive while a port is judged: answered here until the
        // API server is there to answer them.
        if (f.control && f.type === PING) {
          if (this.#upstream?.readyState === 1) this.#upstream.send(encodeFrame(f));
          else client.send(encodeFrame(f));
          continue;
        }
        this.#inbox.push(f);
        this.#inboxBytes += f.data.length + 8;
      }
      if (this.#inboxBytes > MAX_QUEUED && !client.isPaused) client.pause();
      void this.#drain();
    });
    client.once('close', (code, reason) => {
      this.#gone.abort();
      this.#end();
      const up = this.#upstream;
      if (up?.readyState === 1) up.close(code >= 3000 || code === 1000 ? code : 1000, reason);
      else up?.terminate();
    });
  }

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#inbox.length > 0 && !this.#ended) {
        const f = this.#inbox.shift()!;
        this.#inboxBytes -= f.data.length + 8;
        await this.#clientFrame(f);
      }
    } catch (err) {
      this.#violation(
        err instanceof SpdyProtocolError ? err.message : 'a frame could not be handled',
        'client',
      );
    } finally {
      this.#busy = false;
    }
    if (this.#client.isPaused && this.#inboxBytes < MAX_QUEUED / 2) this.#client.resume();
  }

  async #clientFrame(f: Frame): Promise<void> {
    if (!f.control) {
      // Data of a refused stream goes nowhere; data of a stream never opened is not kubectl's.
      const s = this.#streams.get(f.streamId);
      if (!s) throw new SpdyProtocolError(`data for stream ${f.streamId}, which was never opened`);
      if (s.allowed) await this.#toUpstream(encodeFrame(f));
      return;
    }
    switch (f.type) {
      case SYN_STREAM:
        await this.#synStream(f);
        return;
      case SYN_REPLY:
      case HEADERS: {
        // Decoded even when dropped: the compression context runs through every block.
        const headers = headersOf(f, this.#clientHeaders);
        if (this.#streams.get(controlStreamId(f) ?? -1)?.allowed)
          await this.#toUpstream(withHeaders(f, headers, this.#toServer));
        return;
      }
      case RST_STREAM:
      case WINDOW_UPDATE: {
        const id = controlStreamId(f) ?? -1;
        if ((id === 0 && this.#upstream) || this.#streams.get(id)?.allowed)
          await this.#toUpstream(encodeFrame(f));
        return;
      }
      case SETTINGS:
      case GOAWAY:
        if (this.#upstream) await this.#toUpstream(encodeFrame(f));
        return;
      default:
        // §2.2.1: unknown control frames are ignored.
        return;
    }
  }

  async #synStream(f: Frame & { control: true }): Promise<void> {
    const headers = headersOf(f, this.#clientHeaders);
    const id = controlStreamId(f)!;
    const port = header(headers, 'port');
    const type = header(headers, 'streamtype');
    if (this.#streams.has(id)) throw new SpdyProtocolError(`stream ${id} opened twice`);
    if (port === undefined || !/^[0-9]{1,5}$/.test(port) || Number(port) > 65535 || Number(port) === 0)
      throw new SpdyProtocolError('a port-forward stream without a valid port');
    if (type !== 'error' && type !== 'data') throw new SpdyProtocolError(`a stream of type ${String(type)}`);
    const verdict = await this.#judge(port);
    if (this.#ended) return;
    if (verdict.allow) {
      this.#streams.set(id, { port, allowed: true });
      if (type === 'data')
        this.#f.record('portforward-connection', {
          port: Number(port),
          request: header(headers, 'requestid'),
        });
      if (await this.#toUpstream(withHeaders(f, headers, this.#toServer))) return;
      this.#refuseStream(id, type, `airlock: ${this.#f.connection.name} could not be reached`);
      this.#client.close(1011, 'airlock: the API server could not be reached');
      return;
    }
    this.#streams.set(id, { port, allowed: false });
    this.#refuseStream(id, type, verdict.message);
  }

  /** Airlock answers the stream itself; kubectl prints what its error stream says. */
  #refuseStream(id: number, type: string, message: string): void {
    if (this.#client.readyState !== 1) return;
    this.#client.send(synReply(id, [], this.#toClient));
    this.#client.send(dataFrame(id, type === 'error' ? Buffer.from(message) : Buffer.alloc(0), true));
  }

  async #judge(port: string): Promise<Verdict> {
    const known = this.#ports.get(port);
    if (known) return known;
    const base = this.#f.action;
    const action: Action = {
      ...base,
      summary: `${base.summary} port ${port}`,
      normalized: `${base.normalized} port:${port}`,
      parts: base.parts.map((p) => ({
        ...p,
        text: `${p.text} (port ${port})`,
        fields: { ...p.fields, port: [port] },
      })),
      attributes: { ...base.attributes, port: Number(port) },
    };
    const { gate } = this.#ctx;
    const remember = (v: Verdict, fields: Record<string, unknown>) => {
      this.#ports.set(port, v);
      this.#f.record('portforward', { target: this.#f.target, port: Number(port), ...fields });
      return v;
    };
    let outcome: Awaited<ReturnType<typeof gate.decide>>;
    try {
      outcome = await gate.decide(action);
    } catch (err) {
      return {
        allow: false,
        message: `airlock: ${isAirlockError(err) ? err.describe() : 'the port could not be judged'}`,
      };
    }
    if (outcome.verdict === 'allow') return remember({ allow: true }, { verdict: 'allow' });
    if (outcome.verdict === 'deny')
      return remember(
        { allow: false, message: `airlock: ${outcome.reason}` },
        { verdict: 'deny', reason: outcome.reason },
      );
    const id = outcome.request.id;
    if (outcome.mode === 'retry') {
      this.#f.record('portforward', {
        target: this.#f.target,
        port: Number(port),
        verdict: 'hold',
        request: id,
      });
      return { allow: false, message: `airlock: ${outcome.message} — connect again once it is approved` };
    }
    const settled = await gate.settled(id, this.#gone.signal);
    if (settled.status !== 'approved')
      return remember(
        { allow: false, message: `airlock: ${settled.reason}` },
        { verdict: settled.status, request: id, reason: settled.reason },
      );
    try {
      await gate.release(id);
    } catch {
      return { allow: false, message: 'airlock: the approval could not be recorded' };
    }
    return remember({ allow: true }, { verdict: 'allow', request: id });
  }

  /** Sends towards the API server, connecting on first use; false if it cannot be reached. */
  async #toUpstream(bytes: Buffer): Promise<boolean> {
    this.#opened ??= this.#connect();
    if (!(await this.#opened)) return false;
    const up = this.#upstream!;
    if (up.readyState !== 1) return false;
    up.send(bytes);
    return true;
  }

  #connect(): Promise<boolean> {
    const { connection, req, target } = this.#f;
    const up = openUpstream(connection, req, target, PORT_FORWARD_PROTOCOL);
    this.#upstream = up;
    up.once('upgrade', (res) => acceptProtocol(up, res, PORT_FORWARD_PROTOCOL));
    return new Promise<boolean>((resolve) => {
      up.once('unexpected-response', (_r, res) => {
        this.#f.record('stream', { target, verdict: 'upstream-refused', status: res.statusCode });
        res.resume();
        up.terminate();
        resolve(false);
      });
      up.on('error', () => resolve(false));
      up.once('open', () => {
        this.#relayFromServer(up);
        resolve(true);
      });
    });
  }

  #relayFromServer(up: WebSocket): void {
    const client = this.#client;
    let queued = 0;
    up.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.#ended) return;
      try {
        if (!isBinary) throw new SpdyProtocolError('a text message in an SPDY tunnel');
        for (const f of this.#fromServer.push(data)) {
          let out: Buffer;
          if (f.control && headerBlockOffset(f.type) !== undefined)
            out = withHeaders(f, headersOf(f, this.#serverHeaders), this.#toClient);
          else out = encodeFrame(f);
          queued += out.length;
          if (queued > HIGH_WATER && !up.isPaused) up.pause();
          client.send(out, () => {
            queued -= out.length;
            if (queued < HIGH_WATER / 2 && up.isPaused) up.resume();
          });
        }
      } catch (err) {
        this.#violation(err instanceof SpdyProtocolError ? err.message : 'an undecodable frame', 'server');
      }
    });
    up.once('close', (code, reason) => {
      this.#end();
      if (client.readyState === 1) client.close(code >= 3000 || code === 1000 ? code : 1000, reason);
    });
  }

  #violation(reason: string, side: 'client' | 'server'): void {
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
    if (this.#client.readyState === 1) this.#client.close(1008, 'airlock: protocol violation');
    this.#upstream?.terminate();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#f.record('stream-closed', {
      target: this.#f.target,
      ms: Date.now() - this.#started,
      ports: [...this.#ports.entries()].map(([port, v]) => ({ port: Number(port), allowed: v.allow })),
    });
  }
}
