/**
 * Notification deliveries in the console: a failed or retrying notification never blocks a
 * request, but reviewers must see that people may not have been told. The inbox shows an alert
 * while any delivery is failing; a request page lists every delivery for that request.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { duration } from '../risk.ts';
import type { Delivery } from '../types.ts';

const POLL_MS = 10_000;

/** Deliveries matching `query`, refreshed every 10 s and whenever `refresh` changes. */
export function useDeliveries(query: string, refresh: unknown, enabled = true): Delivery[] | undefined {
  const [deliveries, setDeliveries] = useState<Delivery[] | undefined>(undefined);
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    const load = async () => {
      try {
        const res = await api<{ deliveries: Delivery[] }>('GET', `/api/v1/notify/deliveries?${query}`);
        if (!stopped) setDeliveries(res.deliveries);
      } catch (err) {
        // Not a reviewer, or the server is unreachable (the page says so elsewhere).
        if (!stopped && err instanceof ApiError && err.status === 403) setDeliveries([]);
      }
    };
    void load();
    const t = setInterval(() => void load(), POLL_MS);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, [query, refresh, enabled]);
  return deliveries;
}

function lastError(d: Delivery): string {
  for (let i = d.attempts.length - 1; i >= 0; i--) {
    const a = d.attempts[i]!;
    if (!a.ok) return a.error ?? (a.status ? `HTTP ${a.status}` : 'failed');
  }
  return '';
}

function nextText(d: Delivery, now: number): string {
  if (d.status !== 'retrying' || d.nextAttemptAt === undefined) return '';
  const left = d.nextAttemptAt - now;
  return left > 0 ? `next try in ${duration(left)}` : 'retrying now';
}

/** Inbox alert: shown only while some notification is failing or being retried. */
export function NotifyAlert({ enabled, refresh }: { enabled: boolean; refresh: unknown }) {
  const deliveries = useDeliveries('status=failed,retrying&limit=50', refresh, enabled);
  if (!deliveries || deliveries.length === 0) return null;
  const failed = deliveries.filter((d) => d.status === 'failed').length;
  const retrying = deliveries.length - failed;
  const channels = [...new Set(deliveries.map((d) => `${d.channel} ${d.target}`))];
  const newest = deliveries[0]!;
  return (
    <section class="notify-alert" role="status" aria-label="Notification problems" data-testid="notify-alert">
      <strong>
        Notifications are not getting through:{' '}
        {[failed > 0 ? `${failed} failed` : '', retrying > 0 ? `${retrying} being retried` : '']
          .filter(Boolean)
          .join(', ')}
        .
      </strong>{' '}
      Reviewers may not have heard about every request; requests still wait here.{' '}
      <span class="muted">
        {channels.slice(0, 3).join('; ')}
        {channels.length > 3 ? ` and ${channels.length - 3} more` : ''}. Latest error (request #
        {newest.requestId}): {lastError(newest) || 'none recorded'}
      </span>
    </section>
  );
}

/** Every delivery for one request, newest first. */
export function DeliveryList({
  requestId,
  refresh,
  now,
}: {
  requestId: number;
  refresh: unknown;
  now: number;
}) {
  const deliveries = useDeliveries(`request=${requestId}&limit=100`, refresh);
  if (!deliveries || deliveries.length === 0) return null;
  return (
    <section class="deliveries" aria-labelledby="deliveries-title" data-testid="deliveries">
      <h3 id="deliveries-title">Notifications</h3>
      <ul>
        {deliveries.map((d) => (
          <li key={d.id} class={`delivery delivery-${d.status}`}>
            <span
              class={`status status-${d.status === 'delivered' ? 'executed' : d.status === 'failed' ? 'denied' : 'pending'}`}
            >
              {d.status}
            </span>{' '}
            <strong>{d.channel}</strong> <span class="wrap">{d.target}</span>{' '}
            <span class="muted">
              {d.event}
              {d.operation ? ` (${d.operation})` : ''} · {d.attempts.length} attempt
              {d.attempts.length === 1 ? '' : 's'}
              {nextText(d, now) ? ` · ${nextText(d, now)}` : ''}
            </span>
            {d.status !== 'delivered' && lastError(d) ? (
              <div class="delivery-error">{lastError(d)}</div>
            ) : null}
          </li>
        ))}
      </ul>
    </section>
  );
}
