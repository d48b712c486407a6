/**
 * Pipes an upstream response body to the caller, as `stream/promises` pipeline would, for the
 * one case every proxied request takes: pipeline builds an AbortController per call and aborts
 * it when done, which constructs a DOMException with a captured stack each time — the largest
 * single cost of a small proxied response. Here: `pipe` for the data and its backpressure,
 * and the same outcome: resolves once the caller's side has finished, and on an error or an early
 * close of either side destroys both and rejects.
 */
import type { Readable, Writable } from 'node:stream';

export function relayBody(src: Readable, dst: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => new Relay(src, dst, resolve, reject));
}

/**
 * The listeners of one relay, as bound methods: every request takes this path, and closures
 * assigned to names are each given their name at run time by the TypeScript loader.
 */
class Relay {
  readonly #src: Readable;
  readonly #dst: Writable;
  readonly #resolve: () => void;
  readonly #reject: (err: Error) => void;
  readonly #onError: (err: Error) => void;
  readonly #onSrcClose: () => void;
  readonly #onFinish: () => void;
  readonly #onDstClose: () => void;
  #settled = false;

  constructor(src: Readable, dst: Writable, resolve: () => void, reject: (err: Error) => void) {
    this.#src = src;
    this.#dst = dst;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#onError = this.#settle.bind(this);
    this.#onSrcClose = this.#srcClosed.bind(this);
    this.#onFinish = this.#finished.bind(this);
    this.#onDstClose = this.#dstClosed.bind(this);
    src.on('error', this.#onError);
    src.on('close', this.#onSrcClose);
    dst.on('error', this.#onError);
    dst.on('finish', this.#onFinish);
    dst.on('close', this.#onDstClose);
    src.pipe(dst);
  }

  #finished(): void {
    this.#settle();
  }

  #dstClosed(): void {
    this.#settle(new Error('the caller closed the connection before the body was sent'));
  }

  #srcClosed(): void {
    // A body that closes without ending was cut off upstream.
    if (!this.#src.readableEnded) this.#settle(new Error('the upstream closed the connection mid-body'));
  }

  #settle(err?: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    const src = this.#src;
    const dst = this.#dst;
    src.off('error', this.#onError);
    src.off('close', this.#onSrcClose);
    dst.off('error', this.#onError);
    dst.off('finish', this.#onFinish);
    dst.off('close', this.#onDstClose);
    if (err) {
      src.unpipe(dst);
      src.destroy();
      dst.destroy();
      this.#reject(err);
    } else this.#resolve();
  }
}
