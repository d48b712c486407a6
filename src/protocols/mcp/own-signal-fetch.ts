/**
 * fetch for the tool-server transport. The SDK's HTTP client transport hands the same abort
 * signal (its session's) to every request it makes, and Node's fetch keeps a listener on that
 * signal until the request object is garbage-collected: a busy session piles up thousands of
 * listeners (and Node warns about a leak). Each request gets a signal of its own that follows
 * the session's (AbortSignal.any keeps only a weak link from the session's signal to it), so
 * closing the session still aborts everything in flight, and nothing accumulates.
 */
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';

export const ownSignalFetch: FetchLike = (url, init) =>
  fetch(url, init?.signal ? { ...init, signal: AbortSignal.any([init.signal]) } : init);
