/**
 * The delivery log: every notification Airlock tried to send, its attempts and how it ended,
 * for the console. In memory and bounded (oldest dropped first): it is an operational view,
 * while the durable trace of a failure is the `notify.failed` audit event.
 */
import type { NotifyEvent } from '../core/policy/schema.ts';

export type ChannelType = 'webhook' | 'slack' | 'email';

export type DeliveryStatus = 'sending' | 'retrying' | 'delivered' | 'failed';

export interface DeliveryAttempt {
  /** Epoch milliseconds. */
  readonly at: number;
  readonly ok: boolean;
  readonly durationMs: number;
  /** HTTP status, when the peer answered. */
  readonly status?: number | undefined;
  /** Why it failed, with secrets removed. */
  readonly error?: string | undefined;
}

export interface DeliveryRecord {
  readonly id: number;
  readonly channel: ChannelType;
  /** Where it went, without credentials: a URL origin and path, a Slack channel, recipients. */
  readonly target: string;
  readonly requestId: number;
  readonly event: NotifyEvent;
  /** What the channel did: post, update, send. */
  readonly operation: string;
  readonly status: DeliveryStatus;
  readonly attempts: readonly DeliveryAttempt[];
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When the next attempt is due, while retrying. */
  readonly nextAttemptAt?: number | undefined;
}

export interface DeliveryFilter {
  readonly requestId?: number;
  readonly status?: readonly DeliveryStatus[];
  readonly limit?: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Entry = Mutable<Omit<DeliveryRecord, 'attempts'>> & { attempts: DeliveryAttempt[] };

const MAX_ERROR = 300;

/** Attempts kept per record: a long retry series keeps its first and latest. */
const MAX_ATTEMPTS_KEPT = 20;

export class DeliveryLog {
  private readonly max: number;
  private readonly entries = new Map<number, Entry>();
  private nextId = 1;

  constructor(max = 1000) {
    this.max = Math.max(1, max);
  }

  start(
    fields: Pick<DeliveryRecord, 'channel' | 'target' | 'requestId' | 'event' | 'operation'>,
    now: number,
  ): number {
    const id = this.nextId++;
    this.entries.set(id, { id, ...fields, status: 'sending', attempts: [], createdAt: now, updatedAt: now });
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as number;
      this.entries.delete(oldest);
    }
    return id;
  }

  attempt(id: number, attempt: DeliveryAttempt): void {
    const e = this.entries.get(id);
    if (!e) return;
    const clean =
      attempt.error === undefined ? attempt : { ...attempt, error: attempt.error.slice(0, MAX_ERROR) };
    if (e.attempts.length >= MAX_ATTEMPTS_KEPT) e.attempts.splice(1, 1);
    e.attempts.push(clean);
    e.updatedAt = attempt.at + attempt.durationMs;
  }

  settle(id: number, status: DeliveryStatus, now: number, nextAttemptAt?: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.status = status;
    e.updatedAt = now;
    e.nextAttemptAt = nextAttemptAt;
  }

  get(id: number): DeliveryRecord | undefined {
    const e = this.entries.get(id);
    return e ? snapshot(e) : undefined;
  }

  /** Newest first. */
  list(filter: DeliveryFilter = {}): DeliveryRecord[] {
    const out: DeliveryRecord[] = [];
    const limit = filter.limit ?? Number.POSITIVE_INFINITY;
    for (const e of [...this.entries.values()].reverse()) {
      if (out.length >= limit) break;
      if (filter.requestId !== undefined && e.requestId !== filter.requestId) continue;
      if (filter.status && !filter.status.includes(e.status)) continue;
      out.push(snapshot(e));
    }
    return out;
  }
}

function snapshot(e: Entry): DeliveryRecord {
  const { nextAttemptAt, ...rest } = e;
  return {
    ...rest,
    attempts: e.attempts.map((a) => ({ ...a })),
    ...(nextAttemptAt === undefined ? {} : { nextAttemptAt }),
  };
}
