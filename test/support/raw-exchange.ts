/**
 * Raw bytes at a listener, for the hostile-input tests: the chunks go out a few ms apart (so the
 * server reads them across many packets), and whatever comes back is read until the server
 * closes the connection or the wait runs out.
 */
import { connect } from 'node:net';

export interface Exchange {
  /** The server closed (or reset) the connection before the wait ran out. */
  readonly closed: boolean;
  /** Time from connecting until the end. */
  readonly ms: number;
  readonly reply: Buffer;
}

export function exchange(port: number, chunks: readonly Buffer[], waitMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const t0 = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ closed, ms: Date.now() - t0, reply: Buffer.concat(got) });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (d) => got.push(d));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', async () => {
      for (const c of chunks) {
        if (socket.destroyed) return;
        socket.write(c);
        await new Promise((ok) => setTimeout(ok, Math.min(5, c.length % 7)));
      }
    });
  });
}
