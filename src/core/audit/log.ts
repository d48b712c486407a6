/**
 * The audit log writer. Every record gets the next seq and the previous record's hash, so
 * writes are strictly serialized through one queue. Two ways in:
 *
 * - `append` is durable: it resolves only after the record (and every batched record queued
 *   before it, to keep the chain in order) is committed. Non-read actions wait for this before
 *   they are forwarded.
 * - `appendLater` queues a record (allowed reads, session closes) and commits it with others
 *   within `batchMs`, so the hot path does not wait for an fsync per statement.
 *
 * Fail closed: if the store refuses a write, nothing is advanced in memory — the next attempt
 * reuses the same seq and prevHash — and queued records stay queued until a write succeeds.
 *
 * Checkpoints (when a key is configured): once a commit leaves the head `every` records past
 * the last checkpoint, or every `intervalMs` if anything was written since, a signed checkpoint
 * for the committed head joins the next batch. Signing costs one Ed25519 signature per
 * checkpoint, never per record, and the data path never waits for it.
 */
import { AirlockError } from '../errors.ts';
import { flatText } from '../flat-text.ts';
import type { AuditRecord, Store } from '../store.ts';
import { canonical } from './canonical.ts';
import { GENESIS, hashCanonicalData } from './chain.ts';
import { CHECKPOINT_TYPE, type CheckpointKey, type SignedCheckpoint, signCheckpoint } from './checkpoint.ts';

export interface CheckpointOptions {
  readonly key: CheckpointKey;
  /** A checkpoint at least every this many records. Default 1000. */
  readonly every?: number;
  /** And at least this often while records are written. Default 60 s. */
  readonly intervalMs?: number;
  /** Told about each checkpoint once it is committed (anchors outside the store). Must not throw. */
  readonly onCheckpoint?: (checkpoint: SignedCheckpoint, recordSeq: number) => void;
}

export interface AuditLogOptions {
  /** How long an `appendLater` record may wait for its batch. Default 50 ms. */
  readonly batchMs?: number;
  /** A batch is written as soon as it holds this many records. Default 512. */
  readonly batchMax?: number;
  /**
   * Queued records beyond this are refused while the store is down (the log becomes unhealthy
   * and callers fall back to durable appends, which fail closed). Default 64 × batchMax.
   */
  readonly maxQueued?: number;
  readonly now?: () => number;
  /** Signed checkpoints; none when omitted. */
  readonly checkpoints?: CheckpointOptions | undefined;
}

interface Queued {
  readonly at: number;
  readonly type: string;
  /**
   * The caller's data, kept only where something reads it back: durable appends (the waiter
   * gets the record) and checkpoints. A batched record keeps just its text (see `prepare`).
   */
  readonly data?: Readonly<Record<string, unknown>>;
  /** The canonical text: the snapshot that is hashed and stored. */
  readonly dataJson: string;
  /** Set for durable appends: settled when the batch holding the record commits or fails. */
  readonly waiter?: { resolve(record: AuditRecord): void; reject(err: unknown): void };
  /** Where the record goes in the chain if everything queued before it commits as queued. */
  link?: ChainLink;
}

interface ChainLink {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * Optional store capability, for stores several replicas append to: append onto the chain's
 * current head under the store's own lock, renumbering and rehashing the batch when another
 * replica appended since this process last saw the head. Returns the records as committed.
 */
export interface SharedAuditWriter {
  appendAuditOnHead(records: readonly AuditRecord[]): Promise<readonly AuditRecord[]>;
}

function isSharedWriter(store: Store): store is Store & SharedAuditWriter {
  return typeof (store as Partial<SharedAuditWriter>).appendAuditOnHead === 'function';
}

const UNAVAILABLE_HINT =
  'the gateway refuses actions it cannot record; check that the audit store is reachable and has free disk space';

export class AuditLog {
  private readonly store: Store;
  private readonly batchMs: number;
  private readonly batchMax: number;
  private readonly maxQueued: number;
  private readonly now: () => number;
  private head: { seq: number; hash: string } | undefined;
  private queued: Queued[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Tail of the write queue: every write runs after the previous one settled. */
  private tail: Promise<unknown> = Promise.resolve();
  private lastWriteFailed = false;
  private overflowed = false;
  private closed = false;
  private readonly cp: CheckpointOptions | undefined;
  private readonly cpEvery: number;
  private cpTimer: NodeJS.Timeout | undefined;
  /** Seq the newest queued or written checkpoint vouches for. */
  private cpCovered = 0;
  /** Seq of the newest checkpoint record written. */
  private cpRecord = -1;
  private cpQueued = false;

  constructor(store: Store, opts: AuditLogOptions = {}) {
    this.store = store;
    this.cp = opts.checkpoints;
    this.cpEvery = Math.max(1, opts.checkpoints?.every ?? 1000);
    this.batchMs = opts.batchMs ?? 50;
    this.batchMax = Math.max(1, opts.batchMax ?? 512);
    this.maxQueued = opts.maxQueued ?? this.batchMax * 64;
    this.now = opts.now ?? Date.now;
  }

  /** False after a failed write (until one succeeds) or while batched records overflowed. */
  get healthy(): boolean {
    return this.head !== undefined && !this.lastWriteFailed && !this.overflowed;
  }

  /** Seq of the newest committed record (0 for an empty log). */
  get headSeq(): number {
    return this.head?.seq ?? 0;
  }

  async init(): Promise<void> {
    try {
      const head = await this.store.auditHead();
      this.head = head ? { seq: head.seq, hash: head.hash } : { seq: 0, hash: GENESIS };
      if (head?.type === CHECKPOINT_TYPE) {
        this.cpRecord = head.seq;
        this.cpCovered = head.seq - 1;
      }
    } catch (err) {
      throw unavailable('the audit log could not be read', err);
    }
    if (this.cp) {
      // Records a previous run wrote after its last checkpoint (a crash) get one right away.
      if (this.head.seq > 0 && this.head.seq !== this.cpRecord) this.queueCheckpoint();
      const interval = Math.max(10, this.cp.intervalMs ?? 60_000);
      this.cpTimer = setInterval(() => {
        if (this.closed || this.cpQueued || !this.head) return;
        if (this.head.seq > this.cpCovered && this.head.seq !== this.cpRecord) this.queueCheckpoint();
      }, interval);
      this.cpTimer.unref();
    }
  }

  /** Appends a checkpoint for the current head now (unless the head is one) and commits it. */
  async checkpoint(): Promise<void> {
    if (!this.cp) throw new AirlockError('AIRLOCK_E_INTERNAL', 'no audit signing key is configured');
    if (!this.cpQueued && this.head && this.head.seq > 0 && this.head.seq !== this.cpRecord)
      this.queueCheckpoint();
    await this.flush();
  }

  private queueCheckpoint(): void {
    const head = this.head!;
    const cp = this.cp!;
    const signed = signCheckpoint(cp.key, head.seq, head.hash, this.now());
    const data = { ...signed };
    // Appended, never inserted: while a write is in flight the queue's front is that write's
    // batch. Records queued meanwhile may land between the checkpoint and the record it vouches
    // for; verification looks the hash up by seq.
    this.push({ at: signed.at, type: CHECKPOINT_TYPE, data, dataJson: canonical(data) });
    this.cpCovered = head.seq;
    this.cpQueued = true;
    this.schedule(this.batchMs);
  }

  /**
   * Group commit: a durable record joins the queue and the next write takes everything queued
   * by then, so concurrent writers (eight pgbench clients, say) share one transaction and one
   * fsync instead of waiting for each other's.
   */
  append(type: string, data: Readonly<Record<string, unknown>>, dataJson?: string): Promise<AuditRecord> {
    let prepared: Queued;
    try {
      prepared = this.prepare(type, data, dataJson);
    } catch (err) {
      return Promise.reject(err);
    }
    const done = new Promise<AuditRecord>((resolve, reject) => {
      this.push({ ...prepared, data, waiter: { resolve, reject } });
    });
    this.enqueue(() => this.write()).catch(() => {});
    return done;
  }

  /** `dataJson`, when given, must be `canonical(data)` (see action-record.ts). */
  appendLater(type: string, data: Readonly<Record<string, unknown>>, dataJson?: string): void {
    const item = this.prepare(type, data, dataJson);
    if (this.queued.length >= this.maxQueued) {
      // The store has been failing for a while; keep the buffer bounded and say so through
      // `healthy`, which makes the Gate record reads durably (and so refuse them) until it heals.
      this.overflowed = true;
      throw unavailable(`the audit queue is full (${this.maxQueued} records waiting for the store)`);
    }
    this.push(item);
    if (this.queued.length >= this.batchMax) this.schedule(0);
    else this.schedule(this.batchMs);
  }

  /** Commits every queued record. Rejects (records stay queued) if the store refuses. */
  async flush(): Promise<void> {
    await this.enqueue(() => this.write());
  }

  async close(): Promise<void> {
    if (this.cpTimer) clearInterval(this.cpTimer);
    this.cpTimer = undefined;
    // A clean stop leaves every record vouched for by a signature.
    if (
      this.cp &&
      !this.closed &&
      this.head &&
      this.head.seq > 0 &&
      !this.cpQueued &&
      this.head.seq !== this.cpRecord
    )
      this.queueCheckpoint();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.head !== undefined && this.queued.length > 0) await this.flush();
    this.closed = true;
  }

  private prepare(type: string, data: Readonly<Record<string, unknown>>, json?: string): Queued {
    if (this.closed) throw unavailable('the audit log is closed');
    if (this.head === undefined)
      throw new AirlockError('AIRLOCK_E_INTERNAL', 'AuditLog.init() was not called');
    // Canonicalize now: a value that cannot be canonicalized is the caller's bug and must
    // surface at the caller, not poison a batch later.
    // The canonical text is the snapshot that is hashed and stored; the caller's object is only
    // handed back on the returned record.
    // A batched record waits up to `batchMs`: as one string, without the caller's object.
    const dataJson = flatText(json ?? canonical(data));
    return { at: this.now(), type, dataJson };
  }

  /**
   * Queues a record linked onto the chain after the last queued one (or the committed head).
   * Each record is hashed when it is queued, a statement's worth of work at a time, instead of a
   * whole batch in one go when it is written (half a millisecond for 512 records, during which
   * every session waits); the write checks each link and hashes again whatever no longer fits.
   */
  private push(item: Queued): void {
    const after = this.queued.at(-1)?.link ?? this.head!;
    const seq = after.seq + 1;
    const hash = hashCanonicalData(seq, item.at, item.type, item.dataJson, after.hash);
    item.link = { seq, prevHash: after.hash, hash };
    this.queued.push(item);
  }

  /** Links the queue again from the committed head, after records left it or the head moved. */
  private relinkQueue(): void {
    const queued = this.queued;
    this.queued = [];
    for (const item of queued) this.push(item);
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op, op);
    this.tail = run.catch(() => {});
    return run;
  }

  private schedule(ms: number): void {
    if (this.timer) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.queued.length === 0 || this.closed) return;
      this.flush().catch(() => {
        // Already reflected in `healthy`; try again after another window. Records stay queued.
        if (this.queued.length > 0 && !this.closed) this.schedule(this.batchMs);
      });
    }, ms);
    this.timer.unref();
  }

  /** Writes every queued record in one store transaction. */
  private async write(): Promise<AuditRecord[]> {
    const head = this.head!;
    const batch = this.queued;
    if (batch.length === 0) return [];
    const records: AuditRecord[] = [];
    let seq = head.seq;
    let prevHash = head.hash;
    for (const item of batch) {
      seq += 1;
      const link = item.link;
      const hash =
        link !== undefined && link.seq === seq && link.prevHash === prevHash
          ? link.hash
          : hashCanonicalData(seq, item.at, item.type, item.dataJson, prevHash);
      records.push(
        item.data
          ? { seq, at: item.at, type: item.type, data: item.data, dataJson: item.dataJson, prevHash, hash }
          : new TextRecord(seq, item.at, item.type, item.dataJson, prevHash, hash),
      );
      prevHash = hash;
    }
    const taken = batch.length;
    let committed: readonly AuditRecord[] = records;
    try {
      if (isSharedWriter(this.store)) committed = await this.store.appendAuditOnHead(records);
      else await this.store.appendAudit(records);
    } catch (err) {
      this.lastWriteFailed = true;
      const error = unavailable('the audit log could not be written', err);
      // Durable records fail with their actions (which are then refused, so there is nothing
      // to record); batched ones describe what already happened and stay queued for a retry.
      const durable = batch.filter((q) => q.waiter);
      if (durable.length > 0) {
        this.queued = this.queued.filter((q) => !q.waiter);
        this.relinkQueue();
        for (const q of durable) q.waiter!.reject(error);
      }
      throw error;
    }
    // Records queued while the write was in flight stay queued for the next write.
    this.queued = this.queued.slice(taken);
    const last = committed[committed.length - 1]!;
    this.head = { seq: last.seq, hash: last.hash };
    // Another replica's records came first (the store chained these after them): what is still
    // queued moves along too.
    if (last.hash !== records[records.length - 1]!.hash) this.relinkQueue();
    this.lastWriteFailed = false;
    if (this.queued.length < this.maxQueued) this.overflowed = false;
    if (this.cp) this.afterCommit(committed);
    // `batch` is the live queue: records appended while the write was in flight sit after
    // `taken` and belong to the next write.
    for (let i = 0; i < taken; i++) {
      const waiter = batch[i]!.waiter;
      if (waiter) {
        const { dataJson: _, ...record } = committed[i]!;
        waiter.resolve(record);
      }
    }
    return [...committed];
  }

  private afterCommit(committed: readonly AuditRecord[]): void {
    const cp = this.cp!;
    for (const r of committed) {
      if (r.type !== CHECKPOINT_TYPE) continue;
      this.cpRecord = r.seq;
      this.cpQueued = false;
      try {
        cp.onCheckpoint?.(r.data as unknown as SignedCheckpoint, r.seq);
      } catch {
        // anchors report their own failures
      }
    }
    const head = this.head!;
    if (
      !this.cpQueued &&
      !this.closed &&
      head.seq - this.cpCovered >= this.cpEvery &&
      head.seq !== this.cpRecord
    )
      this.queueCheckpoint();
  }
}

/** A batched record as written: its data is read back from its canonical text when asked for. */
class TextRecord implements AuditRecord {
  constructor(
    readonly seq: number,
    readonly at: number,
    readonly type: string,
    readonly dataJson: string,
    readonly prevHash: string,
    readonly hash: string,
  ) {}

  get data(): Readonly<Record<string, unknown>> {
    return JSON.parse(this.dataJson) as Record<string, unknown>;
  }
}

function unavailable(message: string, cause?: unknown): AirlockError {
  return new AirlockError('AIRLOCK_E_AUDIT_UNAVAILABLE', message, {
    hint: UNAVAILABLE_HINT,
    ...(cause === undefined ? {} : { cause }),
  });
}
