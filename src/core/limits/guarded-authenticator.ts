/**
 * Failed sign-in throttling in front of any Authenticator, so every door — the PostgreSQL,
 * MySQL, SSH, HTTP and MCP listeners and the API — is covered the same way: a blocked source
 * or claimed user is refused before the credential is even checked, and each rejected
 * credential counts. A missing credential or a token used outside its scope is not guessing and
 * does not count.
 */
import type { Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import type { AuthContext, Authenticator } from '../identity/authenticator.ts';
import type { Limits } from './limits.ts';

const GUESSES = new Set(['AIRLOCK_E_TOKEN_INVALID', 'AIRLOCK_E_TOKEN_EXPIRED', 'AIRLOCK_E_TOKEN_REVOKED']);

export function guardAuthenticator<T extends Authenticator>(inner: T, limits: Limits): T {
  const guarded: Authenticator = {
    async authenticate(credential: string | undefined | null, ctx?: AuthContext): Promise<Principal> {
      const attempt = { protocol: ctx?.protocol ?? 'api', source: ctx?.source, identity: ctx?.user };
      limits.beforeAuth(attempt);
      try {
        return await inner.authenticate(credential, ctx);
      } catch (err) {
        if (err instanceof AirlockError && GUESSES.has(err.code)) limits.authFailed(attempt);
        throw err;
      }
    },
    principal: (name) => inner.principal(name),
  };
  // Whatever else the inner authenticator offers (e.g. token management) stays reachable.
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'authenticate') return guarded.authenticate;
      if (prop === 'principal') return guarded.principal;
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
