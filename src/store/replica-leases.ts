/**
 * Replica leases on the shared store. Each replica renews its lease every third of the lease
 * time; a replica that stops renewing (killed, frozen, cut off) loses it. The held requests of
 * a replica without a lease can never be forwarded (the caller's connection was on it), so the
 * survivors cancel them: reviewers stop seeing them as waiting, and the audit log says why.
 *
 * Only `wait` holds are tied to a replica (see PostgresStore.createRequest); a `retry` request
 * has no connection waiting and stays approvable through any replica.
 */
import type { OrphanedRequest, PostgresStore } from './postgres.ts';

export interface ReplicaLeasesOptions {
  readonly store: PostgresStore;
  /** Approvals.cancel: compare-and-set, audited, published on the bus. */
  readonly cancel: (requestId: number, reason: string) => Promise<unknown>;
  /** A replica silent this long is dead. Default 15 s. */
  readonly leaseMs?: number;
  /** Shown in the replicas table (e.g. the API URL). */
  readonly info?: string;
  readonly log?: { warn(obj: object, msg: string): void; info?(obj: object, msg: string): void };
}

export class ReplicaLeases {
  readonly leaseMs: number;
  private readonly store: PostgresStore;
  private readonly cancel: ReplicaLeasesOptions['cancel'];
  private readonly info: string;
  private readonly log: ReplicaLeasesOptions['log'];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastRenewed = 0;
  private closed = false;

  constructor(opts: ReplicaLeasesOptions) {
    this.store = opts.store;
    this.cancel = opts.cancel;
    this.leaseMs = Math.max(300, opts.leaseMs ?? 15_000);
    this.info = opts.info ?? '';
    this.log = opts.log;
  }

  /** True while this replica's lease was renewed within the lease time. */
  get healthy(): boolean {
    return !this.closed && Date.now() - this.lastRenewed < this.leaseMs;
  }

  /** Takes the lease (rejects if the store cannot be written), then renews it periodically. */
  async start(): Promise<void> {
    await this.store.heartbeat(this.info);
    this.lastRenewed = Date.now();
    this.timer = setInterval(
      () => {
        void this.tick();
      },
      Math.floor(this.leaseMs / 3),
    );
    this.timer.unref();
  }

  /** One round: renew, then cancel what dead replicas held. */
  tick(): Promise<void> {
    if (this.running || this.closed) return this.running ?? Promise.resolve();
    const run = (async () => {
      try {
        await this.store.heartbeat(this.info);
        this.lastRenewed = Date.now();
      } catch (err) {
        this.log?.warn({ err: (err as Error).message }, 'replica lease could not be renewed');
        return;
      }
      await this.reapOrphans();
    })();
    this.running = run;
    const clear = () => {
      this.running = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /** Ends the lease: a clean stop does not leave the others waiting for it to run out. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => {});
    await this.store.retire().catch((err) => {
      this.log?.warn({ err: (err as Error).message }, 'replica lease could not be ended');
    });
  }

  private async reapOrphans(): Promise<void> {
    let orphans: OrphanedRequest[];
    try {
      orphans = await this.store.orphanedRequests(this.leaseMs);
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'could not look for requests of dead replicas');
      return;
    }
    for (const o of orphans) {
      if (this.closed) return;
      try {
        await this.cancel(
          o.requestId,
          'the gateway replica holding the caller’s connection stopped (its lease ran out); the caller must reconnect and send it again',
        );
        this.log?.info?.(
          { requestId: o.requestId, replica: o.replicaId },
          'cancelled a request of a dead replica',
        );
      } catch {
        // Decided meanwhile (by a reviewer, expiry, or another survivor): nothing to do.
      }
    }
    await this.store.pruneReplicas(this.leaseMs).catch(() => {});
  }
}
