/**
 * On a single gateway (embedded store), a request held with `hold: wait` lives on the caller's
 * connection: when the process that held it is gone, so is the connection, and nobody can be
 * waiting for it any more. At start, such leftovers from a previous run (a crash, a kill -9)
 * are cancelled, audited, so reviewers do not approve something that can never run.
 * `retry` requests stay: their caller comes back and runs the command again once approved.
 * Replicas sharing a PostgreSQL store use leases instead (store/replica-leases.ts).
 */
import { pendingRequests } from '../core/approvals/pending.ts';
import type { Approvals } from '../core/approvals/service.ts';
import type { Store } from '../core/store.ts';

export async function cancelOrphanedHolds(
  store: Store,
  approvals: Approvals,
  startedAt: number,
): Promise<number> {
  let cancelled = 0;
  for await (const r of pendingRequests(store)) {
    if (r.review.hold !== 'wait' || r.createdAt >= startedAt) continue;
    try {
      await approvals.cancel(
        r.id,
        'the gateway restarted while this statement was held; the caller was disconnected and must send it again',
      );
      cancelled++;
    } catch {
      // Decided or expired meanwhile: nothing to cancel.
    }
  }
  return cancelled;
}
