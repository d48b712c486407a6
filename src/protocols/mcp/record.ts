/**
 * The recording of one MCP session (events-jsonl): each tool call with its arguments, Airlock's
 * decision, and the result as the caller received it (masked); other requests by method only.
 * Secret-looking argument keys are dropped, as in the audit log.
 */
import type { Logger } from 'pino';
import { scrub } from '../../core/gate.ts';
import type { EventStreamWriter } from '../../core/recording/events.ts';
import type { Recorder } from '../../core/recording/types.ts';
import { openSessionEvents } from '../../core/session-events.ts';

/** A result larger than this is recorded by size only, so one call cannot flood the recording. */
const MAX_RESULT_CHARS = 64 * 1024;

export class SessionRecording {
  readonly #writer: EventStreamWriter;
  readonly #session: string;

  constructor(
    recorder: Recorder,
    header: { session: string; connection: string; principal: string; source?: string | undefined },
  ) {
    this.#writer = openSessionEvents(recorder, { protocol: 'mcp', ...header });
    this.#session = header.session;
  }

  request(id: unknown, method: string): void {
    this.#writer.event('request', { id, method });
  }

  call(id: unknown, tool: string, args: unknown): void {
    this.#writer.event('call', { id, tool, arguments: scrub(args) });
  }

  decision(id: unknown, verdict: 'forwarded' | 'refused', text?: string): void {
    this.#writer.event('decision', { id, verdict, ...(text === undefined ? {} : { text }) });
  }

  result(id: unknown, result: unknown): void {
    const json = JSON.stringify(result) ?? 'null';
    if (json.length > MAX_RESULT_CHARS)
      this.#writer.event('result', { id, omitted: `${json.length} characters` });
    else this.#writer.event('result', { id, result });
  }

  error(id: unknown, error: unknown): void {
    this.#writer.event('error', { id, error });
  }

  /** Ends the recording; the session ends whether or not it could be stored (a failure is logged). */
  async close(reason: string, log: Logger | undefined): Promise<void> {
    this.#writer.event('end', { reason });
    await this.#writer
      .close()
      .catch((err: Error) =>
        log?.error({ session: this.#session, err: err.message }, 'mcp session recording failed'),
      );
  }
}
