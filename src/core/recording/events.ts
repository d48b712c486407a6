/**
 * Event-stream recordings (database statements, HTTP exchanges, Kubernetes calls, MCP tool
 * calls): one JSON object per line, `{"t": seconds since start, "type": ..., ...fields}`. The
 * first line is a header `{"version":1,"format":"events-jsonl","timestamp":epochSeconds,...}`.
 */
import type { RecordingMeta, RecordingWriter } from './types.ts';

export class EventStreamWriter {
  private readonly writer: RecordingWriter;
  private readonly start: number;
  private readonly now: () => number;

  constructor(
    writer: RecordingWriter,
    header: Readonly<Record<string, unknown>> = {},
    now: () => number = Date.now,
  ) {
    this.writer = writer;
    this.now = now;
    this.start = now();
    writer.write(
      `${JSON.stringify({ ...header, version: 1, format: 'events-jsonl', timestamp: Math.floor(this.start / 1000) })}\n`,
    );
  }

  get recording(): RecordingWriter {
    return this.writer;
  }

  /** One event. `fields` must be JSON-serialisable; `t` and `type` are set here. */
  event(type: string, fields: Readonly<Record<string, unknown>> = {}): boolean {
    const t = Number((Math.max(0, this.now() - this.start) / 1000).toFixed(6));
    // Every statement of a recorded session passes here twice: the line is the fields' own JSON
    // with t and type appended, the same text `{...fields, t, type}` gives, without copying the
    // object (unless the fields carry t or type themselves, which the spread would overwrite).
    if ('t' in fields || 'type' in fields)
      return this.writer.write(`${JSON.stringify({ ...fields, t, type })}\n`);
    const body = JSON.stringify(fields);
    const tail = `"t":${t},"type":${JSON.stringify(type)}}\n`;
    return this.writer.write(body.length > 2 ? `${body.slice(0, -1)},${tail}` : `{${tail}`);
  }

  close(): Promise<RecordingMeta> {
    return this.writer.close();
  }
}
