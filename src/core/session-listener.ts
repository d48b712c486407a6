/**
 * The TCP side of the listeners whose every accepted socket is one caller session (PostgreSQL,
 * MySQL): binding, handing each socket to a new session, and ending them all on close.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from './adapter-ports.ts';

/** Binds `server`; resolves with the port it got (`port` 0 picks a free one). */
export async function listenOn(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

export interface SocketSession {
  /** Ends the session at once (the listener is closing). */
  destroy(): void;
}

export interface SessionListener {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
  /** Open caller connections. */
  sessions(): number;
}

export interface SessionListenerOptions<S extends SocketSession> {
  /** The protocol, as the log messages name it. */
  readonly protocol: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Whether callers are offered TLS, for the log. */
  readonly tls: boolean;
  readonly log?: Logger | undefined;
  /** A session for one accepted socket; it calls `closed` once it has ended. */
  open(socket: Socket, closed: () => void): S;
  /** Runs on close, after every session was told to end. */
  readonly onClose?: (() => void) | undefined;
}

export async function startSessionListener<S extends SocketSession>(
  o: SessionListenerOptions<S>,
): Promise<SessionListener> {
  const sessions = new Set<S>();
  const server = createServer((socket: Socket) => {
    try {
      const session = o.open(socket, () => sessions.delete(session));
      sessions.add(session);
    } catch (err) {
      o.log?.error({ err: (err as Error).message }, `${o.protocol} connection could not be set up`);
      socket.destroy();
    }
  });
  server.on('error', (err) => o.log?.error({ err: err.message }, `${o.protocol} listener error`));
  const port = await listenOn(server, o.port, o.host);
  o.log?.info({ host: o.host, port, tls: o.tls }, `${o.protocol} listener started`);
  return {
    port,
    host: o.host,
    sessions: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of [...sessions]) s.destroy();
        o.onClose?.();
      }),
  };
}
