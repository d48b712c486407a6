/**
 * The target → caller direction of a session.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 *
 * Bytes pass through as views of the chunks they arrived in; DataRow and friends are never
 * decoded or re-encoded. The relay only tracks message boundaries so that it can
 *  - read ReadyForQuery's transaction status,
 *  - replace the ErrorResponse of a substitute statement with the gateway's denial,
 *  - drop any BackendKeyData (callers only ever see the gateway's key), and
 *  - insert the gateway's own messages (notices, errors) between the target's messages, never
 *    inside one.
 * A message the relay must look at is inspected in place when it lies inside one chunk, and
 * collected (it is small: Z, K, E) only when it is split across chunks.
 */
import { BackendType, PgProtocolError } from './codec.ts';

export interface RelayHooks {
  /** A ReadyForQuery passed with this status byte. */
  ready(status: number): void;
  /** Whether ErrorResponses must be shown to `error` (a substitute's error may be on its way). */
  wantErrors(): boolean;
  /** An ErrorResponse: return its replacement, or undefined to pass it on. */
  error(raw: Buffer): Buffer | undefined;
  /**
   * Set to see CommandComplete, ErrorResponse and NoticeResponse as they pass (the session
   * recording); the message is what the caller gets.
   */
  observe?: ((type: number, message: Buffer) => void) | undefined;
}

const EMPTY = Buffer.alloc(0);

export class BackendRelay {
  readonly #hooks: RelayHooks;
  readonly #header = Buffer.alloc(5);
  #headerLength = 0;
  /** Body bytes of the current passed-through message still to come. */
  #remaining = 0;
  #capture: Buffer[] | undefined;
  #captureType = 0;
  #captureLeft = 0;
  #pending: Buffer[] = [];
  // Per-call state of process().
  #chunk: Buffer = EMPTY;
  #passStart = 0;
  #out: Buffer[] = [];

  readonly #observe: boolean;

  constructor(hooks: RelayHooks) {
    this.#hooks = hooks;
    this.#observe = hooks.observe !== undefined;
  }

  /** True between messages: gateway messages can be written to the caller right away. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#capture === undefined && this.#headerLength === 0;
  }

  /**
   * Queue a gateway message for the caller. Returns false when it can be written at once (we are
   * between messages); otherwise it goes out right after the current target message.
   */
  inject(message: Buffer): boolean {
    if (this.atBoundary) return false;
    this.#pending.push(message);
    return true;
  }

  /** Feeds one chunk from the target; appends what the caller must receive to `out`. */
  process(chunk: Buffer, out: Buffer[]): void {
    this.#chunk = chunk;
    this.#out = out;
    this.#passStart = 0;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, n - i);
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#boundary(i);
        continue;
      }
      if (this.#capture) {
        const take = Math.min(this.#captureLeft, n - i);
        this.#capture.push(chunk.subarray(i, i + take));
        i += take;
        this.#passStart = i;
        this.#captureLeft -= take;
        if (this.#captureLeft === 0) this.#finishCapture(i);
        continue;
      }
      if (this.#headerLength === 0 && n - i >= 5) {
        const type = chunk[i]!;
        const length = chunk.readInt32BE(i + 1);
        if (length < 4) throw new PgProtocolError(`invalid backend message length ${length}`);
        if (!this.#interesting(type)) {
          i += 5;
          this.#remaining = length - 4;
          if (this.#remaining === 0) this.#boundary(i);
          continue;
        }
        const end = i + 1 + length;
        if (end <= n) {
          const replacement = this.#inspect(type, chunk.subarray(i, end));
          if (replacement !== undefined) {
            if (i > this.#passStart) out.push(chunk.subarray(this.#passStart, i));
            if (replacement.length > 0) out.push(replacement);
            this.#passStart = end;
          }
          i = end;
          this.#boundary(i);
          continue;
        }
        if (i > this.#passStart) out.push(chunk.subarray(this.#passStart, i));
        this.#capture = [chunk.subarray(i)];
        this.#captureType = type;
        this.#captureLeft = end - n;
        i = n;
        this.#passStart = n;
        continue;
      }
      // A header split across chunks: hold its bytes back until we know what the message is.
      if (this.#headerLength === 0 && i > this.#passStart) out.push(chunk.subarray(this.#passStart, i));
      const take = Math.min(5 - this.#headerLength, n - i);
      chunk.copy(this.#header, this.#headerLength, i, i + take);
      this.#headerLength += take;
      i += take;
      this.#passStart = i;
      if (this.#headerLength < 5) continue;
      this.#headerLength = 0;
      const type = this.#header[0]!;
      const length = this.#header.readInt32BE(1);
      if (length < 4) throw new PgProtocolError(`invalid backend message length ${length}`);
      const header = Buffer.from(this.#header);
      if (!this.#interesting(type)) {
        out.push(header);
        this.#remaining = length - 4;
        if (this.#remaining === 0) this.#boundary(i);
        continue;
      }
      this.#capture = [header];
      this.#captureType = type;
      this.#captureLeft = length - 4;
      if (this.#captureLeft === 0) this.#finishCapture(i);
    }
    if (this.#passStart < n) out.push(chunk.subarray(this.#passStart, n));
    this.#chunk = EMPTY;
    this.#out = [];
  }

  #interesting(type: number): boolean {
    return (
      type === BackendType.ReadyForQuery ||
      type === BackendType.BackendKeyData ||
      (type === BackendType.ErrorResponse && (this.#observe || this.#hooks.wantErrors())) ||
      (this.#observe && (type === BackendType.CommandComplete || type === BackendType.NoticeResponse))
    );
  }

  /** Returns a replacement (empty to drop), or undefined to keep the message. */
  #inspect(type: number, message: Buffer): Buffer | undefined {
    if (type === BackendType.ReadyForQuery) {
      if (message.length !== 6)
        throw new PgProtocolError('invalid backend message: ReadyForQuery of wrong length');
      this.#hooks.ready(message[5]!);
      return undefined;
    }
    if (type === BackendType.BackendKeyData) return EMPTY;
    if (type === BackendType.ErrorResponse) {
      const replaced = this.#hooks.wantErrors() ? this.#hooks.error(message) : undefined;
      this.#hooks.observe?.(type, replaced ?? message);
      return replaced;
    }
    this.#hooks.observe?.(type, message);
    return undefined;
  }

  #finishCapture(i: number): void {
    const parts = this.#capture!;
    this.#capture = undefined;
    const message = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const replacement = this.#inspect(this.#captureType, message);
    const emit = replacement ?? message;
    if (emit.length > 0) this.#out.push(emit);
    this.#passStart = i;
    this.#boundary(i);
  }

  /** A target message ended at `i`: gateway messages waiting for a boundary go out now. */
  #boundary(i: number): void {
    if (this.#pending.length === 0) return;
    if (i > this.#passStart) this.#out.push(this.#chunk.subarray(this.#passStart, i));
    for (const m of this.#pending) this.#out.push(m);
    this.#pending = [];
    this.#passStart = i;
  }
}
