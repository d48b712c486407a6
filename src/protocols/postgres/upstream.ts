/**
 * Logging in to the target with the credential Airlock holds.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 * https://www.postgresql.org/docs/current/sasl-authentication.html
 *
 * Supports trust, cleartext password, md5 and SCRAM-SHA-256. The caller never sees any of this
 * exchange: it gets the target's ParameterStatus messages and the gateway's own key data.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { AirlockError } from '../../core/errors.ts';
import type { SqlUpstream } from '../../core/policy/connections/sql-upstream.ts';
import { BackendType, BodyReader, type Frame, MessageReader, PgProtocolError } from './codec.ts';
import {
  parseErrorFields,
  passwordMessage,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  startupMessage,
} from './messages.ts';
import { SCRAM_SHA_256, ScramClient } from './scram.ts';

/** The connection's upstream block; a relative `ca` is resolved against `baseDir`. */
export interface UpstreamTarget extends SqlUpstream {
  /** Connection name, for messages. */
  readonly name: string;
  readonly baseDir?: string;
}

export interface UpstreamSession {
  readonly socket: Socket;
  /** ParameterStatus and NoticeResponse messages of the login, to relay to the caller as they are. */
  readonly relay: Buffer[];
  readonly pid: number;
  readonly secret: Buffer;
  /** Transaction status of the first ReadyForQuery. */
  readonly status: number;
  /** Bytes the target sent after ReadyForQuery (normally none). */
  readonly leftover: Buffer[];
  /** Whether the connection to the target is encrypted. */
  readonly tls: boolean;
}

export const UPSTREAM_LOGIN_TIMEOUT_MS = 15_000;

/** The error the target gave when it refused the login, for the gateway's log only. */
export class UpstreamRefusal extends AirlockError {
  readonly serverMessage: string;
  readonly sqlstate: string;
  constructor(
    code: 'AIRLOCK_E_UPSTREAM_AUTH' | 'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
    message: string,
    server: Map<string, string>,
  ) {
    super(code, message, {
      hint:
        code === 'AIRLOCK_E_UPSTREAM_AUTH'
          ? 'ask an Airlock admin to check the credential configured for this connection'
          : undefined,
    });
    this.serverMessage = server.get('M') ?? '';
    this.sqlstate = server.get('C') ?? '';
  }
}

function unavailable(target: UpstreamTarget, why: string, cause?: unknown): AirlockError {
  return new AirlockError(
    'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
    `Airlock could not reach the target of connection "${target.name}": ${why}`,
    { hint: 'try again later, or ask an Airlock admin to check the target', cause },
  );
}

function authFailed(target: UpstreamTarget, why: string): AirlockError {
  return new AirlockError(
    'AIRLOCK_E_UPSTREAM_AUTH',
    `Airlock could not log in to ${target.name}: the target refused the credential Airlock holds`,
    { hint: `ask an Airlock admin to check the credential configured for this connection (${why})` },
  );
}

/** Reads frames from a socket during login, one at a time. */
class LoginReader {
  readonly #socket: Socket;
  readonly #reader = new MessageReader({ side: 'backend', maxMessage: 1024 * 1024 });
  #waiting: (() => void) | undefined;
  #error: Error | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#reader.push(chunk);
    this.#wake();
  };
  readonly #onEnd = () => {
    this.#error ??= new Error('the target closed the connection during login');
    this.#wake();
  };
  readonly #onError = (err: Error) => {
    this.#error ??= err;
    this.#wake();
  };

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.on('error', this.#onError);
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.();
  }

  async next(): Promise<Frame> {
    for (;;) {
      const f = this.#reader.next();
      if (f) return f;
      if (this.#error) throw this.#error;
      await new Promise<void>((r) => {
        this.#waiting = r;
      });
    }
  }

  /** Stops reading; returns what was buffered after the last frame. */
  detach(): Buffer[] {
    this.#socket.pause();
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('error', this.#onError);
    const rest: Buffer[] = [];
    for (;;) {
      if (this.#reader.buffered === 0) break;
      // Frames already received after ReadyForQuery: hand them back whole.
      const f = this.#reader.next();
      if (!f) throw new PgProtocolError('the target sent a partial message after ReadyForQuery');
      rest.push(f.raw);
    }
    return rest;
  }
}

function openSocket(target: UpstreamTarget, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolvePromise, reject) => {
    const s = netConnect({ host: target.host, port: target.port, noDelay: true });
    const onAbort = () => {
      s.destroy();
      reject(unavailable(target, 'timed out connecting'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      s.removeAllListeners('error');
      resolvePromise(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', onAbort);
      reject(unavailable(target, `${target.host}:${target.port} ${err.code ?? err.message}`, err));
    });
  });
}

/** SSLRequest, then a verify-full TLS handshake on the same socket. */
async function startTls(target: UpstreamTarget, socket: Socket): Promise<Socket> {
  socket.write(sslRequest());
  const answer = await new Promise<Buffer>((res, rej) => {
    socket.once('data', res);
    socket.once('error', rej);
    socket.once('close', () => rej(new Error('closed')));
  }).catch((err) => {
    throw unavailable(target, 'the connection closed while asking for TLS', err);
  });
  socket.removeAllListeners('error');
  socket.removeAllListeners('close');
  socket.pause();
  if (answer.length !== 1) {
    // Bytes after 'S' before the handshake would be unauthenticated injection (CVE-2021-23222).
    throw unavailable(target, 'the target sent unexpected data in answer to SSLRequest');
  }
  if (answer[0] === 0x4e)
    throw unavailable(
      target,
      'the target does not accept TLS, but the connection is configured with tls: verify-full',
    );
  if (answer[0] !== 0x53) throw unavailable(target, 'the target gave an invalid answer to SSLRequest');
  const ca = target.ca ? readFileSync(resolve(target.baseDir ?? '.', target.ca), 'utf8') : undefined;
  return new Promise((res, rej) => {
    const t = tlsConnect({
      socket,
      host: target.host,
      ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
      rejectUnauthorized: true,
      ...(ca ? { ca } : {}),
    });
    t.once('secureConnect', () => {
      t.removeAllListeners('error');
      t.setNoDelay(true);
      res(t);
    });
    t.once('error', (err) => rej(unavailable(target, `TLS handshake failed: ${err.message}`, err)));
  });
}

function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5')
    .update(password + user)
    .digest('hex');
  return `md5${createHash('md5').update(inner).update(salt).digest('hex')}`;
}

/**
 * Connects and logs in. `params` are the caller's startup parameters that may be passed on
 * (already filtered by the caller). Throws AirlockError: AIRLOCK_E_UPSTREAM_UNAVAILABLE or
 * AIRLOCK_E_UPSTREAM_AUTH (an UpstreamRefusal when the target said why).
 */
export async function connectUpstream(
  target: UpstreamTarget,
  params: ReadonlyMap<string, string>,
  timeoutMs = UPSTREAM_LOGIN_TIMEOUT_MS,
): Promise<UpstreamSession> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let socket: Socket | undefined;
  try {
    socket = await openSocket(target, ac.signal);
    const onTimeout = () => socket?.destroy(new Error('timed out during login'));
    ac.signal.addEventListener('abort', onTimeout, { once: true });
    if (target.tls === 'verify-full') socket = await startTls(target, socket);
    const reader = new LoginReader(socket);
    socket.resume();
    const startup: [string, string][] = [
      ['user', target.user],
      ['database', target.database],
    ];
    for (const [k, v] of params) startup.push([k, v]);
    socket.write(startupMessage(startup));

    const relay: Buffer[] = [];
    let scram: ScramClient | undefined;
    let pid = 0;
    let secret = Buffer.alloc(0);
    const password = (): string => {
      if (!target.password)
        throw authFailed(target, 'the target asked for a password and none is configured');
      return target.password.reveal();
    };
    for (;;) {
      const f = await reader.next().catch((err: Error) => {
        throw unavailable(target, err.message, err);
      });
      switch (f.type) {
        case BackendType.Authentication: {
          const r = new BodyReader(f, 'Authentication', 'backend');
          const code = r.int32();
          if (code === 0) break;
          if (code === 3) socket.write(passwordMessage(password()));
          else if (code === 5)
            socket.write(passwordMessage(md5Password(target.user, password(), r.bytes(4))));
          else if (code === 10) {
            const mechanisms: string[] = [];
            for (let m = r.cstring(); m !== ''; m = r.cstring()) mechanisms.push(m);
            if (!mechanisms.includes(SCRAM_SHA_256))
              throw authFailed(target, `the target offers only ${mechanisms.join(', ')}`);
            scram = new ScramClient(password());
            socket.write(saslInitialResponse(SCRAM_SHA_256, Buffer.from(scram.clientFirst(), 'utf8')));
          } else if (code === 11) {
            if (!scram) throw unavailable(target, 'unexpected SASLContinue');
            const serverFirst = r.bytes(r.remaining).toString('utf8');
            socket.write(saslResponse(Buffer.from(scram.clientFinal(serverFirst), 'utf8')));
          } else if (code === 12) {
            if (!scram) throw unavailable(target, 'unexpected SASLFinal');
            try {
              scram.verifyServerFinal(r.bytes(r.remaining).toString('utf8'));
            } catch {
              throw authFailed(target, 'the target could not prove it knows the credential');
            }
          } else
            throw authFailed(target, `the target asks for an unsupported authentication method (${code})`);
          break;
        }
        case BackendType.ErrorResponse: {
          const e = parseErrorFields(f);
          const code = e.get('C') ?? '';
          if (code.startsWith('28'))
            throw new UpstreamRefusal(
              'AIRLOCK_E_UPSTREAM_AUTH',
              `Airlock could not log in to ${target.name}: the target refused the credential Airlock holds`,
              e,
            );
          throw new UpstreamRefusal(
            'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
            `Airlock could not open a session on ${target.name}: the target answered: ${e.get('M') ?? 'an error'} (SQLSTATE ${code})`,
            e,
          );
        }
        case BackendType.ParameterStatus:
        case BackendType.NoticeResponse:
          relay.push(f.raw);
          break;
        case BackendType.BackendKeyData: {
          const r = new BodyReader(f, 'BackendKeyData', 'backend');
          pid = r.int32();
          secret = Buffer.from(r.bytes(r.remaining));
          break;
        }
        case BackendType.NegotiateProtocolVersion:
          // We ask for plain 3.0 without protocol options, so there is nothing to adjust.
          break;
        case BackendType.ReadyForQuery: {
          const status = f.raw[5]!;
          const leftover = reader.detach();
          ac.signal.removeEventListener('abort', onTimeout);
          return { socket, relay, pid, secret, status, leftover, tls: target.tls === 'verify-full' };
        }
        default:
          throw unavailable(target, `unexpected message ${String.fromCharCode(f.type)} during login`);
      }
    }
  } catch (err) {
    socket?.destroy();
    if (err instanceof AirlockError) throw err;
    if (err instanceof PgProtocolError) throw unavailable(target, `protocol error: ${err.message}`, err);
    if (ac.signal.aborted) throw unavailable(target, 'timed out during login', err);
    throw unavailable(target, (err as Error).message, err);
  } finally {
    clearTimeout(timer);
  }
}
