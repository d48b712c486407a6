/**
 * The own tool `exec`: one command on an SSH connection, sent through Airlock's own SSH listener
 * as the caller (user name = connection, the caller's Airlock token as the password), so it meets
 * exactly the gate, holds, approvals, recording and audit an `ssh` user would. Airlock's
 * "waiting for approval" lines on stderr become MCP progress.
 * https://www.rfc-editor.org/rfc/rfc4254#section-6.5
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import ssh2 from 'ssh2';
import type { ToolExtra } from './own-progress.ts';
import { progressReporter } from './own-progress.ts';

/** Where Airlock's SSH listener runs and the host key it presents (`type base64`). */
export interface OwnSshListener {
  readonly host: string;
  readonly port: number;
  readonly hostKey: string;
}

/** Output kept per stream; the rest is counted, not sent to the model. */
const MAX_OUTPUT = 256 * 1024;
/** The prefix Airlock's SSH listener puts on its own stderr lines. */
const AIRLOCK_LINE = /^airlock: (.*)$/;
const AIRLOCK_PREFIX = Buffer.from('airlock: ');

export async function runExec(
  listener: OwnSshListener,
  connection: string,
  credential: string,
  command: string,
  extra: ToolExtra,
): Promise<CallToolResult> {
  const progress = progressReporter(extra);
  const client = new ssh2.Client();
  const keyBlob = listener.hostKey.split(/\s+/)[1];
  const stdout = new Capped();
  const stderr = new Capped();
  const notes: string[] = [];
  let partial = Buffer.alloc(0);
  // Airlock's own lines come before the command runs; afterwards stderr is the command's, kept
  // byte for byte.
  let started = false;
  const onStderr = (d: Buffer) => {
    if (started) return stderr.add(d);
    partial = Buffer.concat([partial, d]);
    for (;;) {
      if (started) {
        if (partial.length > 0) stderr.add(partial);
        partial = Buffer.alloc(0);
        return;
      }
      const nl = partial.indexOf(0x0a);
      if (nl < 0) {
        // Not (the start of) an Airlock line: the command is writing.
        const head = partial.subarray(0, AIRLOCK_PREFIX.length);
        const ours = AIRLOCK_PREFIX.subarray(0, head.length).equals(head) && partial.length < 4096;
        if (partial.length > 0 && !ours) {
          started = true;
          continue;
        }
        return;
      }
      const m = AIRLOCK_LINE.exec(partial.subarray(0, nl).toString('utf8').replace(/\r$/, ''));
      if (!m) {
        started = true;
        continue;
      }
      partial = partial.subarray(nl + 1);
      notes.push(m[1]!);
      progress(m[1]!);
      if (m[1]!.startsWith('approved:')) started = true;
    }
  };

  const onAbort = () => client.end();
  extra.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const exit = await new Promise<{ code: number | null; signal?: string | undefined }>(
      (resolve, reject) => {
        client.on('error', reject);
        client.on('close', () => reject(new Error('the SSH connection to Airlock closed')));
        client.on('ready', () => {
          client.exec(command, (err, stream) => {
            if (err) return reject(err);
            let status: { code: number | null; signal?: string | undefined } = { code: null };
            stream.on('exit', (code: number | null, signal?: string) => {
              status = { code, signal };
            });
            stream.on('data', (d: Buffer) => {
              started = true;
              stdout.add(d);
            });
            stream.stderr.on('data', onStderr);
            stream.on('close', () => resolve(status));
          });
        });
        client.connect({
          host: listener.host,
          port: listener.port,
          username: connection,
          password: credential,
          tryKeyboard: false,
          readyTimeout: 30_000,
          // Airlock's own listener: its key is known, so nothing else can answer in its place.
          hostVerifier: (key: Buffer) => key.toString('base64') === keyBlob,
        });
      },
    );
    if (partial.length > 0) {
      const m = AIRLOCK_LINE.exec(partial.toString('utf8').trim());
      if (m) notes.push(m[1]!);
      else stderr.add(partial);
    }
    const failed = exit.code !== 0;
    const out = {
      exitStatus: exit.code,
      ...(exit.signal ? { signal: exit.signal } : {}),
      stdout: stdout.text(),
      stderr: stderr.text(),
      ...(notes.length > 0 ? { airlock: notes } : {}),
    };
    // A refused command never ran: the reason is the whole answer.
    const refused = failed && stdout.size === 0 && stderr.size === 0 && notes.length > 0;
    return {
      content: [{ type: 'text', text: refused ? notes.join('\n') : JSON.stringify(out, null, 2) }],
      ...(failed ? { isError: true } : {}),
    };
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    return {
      content: [
        {
          type: 'text',
          text: /authentication/i.test(message)
            ? `Airlock's SSH listener did not accept your token for connection "${connection}"`
            : `the command could not be run through Airlock's SSH listener: ${message}`,
        },
      ],
      isError: true,
    };
  } finally {
    extra.signal.removeEventListener('abort', onAbort);
    client.end();
  }
}

class Capped {
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  size = 0;

  add(d: Buffer): void {
    this.size += d.length;
    if (this.#kept >= MAX_OUTPUT) return;
    const part = d.subarray(0, MAX_OUTPUT - this.#kept);
    this.#chunks.push(part);
    this.#kept += part.length;
  }

  text(): string {
    const t = Buffer.concat(this.#chunks).toString('utf8');
    return this.size > this.#kept ? `${t}\n[${this.size - this.#kept} more bytes not shown]` : t;
  }
}
