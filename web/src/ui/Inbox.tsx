/** Pending requests, riskiest first, updated live; j/k/a/d/o/Enter/? from the keyboard. */
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { subscribe } from '../live.ts';
import { byRisk } from '../risk.ts';
import { Link, navigate } from '../router.tsx';
import type { AirlockRequest, Me } from '../types.ts';
import { NotifyAlert } from './Deliveries.tsx';
import { cannotDecide, useDecider } from './decide.tsx';
import { mayBreakGlass, useGrantActions } from './grant-actions.tsx';
import { useNow } from './hooks.ts';
import { RequestCard } from './RequestCard.tsx';

export function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));
}

export function Inbox({ me, onHelp }: { me: Me; onHelp: () => void }) {
  const [requests, setRequests] = useState<Map<number, AirlockRequest>>(new Map());
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState('');
  const [selectedId, setSelectedId] = useState<number | undefined>(undefined);
  const now = useNow();
  const listRef = useRef<HTMLDivElement>(null);

  const upsert = useCallback((r: AirlockRequest) => {
    setRequests((prev) => {
      const next = new Map(prev);
      if (r.status === 'pending') next.set(r.id, { ...prev.get(r.id), ...r });
      else next.delete(r.id);
      return next;
    });
  }, []);

  const load = useCallback(async () => {
    if (!me.reviewer) {
      setLoaded(true);
      return;
    }
    try {
      const res = await api<{ requests: AirlockRequest[] }>(
        'GET',
        '/api/v1/requests?status=pending&limit=500',
      );
      setRequests((prev) => {
        // Keep what only live events carry (estimated rows) for requests still pending.
        const next = new Map<number, AirlockRequest>();
        for (const r of res.requests) next.set(r.id, { ...prev.get(r.id), ...r });
        return next;
      });
      setError('');
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    } finally {
      setLoaded(true);
    }
  }, [me.reviewer]);

  useEffect(() => {
    void load();
    return subscribe({ request: upsert, ready: () => void load() });
  }, [load, upsert]);

  const list = useMemo(() => [...requests.values()].sort(byRisk), [requests]);
  const selected = list.find((r) => r.id === selectedId) ?? list[0];
  const decider = useDecider(me, upsert);
  const actions = useGrantActions(me, upsert);

  const select = (r: AirlockRequest | undefined) => {
    if (!r) return;
    setSelectedId(r.id);
    const el = document.getElementById(`request-${r.id}`);
    el?.focus({ preventScroll: true });
    el?.scrollIntoView({ block: 'nearest' });
  };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
      if (document.querySelector('dialog[open]')) return;
      const i = selected ? list.indexOf(selected) : -1;
      switch (e.key) {
        case 'j':
          select(list[Math.min(list.length - 1, i + 1)]);
          break;
        case 'k':
          select(list[Math.max(0, i - 1)]);
          break;
        case 'a':
          if (selected && !cannotDecide(me, selected)) void decider.approve(selected);
          break;
        case 'd':
          if (selected) decider.openDeny(selected);
          break;
        case 'b':
          if (selected && mayBreakGlass(me, selected)) actions.open('break-glass', selected);
          break;
        case 'o':
        case 'Enter':
          // Enter on a button or link keeps its own meaning.
          if (e.key === 'Enter' && (e.target as HTMLElement).closest?.('button, a')) return;
          if (selected) navigate(`/requests/${selected.id}`);
          break;
        case '?':
          onHelp();
          break;
        default:
          return;
      }
      e.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  });

  return (
    <main id="main" class="page">
      <div class="page-head">
        <h1>
          Inbox{' '}
          <span class="count">
            {list.length}
            <span class="sr-only"> pending</span>
          </span>
        </h1>
        <button type="button" class="link-button" aria-label="Keyboard shortcuts" onClick={onHelp}>
          Shortcuts (?)
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <NotifyAlert enabled={me.reviewer} refresh={list.length} />
      {!me.reviewer && (
        <p class="empty">
          You are signed in as {me.name}, who is not a reviewer. Open a request link to follow one of your own
          requests, or ask for time-boxed access on the <Link href="/access">Access</Link> page.
        </p>
      )}
      {me.reviewer && loaded && list.length === 0 && !error && (
        <p class="empty" data-testid="inbox-empty">
          Nothing is waiting for a decision. New requests appear here as they arrive.
        </p>
      )}
      <div class="cards" ref={listRef} aria-live="polite" aria-relevant="additions">
        {list.map((r) => (
          <RequestCard
            key={r.id}
            r={r}
            me={me}
            now={now}
            decider={decider}
            actions={actions}
            selected={r === selected}
          />
        ))}
      </div>
      {decider.dialog}
      {actions.dialog}
    </main>
  );
}
