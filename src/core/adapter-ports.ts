/**
 * What a protocol adapter is handed besides the Gate: somewhere to log, and the audit log for
 * refusals the adapter makes itself, before the Gate is asked.
 */

export interface Logger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

/** What an adapter needs from the audit log for refusals the Gate never sees. */
export interface AuditSink {
  append(type: string, data: Readonly<Record<string, unknown>>): Promise<unknown>;
}
