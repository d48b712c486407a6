/**
 * The channel protocol of `kubectl exec` and `kubectl attach` over WebSocket
 * (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary message starts with one byte naming
 * the stream, the rest is that stream's bytes. 0 stdin, 1 stdout, 2 stderr, 3 error (a `Status`
 * JSON once the command ends), 4 resize (a stream of `{"Width":W,"Height":H}` objects); v5 adds
 * 255, whose one-byte payload names a stream the sender has closed.
 * https://github.com/kubernetes/enhancements/tree/master/keps/sig-api-machinery/4006-transition-spdy-to-websockets
 * https://pkg.go.dev/k8s.io/apimachinery/pkg/util/httpstream/wsstream
 *
 * Stream bytes may be cut anywhere between messages (the resize and error streams are read by
 * the peers as byte streams), so the decoder keeps the unfinished JSON of each until it is whole.
 */

export const CHANNEL_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;
export type ChannelProtocol = (typeof CHANNEL_PROTOCOLS)[number];

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const RESIZE = 4;
export const CLOSE = 255;

/** A resize object or a Status is small; more unfinished JSON than this is not one. */
const MAX_PENDING_JSON = 64 * 1024;

export interface KubeStatus {
  readonly status?: string;
  readonly message?: string;
  readonly reason?: string;
  readonly details?: { readonly causes?: readonly { reason?: string; message?: string }[] };
}

export type ChannelEvent =
  | { readonly type: 'stdin' | 'stdout' | 'stderr'; readonly data: Buffer }
  | { readonly type: 'resize'; readonly cols: number; readonly rows: number }
  | { readonly type: 'status'; readonly status: KubeStatus; readonly exitCode: number | undefined }
  | { readonly type: 'close'; readonly channel: number };

export class ChannelProtocolError extends Error {
  override readonly name = 'ChannelProtocolError';
}

/**
 * Splits a byte stream of concatenated JSON objects into whole objects, however the bytes were
 * cut. Strings are tracked so braces inside them do not count.
 */
export class JsonObjectStream {
  #pending = '';
  #depth = 0;
  #inString = false;
  #escaped = false;
  #scanned = 0;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });

  push(bytes: Uint8Array): unknown[] {
    let text: string;
    try {
      text = this.#decoder.decode(bytes, { stream: true });
    } catch {
      throw new ChannelProtocolError('a JSON stream is not UTF-8');
    }
    this.#pending += text;
    const out: unknown[] = [];
    let start = 0;
    for (let i = this.#scanned; i < this.#pending.length; i++) {
      const c = this.#pending[i]!;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === '\\') this.#escaped = true;
        else if (c === '"') this.#inString = false;
        continue;
      }
      if (this.#depth === 0) {
        if (c === ' ' || c === '\n' || c === '\r' || c === '\t') {
          start = i + 1;
          continue;
        }
        if (c !== '{') throw new ChannelProtocolError('a JSON stream holds something other than objects');
      }
      if (c === '"') this.#inString = true;
      else if (c === '{' || c === '[') this.#depth++;
      else if (c === '}' || c === ']') {
        this.#depth--;
        if (this.#depth < 0) throw new ChannelProtocolError('a JSON stream closes more than it opened');
        if (this.#depth === 0) {
          const whole = this.#pending.slice(start, i + 1);
          try {
            out.push(JSON.parse(whole));
          } catch {
            throw new ChannelProtocolError('a JSON stream holds an object that is not JSON');
          }
          start = i + 1;
        }
      }
    }
    this.#pending = this.#pending.slice(start);
    this.#scanned = this.#pending.length;
    if (this.#pending.length > MAX_PENDING_JSON)
      throw new ChannelProtocolError(`an unfinished JSON object is longer than ${MAX_PENDING_JSON} bytes`);
    return out;
  }

  /** True when no object is half-received. */
  get idle(): boolean {
    return this.#pending.length === 0;
  }
}

/** `Status` of the error stream → the command's exit code, when it says one. */
export function exitCodeOf(status: KubeStatus): number | undefined {
  if (status.status === 'Success') return 0;
  if (status.reason !== 'NonZeroExitCode') return undefined;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = Number(cause?.message);
  return Number.isInteger(code) && code >= 0 ? code : undefined;
}

function resizeOf(o: unknown): { cols: number; rows: number } {
  const r = o as { Width?: unknown; Height?: unknown };
  const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 65535;
  if (typeof o !== 'object' || o === null || !ok(r.Width) || !ok(r.Height))
    throw new ChannelProtocolError('a resize is not {"Width": n, "Height": n}');
  return { cols: r.Width, rows: r.Height };
}

/**
 * Decodes the messages of one exec/attach session, each direction on its own: what the caller
 * may send (stdin, resize, close) and what the server may send (stdout, stderr, error, close).
 * Anything else throws ChannelProtocolError, and the session is ended rather than passed on.
 */
export class ChannelDecoder {
  readonly #protocol: ChannelProtocol;
  readonly #resize = new JsonObjectStream();
  readonly #error = new JsonObjectStream();
  readonly #closed = { client: new Set<number>(), server: new Set<number>() };

  constructor(protocol: ChannelProtocol) {
    this.#protocol = protocol;
  }

  fromClient(message: Buffer): ChannelEvent[] {
    const [channel, data] = this.#split(message);
    if (channel === CLOSE) return [this.#close('client', data, [STDIN, RESIZE])];
    if (channel !== STDIN && channel !== RESIZE)
      throw new ChannelProtocolError(`the caller wrote to stream ${channel}`);
    if (this.#closed.client.has(channel))
      throw new ChannelProtocolError(`the caller wrote to stream ${channel} after closing it`);
    if (channel === STDIN) return data.length > 0 ? [{ type: 'stdin', data }] : [];
    return this.#resize.push(data).map((o) => ({ type: 'resize', ...resizeOf(o) }));
  }

  fromServer(message: Buffer): ChannelEvent[] {
    const [channel, data] = this.#split(message);
    // The server may say any stream is done; only what the caller may close is checked strictly.
    if (channel === CLOSE) return [this.#close('server', data, [STDIN, STDOUT, STDERR, ERROR, RESIZE])];
    if (channel === STDOUT || channel === STDERR)
      return data.length > 0 ? [{ type: channel === STDOUT ? 'stdout' : 'stderr', data }] : [];
    if (channel === ERROR)
      return this.#error.push(data).map((o) => {
        if (typeof o !== 'object' || o === null)
          throw new ChannelProtocolError('the error stream is not a Status');
        const status = o as KubeStatus;
        return { type: 'status', status, exitCode: exitCodeOf(status) };
      });
    throw new ChannelProtocolError(`the server wrote to stream ${channel}`);
  }

  #split(message: Buffer): [number, Buffer] {
    if (message.length === 0) throw new ChannelProtocolError('a message without a stream byte');
    return [message[0]!, message.subarray(1)];
  }

  #close(side: 'client' | 'server', data: Buffer, allowed: readonly number[]): ChannelEvent {
    if (this.#protocol !== 'v5.channel.k8s.io')
      throw new ChannelProtocolError('a close signal outside v5.channel.k8s.io');
    if (data.length !== 1 || !allowed.includes(data[0]!))
      throw new ChannelProtocolError(`a close signal from the ${side} for stream ${data[0] ?? '(none)'}`);
    this.#closed[side].add(data[0]!);
    return { type: 'close', channel: data[0]! };
  }
}

/** One message of `channel`. */
export function channelMessage(channel: number, data: Uint8Array | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = channel;
  out.set(body, 1);
  return out;
}
