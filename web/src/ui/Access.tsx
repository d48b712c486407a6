/**
 * Just-in-time access: ask for time-boxed access to a connection (the policy's `access` rules
 * bound connection, kinds and length; a refusal is shown as the API words it), follow what you
 * asked for, and, for reviewers, decide what others asked for. Updated live.
 */
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { subscribe } from '../live.ts';
import { Link } from '../router.tsx';
import type { ActionKind, AirlockRequest, Me } from '../types.ts';
import { useDecider } from './decide.tsx';
import { useGrantActions } from './grant-actions.tsx';
import { useNow } from './hooks.ts';
import { RequestCard } from './RequestCard.tsx';

const KINDS: ActionKind[] = ['read', 'write', 'schema', 'privilege', 'admin', 'exec', 'session', 'transfer'];
const DURATION = /^\d+(ms|s|m|h|d)$/;

interface Connection {
  readonly name: string;
  readonly type: string;
  readonly description: string | null;
}

function AskForm({ onAsked }: { onAsked: (r: AirlockRequest) => void }) {
  const [connections, setConnections] = useState<Connection[]>([]);
  const [connection, setConnection] = useState('');
  const [duration, setDuration] = useState('1h');
  const [reason, setReason] = useState('');
  const [kinds, setKinds] = useState<Set<ActionKind>>(new Set());
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [asked, setAsked] = useState<AirlockRequest | undefined>(undefined);

  useEffect(() => {
    api<{ connections: Connection[] }>('GET', '/api/v1/connections')
      .then((res) => {
        setConnections(res.connections);
        setConnection((c) => c || res.connections[0]?.name || '');
      })
      .catch((err) => setError(err instanceof ApiError ? err.describe() : String(err)));
  }, []);

  const submit = async () => {
    setAsked(undefined);
    if (!connection) return setError('Choose a connection.');
    if (!DURATION.test(duration.trim()))
      return setError('Give the length as a number and a unit, e.g. 30m or 2h.');
    if (reason.trim() === '') return setError('Say why: reviewers see the reason and it is audited.');
    setBusy(true);
    setError('');
    try {
      const res = await api<{ request: AirlockRequest }>('POST', '/api/v1/access', {
        connection,
        duration: duration.trim(),
        reason: reason.trim(),
        ...(kinds.size > 0 ? { kinds: KINDS.filter((k) => kinds.has(k)) } : {}),
      });
      setAsked(res.request);
      setReason('');
      onAsked(res.request);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      class="access-form"
      aria-labelledby="ask-title"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <h2 id="ask-title">Ask for access</h2>
      <p class="muted small">
        Once a reviewer approves, what the access covers passes without per-statement review until it ends or
        is revoked. Everything is still audited and recorded.
      </p>
      <div class="access-fields">
        <label>
          Connection
          <select
            name="connection"
            value={connection}
            onChange={(e) => setConnection((e.target as HTMLSelectElement).value)}
          >
            {connections.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name} ({c.type})
              </option>
            ))}
          </select>
        </label>
        <label>
          For how long
          <input
            type="text"
            name="duration"
            inputMode="text"
            autoComplete="off"
            aria-describedby="duration-help"
            value={duration}
            onInput={(e) => setDuration((e.target as HTMLInputElement).value)}
          />
          <span id="duration-help" class="muted small">
            e.g. 30m, 2h
          </span>
        </label>
      </div>
      <fieldset class="kinds">
        <legend>Kinds of action (none checked: all the policy allows)</legend>
        {KINDS.map((k) => (
          <label key={k} class="check">
            <input
              type="checkbox"
              name="kinds"
              value={k}
              checked={kinds.has(k)}
              onChange={(e) => {
                const next = new Set(kinds);
                if ((e.target as HTMLInputElement).checked) next.add(k);
                else next.delete(k);
                setKinds(next);
              }}
            />
            {k}
          </label>
        ))}
      </fieldset>
      <label for="access-reason">Reason (reviewers see it; audited)</label>
      <textarea
        id="access-reason"
        name="reason"
        required
        maxLength={2000}
        rows={3}
        value={reason}
        aria-describedby={error ? 'access-error' : undefined}
        onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)}
      />
      {error && (
        <p id="access-error" class="error" role="alert" data-testid="access-error">
          {error}
        </p>
      )}
      {asked && (
        <p role="status" data-testid="access-asked">
          Asked: <Link href={`/requests/${asked.id}`}>request #{asked.id}</Link> — {asked.summary}. Waiting
          for a reviewer.
        </p>
      )}
      <div class="dialog-actions">
        <button type="submit" class="primary" disabled={busy || connections.length === 0}>
          Ask for access
        </button>
      </div>
    </form>
  );
}

export function Access({ me }: { me: Me }) {
  const [requests, setRequests] = useState<Map<number, AirlockRequest>>(new Map());
  const [error, setError] = useState('');
  const [loaded, setLoaded] = useState(false);
  const now = useNow();

  const upsert = useCallback((r: AirlockRequest) => {
    if (r.protocol !== 'access') return;
    setRequests((prev) => new Map(prev).set(r.id, { ...prev.get(r.id), ...r }));
  }, []);

  const load = useCallback(async () => {
    try {
      const lists = await Promise.all([
        api<{ requests: AirlockRequest[] }>(
          'GET',
          `/api/v1/access?limit=50${me.reviewer ? `&principal=${encodeURIComponent(me.name)}` : ''}`,
        ),
        ...(me.reviewer
          ? [api<{ requests: AirlockRequest[] }>('GET', '/api/v1/access?status=pending&limit=500')]
          : []),
      ]);
      const next = new Map<number, AirlockRequest>();
      for (const l of lists) for (const r of l.requests) next.set(r.id, r);
      setRequests(next);
      setError('');
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    } finally {
      setLoaded(true);
    }
  }, [me.name, me.reviewer]);

  useEffect(() => {
    void load();
    return subscribe({ request: upsert, ready: () => void load() });
  }, [load, upsert]);

  const decider = useDecider(me, upsert);
  const actions = useGrantActions(me, upsert);
  const all = useMemo(() => [...requests.values()].sort((a, b) => b.id - a.id), [requests]);
  const mine = all.filter((r) => r.principal.name === me.name);
  const toDecide = all.filter((r) => r.status === 'pending' && r.principal.name !== me.name).reverse();

  return (
    <main id="main" class="page">
      <h1>Access</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <AskForm onAsked={upsert} />
      {me.reviewer && (
        <section aria-labelledby="to-decide-title" data-testid="access-to-decide">
          <h2 id="to-decide-title">
            Waiting for a decision{' '}
            <span class="count">
              {toDecide.length}
              <span class="sr-only"> access requests</span>
            </span>
          </h2>
          {loaded && toDecide.length === 0 && <p class="empty">Nobody is waiting for access.</p>}
          <div class="cards" aria-live="polite" aria-relevant="additions">
            {toDecide.map((r) => (
              <RequestCard key={r.id} r={r} me={me} now={now} decider={decider} actions={actions} />
            ))}
          </div>
        </section>
      )}
      <section aria-labelledby="mine-title" data-testid="access-mine">
        <h2 id="mine-title">My access requests</h2>
        {loaded && mine.length === 0 && <p class="empty">You have not asked for access yet.</p>}
        <div class="cards">
          {mine.map((r) => (
            <RequestCard key={r.id} r={r} me={me} now={now} decider={decider} actions={actions} />
          ))}
        </div>
      </section>
      {decider.dialog}
      {actions.dialog}
    </main>
  );
}
