/**
 * Child processes for tests: output is captured (bounded), `waitForOutput` waits for a pattern
 * with a deadline, and every process started here is killed when the test process ends, so a
 * failing test never leaves a psql or a postgres behind.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

/** Keep at most this much of each stream; tests look for short patterns near the end. */
const MAX_CAPTURE = 4 * 1024 * 1024;

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** stdout and stderr, interleaved in arrival order. */
  output(): string;
  /**
   * Resolves with the match once `pattern` appears in the chosen stream(s), looking only at text
   * from offset `since` on (e.g. `p.stderr().length` taken before the step); rejects at the
   * deadline or when the process exits without it.
   */
  waitForOutput(
    pattern: RegExp,
    timeoutMs?: number,
    stream?: 'stdout' | 'stderr' | 'both',
    since?: number,
  ): Promise<RegExpMatchArray>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Whether it has exited yet. */
  hasExited(): boolean;
  /** Resolves with the exit, or rejects if it has not exited within `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<Exit>;
  write(text: string): void;
  endInput(): void;
  /** Signal the process and wait (bounded) for it to go; SIGKILL if it does not. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

const live = new Set<ManagedProcess>();

export function startProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ManagedProcess {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  let out = '';
  let err = '';
  let both = '';
  let exit: Exit | undefined;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of listeners) l();
  };
  const cap = (s: string) => (s.length > MAX_CAPTURE ? s.slice(s.length - MAX_CAPTURE) : s);
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    out = cap(out + d);
    both = cap(both + d);
    notify();
  });
  child.stderr?.on('data', (d: string) => {
    err = cap(err + d);
    both = cap(both + d);
    notify();
  });
  // A closed stdin (the process exited) must not crash the test runner.
  child.stdin?.on('error', () => {});
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (e) => {
      err += `\n[spawn error] ${e.message}`;
      exit = { code: -1, signal: null };
      notify();
      resolve(exit);
    });
    child.once('close', (code, signal) => {
      exit = { code, signal };
      notify();
      resolve(exit);
    });
  });

  const proc: ManagedProcess = {
    child,
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    output: () => both,
    exited,
    hasExited: () => exit !== undefined,
    waitForOutput(pattern, timeoutMs = 15_000, stream = 'both', since = 0) {
      const text = () => (stream === 'stdout' ? out : stream === 'stderr' ? err : both).slice(since);
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text().match(pattern);
          if (m) {
            done();
            resolve(m);
          } else if (exit) {
            done();
            reject(
              new Error(
                `${command} exited (${exit.code ?? exit.signal}) before printing ${pattern}; output:\n${tail(both)}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${pattern} from ${command}; output:\n${tail(both)}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    waitForExit(timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${command} did not exit within ${timeoutMs} ms; output:\n${tail(both)}`)),
          timeoutMs,
        );
        void exited.then((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
    },
    write(text) {
      child.stdin?.write(text);
    },
    endInput() {
      child.stdin?.end();
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (exit) return exit;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
  };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

/** Stop every process still running (tests call this from `after`). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop('SIGKILL', 5_000)));
}

function tail(s: string, n = 4000): string {
  return s.length > n ? `…${s.slice(s.length - n)}` : s;
}

// Last resort: a test that throws past its cleanup still must not leave children running.
process.once('exit', () => {
  for (const p of live) p.child.kill('SIGKILL');
});
