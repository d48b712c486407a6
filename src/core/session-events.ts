/**
 * The event recording of a database or MCP session: opened with the header such a recording
 * starts with, ended with the reason the session closed. (Event streams themselves are
 * recording/events.ts.)
 */
import type { Logger } from './adapter-ports.ts';
import { EventStreamWriter } from './recording/events.ts';
import type { Recorder } from './recording/types.ts';

export interface SessionEventsHeader {
  readonly protocol: string;
  readonly session: string;
  readonly connection: string;
  readonly principal: string;
  readonly source?: string | undefined;
  /** Protocol details worth replaying with (client user name, TLS, ...). */
  readonly [detail: string]: unknown;
}

export function openSessionEvents(recorder: Recorder, header: SessionEventsHeader): EventStreamWriter {
  return new EventStreamWriter(
    recorder.open(header.session, header.connection, 'events-jsonl', {
      protocol: header.protocol,
      principal: header.principal,
    }),
    header,
  );
}

/**
 * Writes the `end` event and closes the recording. The session ends whether or not the recording
 * could be stored; a failure is logged.
 */
export function endSessionEvents(
  events: EventStreamWriter,
  reason: string,
  log: Logger | undefined,
  protocol: string,
  session: string,
): void {
  events.event('end', { reason });
  events
    .close()
    .catch((err: Error) => log?.error({ session, err: err.message }, `${protocol} session recording failed`));
}
