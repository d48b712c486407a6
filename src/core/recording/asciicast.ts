/**
 * asciicast v2 for terminal sessions: a header line, then one `[time, code, data]` line per
 * event, time in seconds since the start. https://docs.asciinema.org/manual/asciicast/v2/
 * Codes used: "o" output, "i" input, "r" resize ("COLSxROWS"), "m" marker.
 */
import { TextDecoder } from 'node:util';
import type { RecordingMeta, RecordingWriter } from './types.ts';

export interface AsciicastHeader {
  readonly width: number;
  readonly height: number;
  readonly title?: string | undefined;
  readonly command?: string | undefined;
  /** Only TERM and SHELL are customary; never put secrets here. */
  readonly env?: Readonly<Record<string, string>> | undefined;
}

export type AsciicastCode = 'o' | 'i' | 'r' | 'm';

export class AsciicastWriter {
  private readonly writer: RecordingWriter;
  private readonly start: number;
  private readonly now: () => number;
  // One decoder per direction: a UTF-8 sequence split across two chunks must not become U+FFFD.
  private readonly out = new TextDecoder('utf-8');
  private readonly in = new TextDecoder('utf-8');

  constructor(writer: RecordingWriter, header: AsciicastHeader, now: () => number = Date.now) {
    this.writer = writer;
    this.now = now;
    this.start = now();
    const head: Record<string, unknown> = {
      version: 2,
      width: header.width,
      height: header.height,
      timestamp: Math.floor(this.start / 1000),
    };
    if (header.title !== undefined) head.title = header.title;
    if (header.command !== undefined) head.command = header.command;
    if (header.env !== undefined) head.env = header.env;
    writer.write(`${JSON.stringify(head)}\n`);
  }

  get recording(): RecordingWriter {
    return this.writer;
  }

  output(data: string | Uint8Array): boolean {
    return this.event('o', typeof data === 'string' ? data : this.out.decode(data, { stream: true }));
  }

  input(data: string | Uint8Array): boolean {
    return this.event('i', typeof data === 'string' ? data : this.in.decode(data, { stream: true }));
  }

  resize(cols: number, rows: number): boolean {
    return this.event('r', `${cols}x${rows}`);
  }

  marker(label: string): boolean {
    return this.event('m', label);
  }

  close(): Promise<RecordingMeta> {
    const restOut = this.out.decode();
    if (restOut) this.event('o', restOut);
    const restIn = this.in.decode();
    if (restIn) this.event('i', restIn);
    return this.writer.close();
  }

  /** Characters of event lines written so far (the header not counted): the recording's size as stored. */
  get eventChars(): number {
    return this.chars;
  }

  private chars = 0;

  private event(code: AsciicastCode, data: string): boolean {
    if (data.length === 0 && (code === 'o' || code === 'i')) return true;
    const t = Math.max(0, this.now() - this.start) / 1000;
    const line = `${JSON.stringify([Number(t.toFixed(6)), code, data])}\n`;
    this.chars += line.length;
    return this.writer.write(line);
  }
}

export interface AsciicastEvent {
  readonly time: number;
  readonly code: string;
  readonly data: string;
}

export interface ParsedAsciicast {
  readonly header: Record<string, unknown> & { version: 2; width: number; height: number };
  readonly events: AsciicastEvent[];
}

/** Parses asciicast v2 text; throws a TypeError naming the line that is not well-formed. */
export function parseAsciicast(text: string): ParsedAsciicast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length === 0) throw new TypeError('empty asciicast: no header line');
  let header: unknown;
  try {
    header = JSON.parse(lines[0]!);
  } catch {
    throw new TypeError('asciicast line 1 (header) is not JSON');
  }
  const h = header as { version?: unknown; width?: unknown; height?: unknown };
  if (h?.version !== 2 || typeof h.width !== 'number' || typeof h.height !== 'number')
    throw new TypeError('asciicast line 1 is not a version 2 header with width and height');
  const events: AsciicastEvent[] = [];
  for (let i = 1; i < lines.length; i++) {
    let e: unknown;
    try {
      e = JSON.parse(lines[i]!);
    } catch {
      throw new TypeError(`asciicast line ${i + 1} is not JSON`);
    }
    if (!Array.isArray(e) || typeof e[0] !== 'number' || typeof e[1] !== 'string' || typeof e[2] !== 'string')
      throw new TypeError(`asciicast line ${i + 1} is not a [time, code, data] event`);
    events.push({ time: e[0], code: e[1], data: e[2] });
  }
  return { header: header as ParsedAsciicast['header'], events };
}
