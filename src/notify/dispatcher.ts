/**
 * From request events to deliveries. The bus listener only queues work, so publishing (and so
 * Approvals.create/approve/deny) never waits on a network. Each event re-reads its request
 * (bus events carry ids only), picks the channels whose filters match, and runs one delivery
 * per channel with retries.
 *
 * Ordering: reads are serialized per request, and deliveries per (channel, request), so a Slack
 * update never overtakes the post it edits and a webhook receiver hears `created` before
 * `decided`. Work is bounded: past `maxPending` queued deliveries new ones are recorded as
 * failed instead of piling up behind a dead peer.
 */
import type { RequestEvent } from '../core/approvals/bus.ts';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import type { NotifyChannel } from '../core/policy/policy.ts';
import type { NotifyEvent } from '../core/policy/schema.ts';
import type { ChannelType, DeliveryLog } from './delivery-log.ts';
import { describeError, displayUrl, redact } from './http.ts';
import { type AttemptResult, backoffMs, DEFAULT_RETRY, type RetryPolicy, sleep } from './retry.ts';
import { eventOf } from './summary.ts';

/** One message to one place, tried until it lands or the retry policy gives up. */
export interface PlannedDelivery {
  /** post, update, send. */
  readonly operation: string;
  /** Where, for the log (no credentials). */
  readonly target: string;
  /** Values to scrub from error text (resolved at attempt time, so rotation is honoured). */
  readonly secrets?: () => readonly string[];
  attempt(signal: AbortSignal): Promise<AttemptResult>;
}

export interface Channel {
  readonly type: ChannelType;
  readonly config: NotifyChannel;
  /** Events the channel hears when its config names none. */
  readonly defaultEvents: readonly NotifyEvent[];
  /** What to send for this event, or undefined for nothing (an update with no message to edit). */
  plan(event: NotifyEvent, request: ApprovalRequest): PlannedDelivery | undefined;
}

export interface RequestReader {
  get(id: number): Promise<ApprovalRequest | undefined>;
}

export interface EventSource {
  subscribe(listener: (event: RequestEvent) => void): () => void;
}

/** Where failures are recorded durably; AuditLog fits. */
export interface FailureAudit {
  appendLater(type: string, data: Readonly<Record<string, unknown>>): void;
}

export interface NotifyLogger {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface DispatcherOptions {
  readonly channels: readonly Channel[];
  readonly approvals: RequestReader;
  readonly bus: EventSource;
  readonly log: DeliveryLog;
  readonly audit?: FailureAudit | undefined;
  readonly logger?: NotifyLogger | undefined;
  readonly retry?: Partial<RetryPolicy> | undefined;
  readonly now?: (() => number) | undefined;
  /** Deliveries queued or in flight beyond which new ones are dropped (and logged). */
  readonly maxPending?: number | undefined;
  readonly random?: (() => number) | undefined;
}

/** How many request ids we remember having seen, to tell `created` from a later vote. */
const SEEN_MAX = 10_000;
/** How long close() waits for in-flight attempts to notice the abort. */
const CLOSE_WAIT_MS = 5_000;

/** `*` matches any run of characters; everything else literally. */
export function globMatch(pattern: string, text: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
  return re.test(text);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function channelWants(channel: Channel, event: NotifyEvent, request: ApprovalRequest): boolean {
  const c = channel.config;
  if (!(c.events ?? channel.defaultEvents).includes(event)) return false;
  if (c.connections && !c.connections.some((p) => globMatch(p, request.connection))) return false;
  if (c.rules && !c.rules.includes(request.rule.name)) return false;
  return true;
}

export class Dispatcher {
  private readonly channels: readonly Channel[];
  private readonly approvals: RequestReader;
  private readonly bus: EventSource;
  private readonly log: DeliveryLog;
  private readonly audit: FailureAudit | undefined;
  private readonly logger: NotifyLogger | undefined;
  private readonly retry: RetryPolicy;
  private readonly now: () => number;
  private readonly maxPending: number;
  private readonly random: () => number;
  private readonly abort = new AbortController();
  private readonly reads = new Map<number, Promise<void>>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly seen = new Set<number>();
  private pending = 0;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  constructor(opts: DispatcherOptions) {
    this.channels = opts.channels;
    this.approvals = opts.approvals;
    this.bus = opts.bus;
    this.log = opts.log;
    this.audit = opts.audit;
    this.logger = opts.logger;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.now = opts.now ?? Date.now;
    this.maxPending = opts.maxPending ?? 1000;
    this.random = opts.random ?? Math.random;
  }

  start(): void {
    if (this.unsubscribe || this.closed || this.channels.length === 0) return;
    this.unsubscribe = this.bus.subscribe((event) => this.onEvent(event));
  }

  /** Resolves once nothing is queued or in flight (tests, benchmarks, shutdown). */
  async idle(): Promise<void> {
    while (this.reads.size > 0 || this.chains.size > 0)
      await Promise.allSettled([...this.reads.values(), ...this.chains.values()]);
  }

  /** Stops listening, aborts attempts and backoff waits, and waits (bounded) for them to end. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.abort.abort(new Error('the notifier is shutting down'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.idle(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  private onEvent(event: RequestEvent): void {
    if (this.closed || event.type !== 'request') return;
    const firstSeen = !this.seen.has(event.id);
    if (firstSeen) {
      this.seen.add(event.id);
      if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value as number);
    }
    const kind = eventOf(event.status, firstSeen);
    const id = event.id;
    const prev = this.reads.get(id);
    // setImmediate: the publisher (a reviewer's approve call, a held statement) finishes its
    // turn before we touch the store.
    const next = (prev ?? Promise.resolve())
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => this.fanOut(kind, id))
      .catch((err: unknown) => {
        this.logger?.warn({ requestId: id, err: describeError(err) }, 'notification: request not readable');
      });
    this.reads.set(id, next);
    void next.then(() => {
      if (this.reads.get(id) === next) this.reads.delete(id);
    });
  }

  private async fanOut(event: NotifyEvent, id: number): Promise<void> {
    if (this.closed) return;
    const request = await this.approvals.get(id);
    if (!request) return;
    this.channels.forEach((channel, index) => {
      if (channelWants(channel, event, request)) this.enqueue(channel, index, event, request);
    });
  }

  private enqueue(channel: Channel, index: number, event: NotifyEvent, request: ApprovalRequest): void {
    if (this.pending >= this.maxPending) {
      const now = this.now();
      const id = this.log.start(
        {
          channel: channel.type,
          target: targetOf(channel),
          requestId: request.id,
          event,
          operation: 'queue',
        },
        now,
      );
      const error = `${this.pending} notifications are already waiting; this one was dropped`;
      this.log.attempt(id, { at: now, ok: false, durationMs: 0, error });
      this.log.settle(id, 'failed', now);
      this.failed(channel.type, targetOf(channel), request.id, event, 'queue', 0, error);
      return;
    }
    this.pending++;
    const key = `${index}:${request.id}`;
    const next = (this.chains.get(key) ?? Promise.resolve())
      .then(() => this.run(channel, event, request))
      .catch((err: unknown) => {
        this.logger?.warn({ requestId: request.id, err: describeError(err) }, 'notification failed');
      })
      .finally(() => {
        this.pending--;
      });
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
  }

  private async run(channel: Channel, event: NotifyEvent, request: ApprovalRequest): Promise<void> {
    let plan: PlannedDelivery | undefined;
    try {
      plan = channel.plan(event, request);
    } catch (err) {
      plan = {
        operation: 'prepare',
        target: targetOf(channel),
        attempt: async () => ({ ok: false, retry: false, error: describeError(err) }),
      };
    }
    if (!plan) return;
    const signal = this.abort.signal;
    const logId = this.log.start(
      { channel: channel.type, target: plan.target, requestId: request.id, event, operation: plan.operation },
      this.now(),
    );
    let lastError = '';
    for (let n = 1; n <= this.retry.attempts; n++) {
      if (signal.aborted) {
        lastError = 'the notifier shut down before the notification was delivered';
        break;
      }
      const at = this.now();
      const started = performance.now();
      let result: AttemptResult;
      try {
        result = await plan.attempt(AbortSignal.any([signal, AbortSignal.timeout(this.retry.timeoutMs)]));
      } catch (err) {
        result = { ok: false, retry: true, error: describeError(err, secretsOf(plan)) };
      }
      const durationMs = Math.round(performance.now() - started);
      if (result.ok) {
        this.log.attempt(logId, { at, ok: true, durationMs, status: result.status });
        this.log.settle(logId, 'delivered', this.now());
        return;
      }
      lastError = redact(result.error, secretsOf(plan));
      this.log.attempt(logId, { at, ok: false, durationMs, status: result.status, error: lastError });
      if (!result.retry || n === this.retry.attempts || signal.aborted) break;
      const wait = Math.min(
        this.retry.maxMs,
        Math.max(backoffMs(n, this.retry, this.random), result.retryAfterMs ?? 0),
      );
      this.log.settle(logId, 'retrying', this.now(), this.now() + wait);
      await sleep(wait, signal);
    }
    this.log.settle(logId, 'failed', this.now());
    const attempts = this.log.get(logId)?.attempts.length ?? 0;
    this.failed(channel.type, plan.target, request.id, event, plan.operation, attempts, lastError);
  }

  private failed(
    channel: ChannelType,
    target: string,
    requestId: number,
    event: NotifyEvent,
    operation: string,
    attempts: number,
    error: string,
  ): void {
    this.logger?.warn({ channel, target, requestId, event, attempts, error }, 'notification failed');
    try {
      this.audit?.appendLater('notify.failed', {
        channel,
        target,
        requestId,
        event,
        operation,
        attempts,
        error,
      });
    } catch {
      // The audit log is closed or full; the delivery log still shows the failure.
    }
  }
}

function secretsOf(plan: PlannedDelivery): readonly string[] {
  try {
    return plan.secrets?.() ?? [];
  } catch {
    return [];
  }
}

function targetOf(channel: Channel): string {
  const c = channel.config;
  if (c.type === 'slack') return c.channel;
  if (c.type === 'email') return c.to.join(', ');
  return displayUrl(c.url);
}
