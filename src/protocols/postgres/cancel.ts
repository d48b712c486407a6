/**
 * Query cancellation through the gateway.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 *
 * Callers get the gateway's own BackendKeyData (random pid and secret), never the target's: the
 * target's key would let anyone who learns it cancel queries without passing the gateway. A
 * CancelRequest with a known key is sent on to the target with the target's key, on a new
 * connection, in plain text as PostgreSQL clients do it.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { connect } from 'node:net';
import { cancelRequest } from './messages.ts';

export interface UpstreamKey {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  readonly secret: Buffer;
}

interface Entry {
  readonly secret: Buffer;
  readonly upstream: UpstreamKey;
}

export class CancelKeys {
  readonly #byPid = new Map<number, Entry>();

  /** Allocates a gateway key for one session. */
  register(upstream: UpstreamKey): { pid: number; secret: Buffer } {
    let pid: number;
    do pid = randomInt(1, 0x7fffffff);
    while (this.#byPid.has(pid));
    const secret = randomBytes(4);
    this.#byPid.set(pid, { secret, upstream });
    return { pid, secret };
  }

  unregister(pid: number): void {
    this.#byPid.delete(pid);
  }

  lookup(pid: number, secret: Buffer): UpstreamKey | undefined {
    const e = this.#byPid.get(pid);
    if (!e || e.secret.length !== secret.length || !timingSafeEqual(e.secret, secret)) return undefined;
    return e.upstream;
  }

  get size(): number {
    return this.#byPid.size;
  }
}

/** Sends CancelRequest to the target. Best effort, as in PostgreSQL: no answer either way. */
export function sendCancel(key: UpstreamKey, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: key.host, port: key.port });
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => s.end(cancelRequest(key.pid, key.secret)));
  });
}
