/**
 * A bare PostgreSQL protocol client for tests that need exact control of the messages sent
 * (pipelines, Execute without Describe, pauses in reading): messages are built by pg-protocol's
 * serializer and the answers framed by the gateway's own reader.
 */
import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { type Frame, MessageReader } from '../../src/protocols/postgres/codec.ts';
import { SCRAM_SHA_256, ScramClient } from '../../src/protocols/postgres/scram.ts';
import type { PsqlTarget } from './psql.ts';

export class WireClient {
  readonly socket: Socket;
  readonly #reader = new MessageReader({ side: 'backend', maxMessage: 1 << 30 });
  #frames: Frame[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c) => {
      this.#reader.push(c);
      for (let f = this.#reader.next(); f; f = this.#reader.next()) this.#frames.push(f);
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  static async connect(t: PsqlTarget): Promise<WireClient> {
    const socket = connect({ host: t.host, port: t.port });
    await new Promise<void>((res, rej) => {
      socket.once('connect', res);
      socket.once('error', rej);
    });
    const c = new WireClient(socket);
    socket.write(serialize.startup({ user: t.user ?? 'agent', database: t.database }));
    // Cleartext (the gateway asks for the token) or SCRAM-SHA-256 (PostgreSQL itself).
    let scram: ScramClient | undefined;
    for (;;) {
      const auth = (await c.until('R')).at(-1)!;
      const code = auth.raw.readInt32BE(5);
      if (code === 0) break;
      if (code === 3) socket.write(serialize.password(t.token));
      else if (code === 10) {
        scram = new ScramClient(t.token);
        socket.write(serialize.sendSASLInitialResponseMessage(SCRAM_SHA_256, scram.clientFirst()));
      } else if (code === 11)
        socket.write(serialize.sendSCRAMClientFinalMessage(scram!.clientFinal(auth.raw.toString('utf8', 9))));
      else if (code === 12) scram!.verifyServerFinal(auth.raw.toString('utf8', 9));
      else throw new Error(`authentication method ${code} is not supported here`);
    }
    await c.until('Z');
    return c;
  }

  write(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** Frames until (and including) the first of type `type`; rejects on close or timeout. */
  async until(type: string, timeoutMs = 20_000): Promise<Frame[]> {
    const code = type.charCodeAt(0);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#frames.findIndex((f) => f.type === code);
      if (i >= 0) return this.#frames.splice(0, i + 1);
      if (this.#closed) throw new Error(`connection closed before "${type}"`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for "${type}"`);
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 100);
      });
    }
  }

  end(): void {
    this.socket.end(serialize.end());
  }
}

/** DataRow values as text (null for NULL). */
export function dataRowValues(f: Frame): (string | null)[] {
  const n = f.raw.readInt16BE(5);
  const out: (string | null)[] = [];
  let at = 7;
  for (let i = 0; i < n; i++) {
    const len = f.raw.readInt32BE(at);
    at += 4;
    if (len < 0) out.push(null);
    else {
      out.push(f.raw.toString('utf8', at, at + len));
      at += len;
    }
  }
  return out;
}
