/**
 * What a terminal's recording receives (an SSH channel, a kubectl exec): output (and, for shells, keystrokes) as asciicast v2
 * events, with the policy's masking detectors applied to recorded output — the caller's live
 * stream is never changed. A value the detectors look for could be split across two chunks, so
 * output is masked a line at a time (a partial line waits for its newline, for the next
 * keystroke, or for 8 KiB). Past a bound on the recording's stored size, output is counted
 * instead of kept.
 */
import { TextDecoder } from 'node:util';
import type { AsciicastWriter } from './asciicast.ts';
import type { RecordingMeta } from './types.ts';

export const MAX_RECORDED_BYTES = 16 * 1024 * 1024;
/** A partial line longer than this is masked and recorded without waiting for its end. */
const MAX_PENDING_LINE = 8 * 1024;

export interface OutputMasker {
  scan(text: string): string;
}

export interface TerminalRecordingOptions {
  readonly masker?: OutputMasker | undefined;
  readonly maxRecordedBytes?: number | undefined;
}

export class TerminalRecording {
  readonly #cast: AsciicastWriter;
  readonly #masker: OutputMasker | undefined;
  readonly #limit: number;
  readonly #decoder = new TextDecoder('utf-8');
  #pending = '';
  #skipped = 0;

  constructor(cast: AsciicastWriter, opts: TerminalRecordingOptions = {}) {
    this.#cast = cast;
    this.#masker = opts.masker;
    this.#limit = opts.maxRecordedBytes ?? MAX_RECORDED_BYTES;
  }

  output(chunk: Buffer): void {
    // The bound is on what is stored, not on what passed: a control byte is stored as a
    // six-character JSON escape, so counting output bytes would let a stream of them (cat of a
    // binary file) write six times the bound to disk, and spend the CPU to encode it.
    if (this.#cast.eventChars + this.#pending.length + chunk.length > this.#limit) {
      this.#skipped += chunk.length;
      return;
    }
    if (!this.#masker) {
      this.#cast.output(chunk);
      return;
    }
    this.#pending += this.#decoder.decode(chunk, { stream: true });
    const nl = this.#pending.lastIndexOf('\n');
    if (nl >= 0) {
      this.#emit(this.#pending.slice(0, nl + 1));
      this.#pending = this.#pending.slice(nl + 1);
    }
    if (this.#pending.length > MAX_PENDING_LINE) this.#flush();
  }

  input(chunk: Buffer): void {
    // The caller typed: whatever is on screen now is what they saw.
    this.#flush();
    this.#cast.input(chunk);
  }

  resize(cols: number, rows: number): void {
    this.#flush();
    this.#cast.resize(cols, rows);
  }

  close(): Promise<RecordingMeta> {
    if (this.#masker) this.#pending += this.#decoder.decode();
    this.#flush();
    if (this.#skipped > 0)
      this.#cast.marker(`${this.#skipped} more bytes of output were passed on but not recorded`);
    return this.#cast.close();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    this.#emit(this.#pending);
    this.#pending = '';
  }

  #emit(text: string): void {
    this.#cast.output(this.#masker ? this.#masker.scan(text) : text);
  }
}
