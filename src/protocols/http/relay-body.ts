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
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      src.off('error', settle);
      src.off('close', srcClosed);
      dst.off('error', settle);
      dst.off('finish', finished);
      dst.off('close', dstClosed);
      if (err) {
        src.unpipe(dst);
        src.destroy();
        dst.destroy();
        reject(err);
      } else resolve();
    };
    const finished = () => settle();
    const dstClosed = () => settle(new Error('the caller closed the connection before the body was sent'));
    const srcClosed = () => {
      // A body that closes without ending was cut off upstream.
      if (!src.readableEnded) settle(new Error('the upstream closed the connection mid-body'));
    };
    src.on('error', settle);
    src.on('close', srcClosed);
    dst.on('error', settle);
    dst.on('finish', finished);
    dst.on('close', dstClosed);
    src.pipe(dst);
  });
}
