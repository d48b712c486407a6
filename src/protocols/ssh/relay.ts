/**
 * Joins a caller's session channel to the channel Airlock opened on the host: data both ways
 * with backpressure (pipe), stderr, window changes, signals, and the exit status or signal,
 * which is sent before the caller's channel is closed, as OpenSSH does.
 * https://www.rfc-editor.org/rfc/rfc4254#section-6.10
 */
import type { ClientChannel, ServerChannel } from 'ssh2';
import type { TerminalRecording } from '../../core/recording/terminal.ts';
import { type Backlog, RecordTap } from './record-tap.ts';

export type ExitInfo =
  | { readonly code: number }
  | { readonly signal: string; readonly coreDumped: boolean; readonly message: string };

export interface RelayOptions {
  /** Terminal recording, when the session is recorded. */
  readonly recording?: TerminalRecording | undefined;
  /** The recording's writer falling behind: the host's output waits for it. */
  readonly backlog?: Backlog | undefined;
  /** Record caller keystrokes too (shells); exec stdin is data, not typing, and is not kept. */
  readonly recordInput?: boolean;
}

export interface Relay {
  /** Resolves with how the remote command ended, once both channels are closed. */
  readonly done: Promise<ExitInfo | undefined>;
  resize(cols: number, rows: number, height: number, width: number): void;
  signal(name: string): void;
}

export function relay(caller: ServerChannel, host: ClientChannel, opts: RelayOptions = {}): Relay {
  let exit: ExitInfo | undefined;
  host.on('exit', (codeOrNull: number | null, signal?: string, coreDumped?: boolean, message?: string) => {
    if (typeof codeOrNull === 'number') exit = { code: codeOrNull };
    else if (signal) exit = { signal, coreDumped: Boolean(coreDumped), message: message ?? '' };
  });
  // Caller stdin → host; the caller's EOF becomes the host's EOF (e.g. `cat` ends).
  caller.pipe(host);
  host.pipe(caller, { end: false });
  host.stderr.pipe(caller.stderr, { end: false });
  // Listeners added after the pipes: a chunk reaches the caller before it is recorded.
  const rec = opts.recording
    ? new RecordTap(opts.recording, opts.backlog, {
        pause: () => {
          host.pause();
          host.stderr.pause();
        },
        // A stream the pipe paused for the caller is left to the pipe, which resumes it on drain.
        resume: () => {
          if (!caller.writableNeedDrain) host.resume();
          if (!caller.stderr.writableNeedDrain) host.stderr.resume();
        },
      })
    : undefined;
  if (rec) {
    host.on('data', (d: Buffer) => rec.output(d));
    host.stderr.on('data', (d: Buffer) => rec.output(d));
    if (opts.recordInput) caller.on('data', (d: Buffer) => rec.input(d));
  }

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
    // The recording is sealed once this resolves: nothing may still be held.
    rec?.flush();
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
      rec?.resize(cols, rows);
    },
    signal(name) {
      host.signal(name);
    },
  };
}
