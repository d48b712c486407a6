/**
 * The recorder: adapters open a writer per recorded stream; bytes are queued (bounded), hashed
 * with SHA-256 as they are queued, and appended to a file. On close the file is fsynced, renamed
 * to its hash (content-addressed: `<dir>/<aa>/<sha256>.<ext>`), the hash enters the audit chain
 * as a `recording.closed` record, and the store gets the final metadata pointing at that record.
 *
 * The data path never waits for the disk: `write` only queues. Past the high-water mark it
 * returns false so callers that can pause their source do; past the hard limit a chunk is
 * dropped whole (writers emit whole events per call, so the file stays well-formed) and the
 * number of dropped bytes is recorded with the hash, so a gap is evidence too.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { flatText } from '../flat-text.ts';
import type { AuditRecord } from '../store.ts';
import type {
  Recorder,
  RecordingFormat,
  RecordingMeta,
  RecordingOpenOptions,
  RecordingWriter,
} from './types.ts';

/** Coalesce writes up to this many bytes or this long before writing them to the file. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 50;

/** The audit record type a closed recording's hash is entered under. */
export const RECORDING_AUDIT_TYPE = 'recording.closed';

/** What the recorder needs from the store. */
export interface RecordingStore {
  putRecording(meta: RecordingMeta): Promise<void>;
  getRecording(id: string): Promise<RecordingMeta | undefined>;
}

/** What the recorder needs from the audit log (AuditLog fits). */
export interface AuditAppender {
  append(type: string, data: Readonly<Record<string, unknown>>): Promise<AuditRecord>;
}

export interface RecordingsOptions {
  /** Directory the recording files live under. */
  readonly dir: string;
  readonly store: RecordingStore;
  readonly audit: AuditAppender;
  /** `write` returns false above this many queued bytes. Default 1 MiB. */
  readonly highWaterBytes?: number;
  /** Chunks that would take the queue above this are dropped and counted. Default 16 MiB. */
  readonly maxBufferedBytes?: number;
  readonly now?: () => number;
  /** Told about store/disk failures that the data path must not see. */
  readonly onError?: (err: unknown, recordingId: string) => void;
}

export function recordingExtension(format: RecordingFormat): string {
  return format === 'asciicast-v2' ? 'cast' : 'jsonl';
}

/** Where a sealed recording with this hash lives, relative to the recordings directory. */
export function sealedPath(sha256: string, format: RecordingFormat): string {
  return join(sha256.slice(0, 2), `${sha256}.${recordingExtension(format)}`);
}

export class Recordings implements Recorder {
  readonly dir: string;
  private readonly opts: RecordingsOptions;
  private readonly open_ = new Set<FileRecordingWriter>();

  constructor(opts: RecordingsOptions) {
    this.opts = opts;
    this.dir = opts.dir;
  }

  open(
    sessionId: string,
    connection: string,
    format: RecordingFormat,
    options: RecordingOpenOptions = {},
  ): RecordingWriter {
    const writer = new FileRecordingWriter(this.opts, sessionId, connection, format, options, () =>
      this.open_.delete(writer),
    );
    this.open_.add(writer);
    return writer;
  }

  /** Recordings still open. */
  get openCount(): number {
    return this.open_.size;
  }

  /**
   * Seals recordings a previous run left open (killed before their sessions closed): each is
   * hashed as it is on disk, named by that hash and entered into the chain with
   * `recovered: true`, so what was recorded up to the crash is evidence too. Call once at start.
   */
  async recover(): Promise<number> {
    let pids: string[];
    try {
      pids = await readdir(join(this.dir, 'open'));
    } catch {
      return 0;
    }
    const parts: string[] = [];
    for (const pid of pids) {
      // This process has opened nothing yet (recover runs first), so its own pid's directory
      // holds leftovers of an earlier run that had the same pid (pid 1 in a container).
      if (Number(pid) !== process.pid && alive(Number(pid))) continue;
      const names = await readdir(join(this.dir, 'open', pid)).catch(() => [] as string[]);
      for (const name of names) if (name.endsWith('.part')) parts.push(join(pid, name));
    }
    let n = 0;
    for (const rel of parts) {
      const id = rel.slice(rel.lastIndexOf('/') + 1, -'.part'.length);
      const meta = await this.opts.store.getRecording(id);
      if (!meta || meta.status === 'closed') continue;
      const part = join(this.dir, 'open', rel);
      const { hashFile } = await import('./verify.ts');
      const { sha256, bytes } = await hashFile(part);
      const sealed = sealedPath(sha256, meta.format);
      await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true });
      await rename(part, join(this.dir, sealed));
      const closed: RecordingMeta = {
        ...meta,
        status: 'closed',
        endedAt: (this.opts.now ?? Date.now)(),
        bytes,
        sha256,
        path: sealed,
      };
      const record = await this.opts.audit.append(RECORDING_AUDIT_TYPE, {
        ...recordingAuditData(closed),
        recovered: true,
      });
      await this.opts.store.putRecording({ ...closed, auditSeq: record.seq });
      n += 1;
    }
    return n;
  }

  /** Seals every recording still open (gateway shutdown). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.open_].map((w) => w.close()));
  }
}

class FileRecordingWriter implements RecordingWriter {
  readonly id: string;
  readonly sessionId: string;
  readonly format: RecordingFormat;
  private readonly opts: RecordingsOptions;
  private readonly highWater: number;
  private readonly maxBuffered: number;
  private readonly hash = createHash('sha256');
  private readonly partPath: string;
  private readonly file: Promise<FileHandle>;
  private readonly registered: Promise<void>;
  private readonly onClosed: () => void;
  private meta: RecordingMeta;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  /** Text written since the last flush, not yet encoded (see write). */
  private text = '';
  private bytes = 0;
  private dropped = 0;
  private error: string | undefined;
  private pumping: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private drainWaiters: (() => void)[] = [];
  private closing: Promise<RecordingMeta> | undefined;
  /** Set when sealing starts: from then on every batch is written at once. */
  private sealing = false;

  constructor(
    opts: RecordingsOptions,
    sessionId: string,
    connection: string,
    format: RecordingFormat,
    options: RecordingOpenOptions,
    onClosed: () => void,
  ) {
    this.opts = opts;
    this.id = randomUUID();
    this.sessionId = sessionId;
    this.format = format;
    this.onClosed = onClosed;
    this.highWater = opts.highWaterBytes ?? 1024 * 1024;
    this.maxBuffered = Math.max(this.highWater, opts.maxBufferedBytes ?? 16 * 1024 * 1024);
    // Per process, so a gateway starting next to a live one (same data directory) recovers
    // only what dead processes left behind.
    const relPart = join('open', String(process.pid), `${this.id}.part`);
    this.partPath = join(opts.dir, relPart);
    this.meta = {
      id: this.id,
      sessionId,
      connection,
      protocol: options.protocol,
      principal: options.principal,
      format,
      status: 'open',
      startedAt: (opts.now ?? Date.now)(),
      endedAt: undefined,
      bytes: 0,
      sha256: undefined,
      droppedBytes: 0,
      path: relPart,
      auditSeq: undefined,
      error: undefined,
    };
    this.file = mkdir(dirname(this.partPath), { recursive: true }).then(() =>
      open(this.partPath, 'wx', 0o600),
    );
    this.file.catch((err) => this.fail(err));
    // Listed while open, so a session in progress can be found; a failure here is not the
    // caller's problem (the final put on close tries again).
    this.registered = opts.store.putRecording(this.meta).catch((err) => opts.onError?.(err, this.id));
  }

  write(chunk: string | Uint8Array): boolean {
    if (chunk.length === 0) return this.queuedBytes + this.text.length < this.highWater;
    if (
      this.closing ||
      this.error !== undefined ||
      this.queuedBytes + this.text.length + chunk.length > this.maxBuffered
    ) {
      this.dropped += typeof chunk === 'string' ? Buffer.byteLength(chunk, 'utf8') : chunk.length;
      return false;
    }
    if (typeof chunk === 'string') {
      // Text (every event of an event stream, every asciicast line) is gathered as a string and
      // encoded and hashed once per flush, not once per event: a statement's two events would
      // otherwise cost two buffers and two hash updates on the data path. Each piece waits up
      // to FLUSH_MS, so it waits flattened.
      this.text += flatText(chunk);
    } else {
      this.takeText();
      const buf = Buffer.from(chunk);
      this.hash.update(buf);
      this.bytes += buf.length;
      this.queue.push(buf);
      this.queuedBytes += buf.length;
    }
    if (this.queuedBytes + this.text.length >= FLUSH_BYTES) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      this.pump();
    } else if (!this.flushTimer && !this.pumping) {
      this.flushTimer = setTimeout(this.onFlushTimer, FLUSH_MS);
    }
    return this.queuedBytes + this.text.length < this.highWater;
  }

  /** Moves gathered text into the byte queue (and the hash), keeping the order of writes. */
  private takeText(): void {
    if (this.text.length === 0) return;
    const buf = Buffer.from(this.text, 'utf8');
    this.text = '';
    this.hash.update(buf);
    this.bytes += buf.length;
    this.queue.push(buf);
    this.queuedBytes += buf.length;
  }

  drained(): Promise<void> {
    if (this.queuedBytes + this.text.length < this.highWater || this.error !== undefined)
      return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  close(): Promise<RecordingMeta> {
    this.closing ??= this.seal().finally(this.onClosed);
    return this.closing;
  }

  private pump(): void {
    this.takeText();
    if (this.pumping) return;
    this.pumping = this.drainQueue().finally(() => {
      this.pumping = undefined;
      if (this.error !== undefined || (this.queue.length === 0 && this.text.length === 0)) return;
      // What arrived during the write goes out at once only when it is a flush's worth, someone
      // waits for room, or the recording is being sealed; otherwise it waits for the timer like
      // any other small write. Pumping again at once would write one event per thread-pool
      // round trip under steady traffic (a write and two thread wake-ups per statement or two).
      if (this.sealing || this.drainWaiters.length > 0 || this.queuedBytes + this.text.length >= FLUSH_BYTES)
        this.pump();
      else this.flushTimer ??= setTimeout(this.onFlushTimer, FLUSH_MS);
    });
  }

  private readonly onFlushTimer = (): void => {
    this.flushTimer = undefined;
    this.pump();
  };

  private async drainQueue(): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await this.file;
    } catch {
      return; // fail() already recorded it
    }
    // One batch per pump: pump's continuation decides whether the next goes out now or later.
    if (this.queue.length > 0 && this.error === undefined) {
      const batch = this.queue;
      this.queue = [];
      let total = 0;
      for (const b of batch) total += b.length;
      try {
        let { bytesWritten } = await fh.writev(batch);
        // writev may write part of the data; finish the rest with plain writes.
        if (bytesWritten < total) {
          const rest = Buffer.concat(batch).subarray(bytesWritten);
          let off = 0;
          while (off < rest.length) {
            const r = await fh.write(rest, off, rest.length - off);
            off += r.bytesWritten;
          }
          bytesWritten = total;
        }
      } catch (err) {
        this.fail(err);
      }
      this.queuedBytes -= total;
      if (this.queuedBytes < this.highWater) this.releaseWaiters();
    }
  }

  private releaseWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private fail(err: unknown): void {
    if (this.error !== undefined) return;
    this.error = `the recording file could not be written: ${(err as Error)?.message ?? String(err)}`;
    // Queued bytes will never reach the file; drop them from the count of queued work.
    this.queue = [];
    this.queuedBytes = 0;
    this.text = '';
    this.releaseWaiters();
    this.opts.onError?.(err, this.id);
  }

  private async seal(): Promise<RecordingMeta> {
    this.sealing = true;
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.queue.length > 0 || this.text.length > 0) this.pump();
    while (this.pumping) await this.pumping;
    let path = this.meta.path;
    const sha256 = this.hash.digest('hex');
    try {
      const fh = await this.file;
      // The hash goes into the chain only once the bytes it vouches for are on disk.
      await fh.sync();
      await fh.close();
      const sealed = sealedPath(sha256, this.format);
      await mkdir(join(this.opts.dir, sha256.slice(0, 2)), { recursive: true });
      await rename(this.partPath, join(this.opts.dir, sealed));
      path = sealed;
    } catch (err) {
      this.fail(err);
    }
    const endedAt = (this.opts.now ?? Date.now)();
    const base: RecordingMeta = {
      ...this.meta,
      status: 'closed',
      endedAt,
      bytes: this.bytes,
      sha256,
      droppedBytes: this.dropped,
      path,
      error: this.error,
    };
    await this.registered;
    // Durable: the recording is evidence of what happened in the session.
    const record = await this.opts.audit.append(RECORDING_AUDIT_TYPE, recordingAuditData(base));
    this.meta = { ...base, auditSeq: record.seq };
    try {
      await this.opts.store.putRecording(this.meta);
    } catch (err) {
      this.opts.onError?.(err, this.id);
    }
    return this.meta;
  }
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The content of the `recording.closed` audit record: what replay checks the bytes against. */
export function recordingAuditData(meta: RecordingMeta): Record<string, unknown> {
  return {
    recording: meta.id,
    session: meta.sessionId,
    connection: meta.connection,
    ...(meta.protocol === undefined ? {} : { protocol: meta.protocol }),
    ...(meta.principal === undefined ? {} : { principal: meta.principal }),
    format: meta.format,
    sha256: meta.sha256,
    bytes: meta.bytes,
    droppedBytes: meta.droppedBytes,
    startedAt: meta.startedAt,
    endedAt: meta.endedAt,
    ...(meta.error === undefined ? {} : { error: meta.error }),
  };
}
