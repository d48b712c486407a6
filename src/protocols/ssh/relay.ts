/**
 * Joins a caller's session channel to the channel Airlock opened on the host: data both ways
 * with backpressure (pipe), stderr, window changes, signals, and the exit status or signal,
 * which is sent before the caller's channel is closed, as OpenSSH does.
 * https://www.rfc-editor.org/rfc/rfc4254#section-6.10
 */
import type { ClientChannel, ServerChannel } from 'ssh2';
import type { AsciicastWriter } from '../../core/recording/asciicast.ts';

export type ExitInfo =
  | { readonly code: number }
  | { readonly signal: string; readonly coreDumped: boolean; readonly message: string };

export interface RelayOptions {
  /** Terminal recording, when the session is recorded. */
  readonly cast?: AsciicastWriter | undefined;
  /** Record caller keystrokes too (shells); exec stdin is data, not typing, and is not kept. */
  readonly recordInput?: boolean;
  /**
   * Output bytes recorded per channel; past this the rest is counted, not kept, and a marker
   * says how much was left out (a 200 MB `cat` is a transfer, not something to replay).
   */
  readonly maxRecordedBytes?: number;
}

export const MAX_RECORDED_BYTES = 16 * 1024 * 1024;

export interface Relay {
  /** Resolves with how the remote command ended, once both channels are closed. */
  readonly done: Promise<ExitInfo | undefined>;
  resize(cols: number, rows: number, height: number, width: number): void;
  signal(name: string): void;
}

export function relay(caller: ServerChannel, host: ClientChannel, opts: RelayOptions = {}): Relay {
  const { cast } = opts;
  let exit: ExitInfo | undefined;
  host.on('exit', (codeOrNull: number | null, signal?: string, coreDumped?: boolean, message?: string) => {
    if (typeof codeOrNull === 'number') exit = { code: codeOrNull };
    else if (signal) exit = { signal, coreDumped: Boolean(coreDumped), message: message ?? '' };
  });
  const limit = opts.maxRecordedBytes ?? MAX_RECORDED_BYTES;
  let recorded = 0;
  let skipped = 0;
  if (cast) {
    const output = (d: Buffer) => {
      if (recorded + d.length > limit) skipped += d.length;
      else {
        recorded += d.length;
        cast.output(d);
      }
    };
    host.on('data', output);
    host.stderr.on('data', output);
    if (opts.recordInput) caller.on('data', (d: Buffer) => cast.input(d));
  }
  // Caller stdin → host; the caller's EOF becomes the host's EOF (e.g. `cat` ends).
  caller.pipe(host);
  host.pipe(caller, { end: false });
  host.stderr.pipe(caller.stderr, { end: false });

  const ended = (s: NodeJS.ReadableStream) => new Promise<void>((r) => s.once('end', () => r()));
  const hostClosed = new Promise<void>((r) => host.once('close', () => r()));
  let callerGone = false;
  const callerClosed = new Promise<void>((r) =>
    caller.once('close', () => {
      callerGone = true;
      r();
    }),
  );
  // The caller went away (Ctrl-C on a client without a pty, network loss): end the command.
  void callerClosed.then(() => {
    host.unpipe?.(caller);
    host.close();
  });

  const done = (async () => {
    // All output read (both streams), and the host said it is done.
    await Promise.race([Promise.all([ended(host), ended(host.stderr), hostClosed]), callerClosed]);
    if (skipped > 0) cast?.marker(`${skipped} more bytes of output were passed on but not recorded`);
    if (!callerGone) {
      if (exit && 'code' in exit) caller.exit(exit.code);
      else if (exit) caller.exit(exit.signal, exit.coreDumped, exit.message);
      caller.end();
    }
    return exit;
  })();

  return {
    done,
    resize(cols, rows, height, width) {
      host.setWindow(rows, cols, height, width);
      cast?.resize(cols, rows);
    },
    signal(name) {
      host.signal(name);
    },
  };
}
