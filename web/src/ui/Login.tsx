import { useEffect, useState } from 'preact/hooks';
import { ApiError, signIn } from '../api.ts';
import type { Me } from '../types.ts';

export function Login({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  // Single sign-on is offered when the gateway names an identity provider.
  const [sso, setSso] = useState(false);
  useEffect(() => {
    fetch('/api/v1/auth/config')
      .then((r) => (r.ok ? r.json() : { oidc: null }))
      .then((c: { oidc: unknown }) => setSso(Boolean(c.oidc)))
      .catch(() => setSso(false));
  }, []);
  return (
    <main class="login" id="main">
      {sso && (
        <p class="login-sso">
          <a class="button primary" href="/auth/oidc/login">
            Sign in with single sign-on
          </a>
        </p>
      )}
      <form
        class="login-form"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError('');
          try {
            onSignedIn(await signIn(token.trim()));
          } catch (err) {
            setError(err instanceof ApiError ? err.describe() : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Sign in to Airlock</h1>
        <label for="token">Airlock token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
        />
        <p class="muted small">The token stays on the server; the browser keeps only a session cookie.</p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy} aria-label="Sign in">
          Sign in
        </button>
      </form>
    </main>
  );
}
