/**
 * Request events across replicas on PostgreSQL LISTEN/NOTIFY
 * (https://www.postgresql.org/docs/current/sql-notify.html).
 *
 * - Local publishes reach local subscribers synchronously, as on the in-process bus, and go to
 *   the other replicas as a NOTIFY sent after the change committed.
 * - Payloads carry the request id and the sending replica only (NOTIFY payloads are small and
 *   anyone who can connect may send one): a receiver re-reads the row and delivers the status
 *   it finds, so a forged or stale notification can at worst cause a re-read.
 * - LISTEN runs on one dedicated connection (a pooled one would drop the subscription when it
 *   is handed back). When it breaks, the bus reconnects with backoff and re-syncs: it compares
 *   open and recently decided requests against what it last delivered and delivers every
 *   difference, so nothing decided while it was away is missed.
 * - The same comparison runs periodically as a backstop (a NOTIFY lost with a sender that
 *   died between commit and notify, a half-open connection nobody noticed).
 */
import pg from 'pg';
import {
  type EventBus,
  InProcessEventBus,
  type RequestEvent,
  type RequestEventListener,
} from '../core/approvals/bus.ts';
import { FINAL_STATUSES, type RequestStatus } from '../core/approvals/request.ts';
import type { PostgresStore } from './postgres.ts';

export const REQUEST_CHANNEL = 'airlock_requests';

export interface PgEventBusOptions {
  readonly store: PostgresStore;
  /** Default `airlock_requests`. */
  readonly channel?: string;
  /** Period of the backstop comparison. Default 5 s. */
  readonly reconcileMs?: number;
  /** How far back decisions are compared (decided_at, epoch ms). Default 10 min. */
  readonly lookbackMs?: number;
  /** First reconnect delay; doubles up to 10 s. Default 250 ms. */
  readonly reconnectMs?: number;
  readonly log?: { warn(obj: object, msg: string): void; info?(obj: object, msg: string): void };
}

const MAX_RECONNECT_MS = 10_000;
/** How long the LISTEN connection may take to answer a ping before it is replaced. */
const PING_TIMEOUT_MS = 5_000;

export class PgEventBus implements EventBus {
  private readonly store: PostgresStore;
  private readonly channel: string;
  private readonly reconcileMs: number;
  private readonly lookbackMs: number;
  private readonly reconnectMs: number;
  private readonly log: PgEventBusOptions['log'];
  /** Every event, local or from other replicas. */
  private readonly all = new InProcessEventBus();
  /**
   * Events of requests created on this replica, wherever they were decided: notifications go
   * out once per request, from the replica its caller came through (which also remembers, say,
   * the Slack message to edit).
   */
  private readonly own = new InProcessEventBus();
  /** Status last delivered per request, for re-sync. */
  private known = new Map<number, RequestStatus>();
  /** Ids delivered while a re-sync query ran: newer than its snapshot, so kept. */
  private touched = new Set<number>();
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private backoff: number;
  private closed = false;

  constructor(opts: PgEventBusOptions) {
    this.store = opts.store;
    this.channel = opts.channel ?? REQUEST_CHANNEL;
    this.reconcileMs = opts.reconcileMs ?? 5_000;
    this.lookbackMs = opts.lookbackMs ?? 10 * 60_000;
    this.reconnectMs = opts.reconnectMs ?? 250;
    this.backoff = this.reconnectMs;
    this.log = opts.log;
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Events of requests created on this replica (local or decided elsewhere): for notifiers. */
  get owned(): { subscribe(listener: RequestEventListener): () => void } {
    return { subscribe: (listener) => this.own.subscribe(listener) };
  }

  /** Connects and listens; resolves once listening (rejects if the first attempt fails). */
  async start(): Promise<void> {
    await this.connect();
    // Baseline: what exists now is loaded by the services themselves at start.
    this.known = await this.snapshot();
    this.reconcileTimer = setInterval(() => {
      void this.reconcile().catch((err) => this.log?.warn({ err: message(err) }, 'request re-sync failed'));
    }, this.reconcileMs);
    this.reconcileTimer.unref();
  }

  publish(event: RequestEvent): void {
    this.known.set(event.id, event.status);
    this.touched.add(event.id);
    this.all.publish(event);
    this.toOwner(event);
    if (this.closed) return;
    // Through the pool, not the LISTEN connection: a publish must not wait for a reconnect.
    // A lost NOTIFY is caught by the other replicas' periodic re-sync.
    this.store.db
      .selectNoFrom((eb) =>
        eb
          .fn<string>('pg_notify', [eb.val(this.channel), eb.val(`${this.store.replicaId} ${event.id}`)])
          .as('n'),
      )
      .execute()
      .catch((err) => this.log?.warn({ err: message(err), requestId: event.id }, 'request event not sent'));
  }

  subscribe(listener: RequestEventListener): () => void {
    return this.all.subscribe(listener);
  }

  /** Compares open and recent requests with what was delivered; delivers the differences. */
  reconcile(): Promise<void> {
    if (this.reconciling) return this.reconciling;
    const run = (async () => {
      // Also proves the LISTEN connection still answers; a dead one is replaced.
      const client = this.client;
      if (client) {
        // Bounded: on a half-open connection the query would never answer.
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            client.query('SELECT 1'),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error('no answer')), PING_TIMEOUT_MS);
            }),
          ]);
        } catch {
          if (this.client === client) this.dropClient();
        } finally {
          clearTimeout(timer);
        }
      }
      this.touched.clear();
      const now = await this.snapshot();
      if (this.closed) return;
      for (const [id, status] of now)
        if (!this.touched.has(id) && this.known.get(id) !== status)
          this.deliver({ type: 'request', id, status });
      // Forget what fell out of the window; keep what was delivered while the query ran.
      for (const id of [...this.known.keys()])
        if (!now.has(id) && !this.touched.has(id)) this.known.delete(id);
    })();
    this.reconciling = run;
    const clear = () => {
      this.reconciling = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    await this.reconciling?.catch(() => {});
    await this.connecting?.catch(() => {});
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async snapshot(): Promise<Map<number, RequestStatus>> {
    const open = [...this.known].filter(([, s]) => s === 'pending' || s === 'approved').map(([id]) => id);
    const rows = await this.store.requestStatuses(Date.now() - this.lookbackMs, open);
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  private connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    const attempt = (async () => {
      const client = new pg.Client({ connectionString: this.store.connectionString, keepAlive: true });
      client.on('error', (err) => {
        this.log?.warn({ err: message(err) }, 'request event connection failed; reconnecting');
        if (this.client === client) this.dropClient();
      });
      client.on('end', () => {
        if (this.client === client) this.dropClient();
      });
      client.on('notification', (n) => {
        if (n.channel === this.channel) this.onNotification(n.payload);
      });
      try {
        await client.connect();
        // An identifier, not a value: quote it (the channel name is ours, but still).
        await client.query(`LISTEN ${client.escapeIdentifier(this.channel)}`);
      } catch (err) {
        client.end().catch(() => {});
        throw err;
      }
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      this.client = client;
      this.backoff = this.reconnectMs;
    })();
    this.connecting = attempt;
    const clear = () => {
      this.connecting = undefined;
    };
    attempt.then(clear, clear);
    return attempt;
  }

  private dropClient(): void {
    const client = this.client;
    this.client = undefined;
    client?.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_RECONNECT_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed) return;
      this.connect().then(
        () => {
          this.log?.info?.({}, 'request event connection restored; re-syncing');
          // Whatever was decided while we were not listening is delivered now.
          return this.reconcile();
        },
        (err) => {
          this.log?.warn({ err: message(err) }, 'request event connection could not be restored');
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.reconnectTimer.unref();
  }

  private onNotification(payload: string | undefined): void {
    const m = /^(\S+) (\d{1,15})$/.exec(payload ?? '');
    if (!m) return;
    // Our own NOTIFY comes back to us too; it was delivered locally when published.
    if (m[1] === this.store.replicaId) return;
    const id = Number(m[2]);
    this.store.getRequest(id).then(
      (request) => {
        if (request && !this.closed) this.deliver({ type: 'request', id, status: request.status });
      },
      (err) =>
        this.log?.warn({ err: message(err), requestId: id }, 'request re-read failed; re-sync will retry'),
    );
  }

  private deliver(event: RequestEvent): void {
    this.known.set(event.id, event.status);
    this.touched.add(event.id);
    this.all.publish(event);
    this.toOwner(event);
  }

  private toOwner(event: RequestEvent): void {
    if (!this.store.createdHere(event.id)) return;
    // `executed` is not the end for notifications: an open grant can still be revoked.
    if (event.status !== 'executed' && FINAL_STATUSES.includes(event.status))
      this.store.forgetCreated(event.id);
    this.own.publish(event);
  }
}

function message(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}
