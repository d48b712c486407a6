/**
 * The live request stream (GET /api/v1/events, authenticated by the session cookie). Each
 * `request` event carries the request as it is now; `ready` means (re)connected, so views
 * reload what they show in case they missed events while disconnected.
 */
import type { AirlockRequest } from './types.ts';

export type LiveState = 'connecting' | 'live' | 'offline';

type Listener = { request?: (r: AirlockRequest) => void; ready?: () => void; state?: (s: LiveState) => void };

const listeners = new Set<Listener>();
let source: EventSource | undefined;
let state: LiveState = 'offline';
let retryTimer: ReturnType<typeof setTimeout> | undefined;

function setState(s: LiveState) {
  state = s;
  for (const l of listeners) l.state?.(s);
}

export function liveState(): LiveState {
  return state;
}

export function subscribe(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function connect(): void {
  if (source) return;
  setState('connecting');
  const es = new EventSource('/api/v1/events');
  source = es;
  es.addEventListener('ready', () => {
    setState('live');
    for (const l of listeners) l.ready?.();
  });
  es.addEventListener('request', (ev) => {
    let r: AirlockRequest;
    try {
      r = JSON.parse((ev as MessageEvent<string>).data) as AirlockRequest;
    } catch {
      return;
    }
    for (const l of listeners) l.request?.(r);
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream (signed out, restarted): try again on our own schedule.
      source = undefined;
      setState('offline');
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, 5000);
    } else setState('connecting');
  };
}

export function disconnect(): void {
  clearTimeout(retryTimer);
  source?.close();
  source = undefined;
  setState('offline');
}
