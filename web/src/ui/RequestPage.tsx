import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { subscribe } from '../live.ts';
import { Link } from '../router.tsx';
import type { AirlockRequest, Me } from '../types.ts';
import { DeliveryList } from './Deliveries.tsx';
import { useDecider } from './decide.tsx';
import { useGrantActions } from './grant-actions.tsx';
import { useNow } from './hooks.ts';
import { RequestCard } from './RequestCard.tsx';

export function RequestPage({ me, id }: { me: Me; id: number }) {
  const [r, setR] = useState<AirlockRequest | undefined>(undefined);
  const [error, setError] = useState('');
  const now = useNow();
  const update = useCallback(
    (next: AirlockRequest) => {
      if (next.id === id) setR((prev) => ({ ...prev, ...next }));
    },
    [id],
  );
  const load = useCallback(async () => {
    try {
      const res = await api<{ request: AirlockRequest }>('GET', `/api/v1/requests/${id}`);
      update(res.request);
      setError('');
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : String(err));
    }
  }, [id, update]);
  useEffect(() => {
    setR(undefined);
    void load();
    return subscribe({ request: update, ready: () => void load() });
  }, [load, update]);
  const decider = useDecider(me, update);
  const actions = useGrantActions(me, update);
  return (
    <main id="main" class="page">
      <nav class="crumbs" aria-label="Breadcrumb">
        <Link href="/">Inbox</Link> / <span aria-current="page">Request #{id}</span>
      </nav>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {r && <RequestCard r={r} me={me} now={now} decider={decider} actions={actions} tall headingLevel={2} />}
      {r && me.reviewer && (
        <DeliveryList requestId={id} refresh={`${r.status}:${r.approvals.length}`} now={now} />
      )}
      {!r && !error && <p class="muted">Loading…</p>}
      {decider.dialog}
      {actions.dialog}
    </main>
  );
}
