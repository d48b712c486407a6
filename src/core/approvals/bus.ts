/**
 * Request change notifications. Events carry ids and the new status only: a subscriber that
 * needs more re-reads the request from the store, which keeps the bus trivially portable to
 * PostgreSQL LISTEN/NOTIFY across replicas (payloads there are small and unauthenticated).
 */
import type { RequestStatus } from './request.ts';

export interface RequestEvent {
  readonly type: 'request';
  readonly id: number;
  readonly status: RequestStatus;
}

export type RequestEventListener = (event: RequestEvent) => void;

export interface EventBus {
  publish(event: RequestEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(listener: RequestEventListener): () => void;
}

/** One gateway process: listeners are called synchronously, in subscription order. */
export class InProcessEventBus implements EventBus {
  private readonly listeners = new Set<RequestEventListener>();

  publish(event: RequestEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        // One broken subscriber (an SSE stream, say) must not keep the others from hearing,
        // nor take the gateway down with an uncaught exception.
        process.emitWarning(`a request event listener failed: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  subscribe(listener: RequestEventListener): () => void {
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const entry: RequestEventListener = (e) => listener(e);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }
}
