/**
 * The CLI's client for the control-plane API. AIRLOCK_URL and AIRLOCK_TOKEN configure it; every
 * failure becomes an AirlockError whose message says what to do next.
 */
import { AirlockError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';
import { cachedEntry, cachedToken } from './credentials.ts';

export const DEFAULT_URL = 'http://127.0.0.1:7070';

export interface ApiClient {
  readonly url: string;
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export function apiClient(env: NodeJS.ProcessEnv = process.env): ApiClient {
  const url = (env.AIRLOCK_URL || DEFAULT_URL).replace(/\/+$/, '');
  let token = env.AIRLOCK_TOKEN || cachedToken(url, env)?.token;
  return {
    url,
    async request<T>(method: string, path: string, body?: unknown): Promise<T> {
      if (!token) {
        // An expired `airlock login` token is renewed with its refresh token, when there is one.
        const cached = cachedEntry(url, env);
        if (cached?.refreshToken)
          token = await (await import('./login.ts')).refreshCredential(url, cached, env);
      }
      if (!token)
        throw new AirlockError(
          'AIRLOCK_E_TOKEN_MISSING',
          'AIRLOCK_TOKEN is not set and you are not signed in',
          {
            hint: 'run `airlock login`, or export AIRLOCK_TOKEN=<your Airlock token> (`airlock demo` prints one)',
          },
        );
      const headers: Record<string, string> = {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      try {
        res = await fetch(url + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (cause) {
        throw new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', `no Airlock server answered at ${url}`, {
          hint: 'is `airlock serve` or `airlock demo` running? set AIRLOCK_URL to its address',
          cause,
        });
      }
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        throw new AirlockError(
          'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
          `${url} did not answer like an Airlock server (HTTP ${res.status})`,
          {
            hint: 'check AIRLOCK_URL: it should be the address `airlock serve` or `airlock demo` prints',
          },
        );
      }
      if (!res.ok) {
        const e = (parsed as { error?: { code?: string; message?: string; hint?: string } } | undefined)
          ?.error;
        const code = e?.code && e.code in ERROR_CODES ? (e.code as ErrorCode) : 'AIRLOCK_E_INTERNAL';
        throw new AirlockError(code, e?.message ?? `the server answered HTTP ${res.status}`, {
          ...(e?.hint ? { hint: e.hint } : {}),
          status: res.status,
        });
      }
      return parsed as T;
    },
  };
}
