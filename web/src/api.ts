/**
 * Calls to the control-plane API with the console's session cookie. State-changing calls carry
 * the CSRF token the server handed out at sign-in.
 */
import type { Me } from './types.ts';

let csrf = '';
const signedOutListeners = new Set<() => void>();

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
  describe(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}

export function onSignedOut(fn: () => void): () => void {
  signedOutListeners.add(fn);
  return () => signedOutListeners.delete(fn);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-airlock-csrf'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(
      0,
      'NETWORK',
      'the Airlock server could not be reached',
      'check your connection and retry',
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; hint?: string } } | undefined)?.error;
    const err = new ApiError(res.status, e?.code ?? 'HTTP', e?.message ?? `HTTP ${res.status}`, e?.hint);
    if (res.status === 401 && path !== '/api/v1/session') for (const fn of signedOutListeners) fn();
    throw err;
  }
  return json as T;
}

interface SessionReply {
  principal: Me;
  csrf: string;
}

export async function currentSession(): Promise<Me | undefined> {
  try {
    const s = await api<SessionReply>('GET', '/api/v1/session');
    csrf = s.csrf;
    return s.principal;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined;
    throw err;
  }
}

export async function signIn(token: string): Promise<Me> {
  const s = await api<SessionReply>('POST', '/api/v1/session', { token });
  csrf = s.csrf;
  return s.principal;
}

export async function signOut(): Promise<void> {
  try {
    await api('DELETE', '/api/v1/session');
  } finally {
    csrf = '';
  }
}
