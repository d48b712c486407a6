/**
 * A caller that stops reading lets its SSH channel window fill up; the host's output then waits
 * in Airlock and on the host forever. This watches a caller-facing stream and reports when it
 * has wanted a drain for longer than the write timeout, so the caller can be cut off.
 * https://www.rfc-editor.org/rfc/rfc4254#section-5.2
 */
import type { Writable } from 'node:stream';

/** Calls `onStall` once `out` has stayed full for `ms`; returns a function that stops watching. */
export function watchStall(out: Writable, ms: number, onStall: () => void): () => void {
  let fullSince: number | undefined;
  const onDrain = () => {
    fullSince = undefined;
  };
  const stop = () => {
    clearInterval(timer);
    out.off('drain', onDrain);
  };
  // Checking a few times per timeout is enough: the bound is "about ms", not a deadline.
  const timer = setInterval(
    () => {
      if (!out.writableNeedDrain) {
        fullSince = undefined;
        return;
      }
      fullSince ??= Date.now();
      if (Date.now() - fullSince < ms) return;
      stop();
      onStall();
    },
    Math.max(20, Math.min(1000, Math.floor(ms / 4))),
  );
  timer.unref();
  out.on('drain', onDrain);
  out.once('close', stop);
  return stop;
}
