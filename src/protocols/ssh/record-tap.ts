/**
 * Puts a channel's traffic into its terminal recording without sitting between the host and the
 * caller: output is forwarded first, and what arrived during one turn of the event loop goes to
 * the recording afterwards as one event (one decode, one masking scan, one JSON line) instead of
 * one per SSH packet. Keystrokes and window changes flush the output before them, so the events
 * keep the order the caller saw them in. Held output is bounded by the channel window and, past
 * MAX_HELD, is recorded at once.
 *
 * The recording must stay complete: when its writer is behind (above its high-water mark, e.g.
 * binary output that JSON escaping makes six times larger), the host's output is paused until the
 * writer has caught up, rather than letting the writer drop events.
 */
import type { TerminalRecording } from '../../core/recording/terminal.ts';
import type { RecordingWriter } from '../../core/recording/types.ts';

/** Whether a recording's writer is behind, and when it has caught up. */
export interface Backlog {
  full(): boolean;
  drained(): Promise<void>;
}

/** Pauses and resumes what feeds the recording (the host's output streams). */
export interface Flow {
  pause(): void;
  resume(): void;
}

/** The writer as it is, plus whether its last write found it above its high-water mark. */
export function watchBacklog(writer: RecordingWriter): { writer: RecordingWriter; backlog: Backlog } {
  let full = false;
  const watched: RecordingWriter = {
    id: writer.id,
    sessionId: writer.sessionId,
    format: writer.format,
    write(chunk) {
      const ok = writer.write(chunk);
      full = !ok;
      return ok;
    },
    drained: () => writer.drained(),
    close: () => writer.close(),
  };
  return {
    writer: watched,
    backlog: {
      full: () => full,
      drained: () =>
        writer.drained().then(() => {
          full = false;
        }),
    },
  };
}

/**
 * Output held for the next recording event beyond this is recorded straight away. Small enough
 * that one event stays below the recorder's 1 MiB high-water mark even when JSON escaping makes
 * it six times larger (smaller events also measured about a tenth less CPU than 1 MiB ones).
 */
const MAX_HELD = 128 * 1024;

export class RecordTap {
  readonly #rec: TerminalRecording;
  readonly #backlog: Backlog | undefined;
  readonly #flow: Flow | undefined;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #scheduled: NodeJS.Immediate | undefined;
  #paused = false;

  constructor(rec: TerminalRecording, backlog?: Backlog, flow?: Flow) {
    this.#rec = rec;
    this.#backlog = backlog;
    this.#flow = flow;
  }

  output(chunk: Buffer): void {
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes >= MAX_HELD) this.flush();
    else this.#scheduled ??= setImmediate(() => this.flush());
  }

  input(chunk: Buffer): void {
    this.flush();
    this.#rec.input(chunk);
  }

  resize(cols: number, rows: number): void {
    this.flush();
    this.#rec.resize(cols, rows);
  }

  /** Records held output now (before input, resize, or sealing). */
  flush(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    if (this.#heldBytes === 0) return;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    this.#rec.output(held.length === 1 ? held[0]! : Buffer.concat(held));
    if (!this.#flow || !this.#backlog?.full()) return;
    // Paused again even when already waiting: a pipe draining towards the caller resumes its source.
    this.#flow.pause();
    if (this.#paused) return;
    this.#paused = true;
    void this.#backlog.drained().then(() => {
      this.#paused = false;
      this.#flow?.resume();
    });
  }
}
