/**
 * Session recordings: what adapters write through, and what the store keeps about each one.
 * The bytes live in files named by their SHA-256 (content-addressed); the hash also enters the
 * audit chain when the recording closes, so a recording altered afterwards no longer matches
 * the evidence that vouches for it.
 */

/**
 * `asciicast-v2`: terminals (SSH shells, kubectl exec), https://docs.asciinema.org/manual/asciicast/v2/
 * `events-jsonl`: one JSON object per line (database statements, HTTP exchanges, MCP calls).
 */
export const RECORDING_FORMATS = ['asciicast-v2', 'events-jsonl'] as const;
export type RecordingFormat = (typeof RECORDING_FORMATS)[number];

export type RecordingStatus = 'open' | 'closed';

/** What the store keeps about a recording. */
export interface RecordingMeta {
  readonly id: string;
  readonly sessionId: string;
  readonly connection: string;
  readonly protocol: string | undefined;
  readonly principal: string | undefined;
  readonly format: RecordingFormat;
  readonly status: RecordingStatus;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly endedAt: number | undefined;
  /** Bytes stored (and hashed). */
  readonly bytes: number;
  /** sha256 hex of the stored bytes; undefined while open. */
  readonly sha256: string | undefined;
  /** Bytes the adapter wrote that were not stored because the disk fell too far behind. */
  readonly droppedBytes: number;
  /** Path of the bytes, relative to the recordings directory. */
  readonly path: string;
  /** Seq of the audit record that holds this recording's hash; undefined while open. */
  readonly auditSeq: number | undefined;
  /** Why storing failed part-way (disk error), if it did. */
  readonly error: string | undefined;
}

export interface RecordingFilter {
  readonly sessionId?: string | undefined;
  readonly connection?: string | undefined;
  /** Only recordings that started before this one (by start time, then id): paging. */
  readonly before?: { readonly startedAt: number; readonly id: string } | undefined;
  readonly limit?: number | undefined;
}

/** What an adapter writes a recording through. Never throws into the data path. */
export interface RecordingWriter {
  readonly id: string;
  readonly sessionId: string;
  readonly format: RecordingFormat;
  /**
   * Queues bytes. Returns false once the queue is above its high-water mark: a caller that can
   * pause its source (an SSH channel) should wait for `drained()`. Beyond the hard limit the
   * chunk is dropped whole and counted (the count enters the audit record), so the data path is
   * never blocked by a slow disk.
   */
  write(chunk: string | Uint8Array): boolean;
  /** Resolves when the queue is below the high-water mark again. */
  drained(): Promise<void>;
  /**
   * Flushes, seals (hash → file name, audit chain, store) and returns the final metadata.
   * Idempotent. Rejects only when the audit log refuses the record (AIRLOCK_E_AUDIT_UNAVAILABLE).
   */
  close(): Promise<RecordingMeta>;
}

export interface RecordingOpenOptions {
  readonly protocol?: string | undefined;
  /** Principal name. */
  readonly principal?: string | undefined;
}

/** The recorder adapters receive (the gateway passes one in the listener context). */
export interface Recorder {
  open(
    sessionId: string,
    connection: string,
    format: RecordingFormat,
    options?: RecordingOpenOptions,
  ): RecordingWriter;
}
