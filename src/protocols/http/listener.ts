/**
 * The HTTP listener: one node:http server for every connection type that speaks HTTP
 * (`/http/NAME`, `/kubernetes/NAME`, `/git/NAME`).
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import type { Policy } from '../../core/policy/policy.ts';
import type { ProxyAdapter } from './adapter.ts';
import { httpAdapter } from './http-connection.ts';
import { kubernetesAdapter } from './kubernetes/adapter.ts';
import { HttpProxy, type Logger } from './proxy.ts';

export interface HttpListenerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly policy: Policy;
  readonly gate: GatePort;
  readonly tokens: Authenticator;
  readonly log?: Logger | undefined;
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
    adapters: [httpAdapter as ProxyAdapter<never>, kubernetesAdapter as ProxyAdapter<never>],
    log: o.log,
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    void proxy.handle(req, res);
  });
  // A held request may wait for minutes with its body already received.
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket: Socket) => {
    const text =
      'Airlock does not proxy protocol upgrades (WebSocket, SPDY) on this listener yet: kubectl exec/attach/port-forward are refused.\n';
    socket.end(
      `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
    o.log?.warn({ url: req.url }, 'upgrade refused');
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log?.info({ host: o.host, port }, 'http listener started');
  return {
    host: o.host,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await proxy.close();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
