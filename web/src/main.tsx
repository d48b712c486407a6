/** The Airlock reviewer console. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { currentSession, onSignedOut, signOut } from './api.ts';
import { connect, disconnect, type LiveState, liveState, subscribe } from './live.ts';
import { Link, navigate, parseRoute, useLocation } from './router.tsx';
import './style.css';
import type { Me } from './types.ts';
import { Access } from './ui/Access.tsx';
import { Audit } from './ui/Audit.tsx';
import { Dialog } from './ui/Dialog.tsx';
import { History } from './ui/History.tsx';
import { Inbox } from './ui/Inbox.tsx';
import { Login } from './ui/Login.tsx';
import { RequestPage } from './ui/RequestPage.tsx';

const SHORTCUTS: [string, string][] = [
  ['j / k', 'next / previous request'],
  ['a', 'approve the selected request'],
  ['d', 'deny the selected request (asks for a reason)'],
  ['b', 'break glass on the selected request (break-glass groups only; asks for a justification)'],
  ['o or Enter', 'open the selected request'],
  ['?', 'this help'],
  ['Esc', 'close a dialog'],
];

function App() {
  const loc = useLocation();
  const route = parseRoute(loc.path);
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [live, setLive] = useState<LiveState>(liveState());
  const [help, setHelp] = useState(false);

  useEffect(() => {
    currentSession()
      .then((m) => setMe(m ?? null))
      .catch(() => setMe(null));
    const off = onSignedOut(() => setMe(null));
    const unsub = subscribe({ state: setLive });
    return () => {
      off();
      unsub();
    };
  }, []);

  useEffect(() => {
    if (me) connect();
    else disconnect();
    if (me === null && route.name !== 'login') {
      sessionStorage.setItem('airlock.next', location.pathname);
      navigate('/login', true);
    }
    if (me && route.name === 'login') navigate(sessionStorage.getItem('airlock.next') ?? '/', true);
  }, [me, route.name]);

  if (me === undefined) return <p class="muted loading">Loading…</p>;
  if (me === null || route.name === 'login')
    return (
      <Login
        onSignedIn={(m) => {
          setMe(m);
        }}
      />
    );

  const nav = (href: string, label: string, active: boolean) => (
    <Link href={href} aria-current={active ? 'page' : undefined}>
      {label}
    </Link>
  );
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand" aria-label="Airlock inbox">
          Airlock
        </Link>
        <nav class="nav" aria-label="Main">
          {nav('/', 'Inbox', route.name === 'inbox')}
          {nav('/access', 'Access', route.name === 'access')}
          {nav('/history', 'History', route.name === 'history')}
          {nav('/audit', 'Audit', route.name === 'audit')}
        </nav>
        <span
          class={`live live-${live}`}
          role="status"
          aria-label={`live updates: ${live}`}
          data-testid="live"
        >
          {live === 'live' ? '● live' : live === 'connecting' ? '○ connecting' : '○ offline'}
        </span>
        <span class="who">
          <span class="muted">signed in as</span> <strong data-testid="me">{me.name}</strong>
          <button
            type="button"
            class="link-button"
            aria-label="Sign out"
            onClick={async () => {
              await signOut().catch(() => undefined);
              sessionStorage.removeItem('airlock.next');
              setMe(null);
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      {route.name === 'inbox' && <Inbox me={me} onHelp={() => setHelp(true)} />}
      {route.name === 'request' && <RequestPage me={me} id={route.id} />}
      {route.name === 'access' && <Access me={me} />}
      {route.name === 'history' && <History />}
      {route.name === 'audit' && <Audit />}
      {route.name === 'missing' && (
        <main id="main" class="page">
          <h1>Not found</h1>
          <p>
            There is no page at {loc.path}. <Link href="/">Go to the inbox</Link>.
          </p>
        </main>
      )}
      {help && (
        <Dialog id="help" title="Keyboard shortcuts" onClose={() => setHelp(false)}>
          <dl class="shortcuts">
            {SHORTCUTS.map(([k, v]) => (
              <div key={k}>
                <dt>
                  <kbd>{k}</kbd>
                </dt>
                <dd>{v}</dd>
              </div>
            ))}
          </dl>
          <div class="dialog-actions">
            <button type="button" aria-label="Close keyboard shortcuts" onClick={() => setHelp(false)}>
              Close
            </button>
          </div>
        </Dialog>
      )}
    </>
  );
}

render(<App />, document.getElementById('app')!);
