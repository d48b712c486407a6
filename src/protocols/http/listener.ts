/**
 * The HTTP listener: one node:http server for every connection type that speaks HTTP
 * (`/http/NAME`, `/kubernetes/NAME`, `/git/NAME`).
 */
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Limits } from '../../core/limits/limits.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { Recorder } from '../../core/recording/types.ts';
import type { ProxyAdapter } from './adapter.ts';
import { gitAdapter } from './git/adapter.ts';
import { httpAdapter } from './http-connection.ts';
import { kubernetesAdapter } from './kubernetes/adapter.ts';
import { HttpProxy, type Logger } from './proxy.ts';
import { handleUpgrade } from './upgrade.ts';

export interface HttpListenerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly tokens: Authenticator;
  readonly log?: Logger | undefined;
  /** Records each caller session's exchanges (events-jsonl). */
  readonly recorder?: Recorder | undefined;
  /**
   * The gateway's certificate (PEM). With it the same port also speaks HTTPS: kubectl sends a
   * bearer token only over TLS.
   */
  readonly tls?: { readonly cert: string; readonly key: string } | undefined;
  /** Timeouts shared with the other protocols: `startupTimeoutMs` bounds idle and slow callers. */
  readonly limits?: Limits | undefined;
}

export interface HttpListener {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHttpListener(o: HttpListenerOptions): Promise<HttpListener> {
  const proxy = new HttpProxy({
    policy: o.policy,
    gate: o.gate,
    tokens: o.tokens,
    adapters: [
      httpAdapter as ProxyAdapter<never>,
      kubernetesAdapter as ProxyAdapter<never>,
      gitAdapter as ProxyAdapter<never>,
    ],
    log: o.log,
    recorder: o.recorder,
    limits: o.limits,
  });
  const sockets = new Set<Socket>();
  const startupMs = o.limits?.config.startupTimeoutMs ?? 15_000;
  const startup = new WeakMap<object, NodeJS.Timeout>();
  const arrived = (socket: object) => {
    clearTimeout(startup.get(socket));
    startup.delete(socket);
  };
  const server: Server = createServer(
    // Request headers must arrive within the startup timeout (slow-loris); node checks every
    // `connectionsCheckingInterval`, so check often enough for the timeout to mean something.
    { keepAliveTimeout: 30_000, connectionsCheckingInterval: Math.max(100, Math.min(1000, startupMs / 2)) },
    (req, res) => {
      arrived(req.socket);
      void proxy.handle(req, res);
    },
  );
  // A held request may wait for minutes with its body already received.
  server.requestTimeout = 0;
  server.headersTimeout = startupMs;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    arrived(socket);
    handleUpgrade(
      {
        policy: o.policy,
        gate: o.gate,
        tokens: o.tokens,
        recorder: o.recorder,
        log: o.log,
        session: (sock, protocol, connection, principal, source) =>
          proxy.sessionFor(sock, protocol, connection, principal, source),
      },
      req,
      socket,
      head,
    ).catch((err: Error) => {
      o.log?.error({ err: err.message }, 'upgrade failed');
      socket.destroy();
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  });
  // One port for both: a TLS ClientHello starts with a handshake record (0x16), an HTTP request
  // with a method name. https://www.rfc-editor.org/rfc/rfc8446#section-5.1
  const secure = o.tls ? createSecureContext({ cert: o.tls.cert, key: o.tls.key }) : undefined;
  // node:http's own server disables Nagle; this front server hands it sockets, so it must too.
  const front = createNetServer({ noDelay: true }, (socket: Socket) => {
    socket.setNoDelay(true);
    // Until its first request's headers are complete, a caller has the startup timeout: one that
    // connects and says nothing, or sends its headers a byte at a time, is cut off.
    const timer = setTimeout(() => socket.destroy(), startupMs);
    startup.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (first[0] === 0x16 && secure) {
        // The TLS wrap reads the buffered ClientHello from the paused socket itself.
        const tlsSocket = new TLSSocket(socket, {
          isServer: true,
          secureContext: secure,
          ALPNProtocols: ['http/1.1'],
        });
        tlsSocket.on('error', () => tlsSocket.destroy());
        startup.set(tlsSocket, timer);
        server.emit('connection', tlsSocket);
      } else {
        server.emit('connection', socket);
        socket.resume();
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(o.port, o.host, () => {
      front.off('error', reject);
      resolve();
    });
  });
  const address = front.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log?.info({ host: o.host, port }, 'http listener started');
  return {
    host: o.host,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      server.close();
      await proxy.close();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
