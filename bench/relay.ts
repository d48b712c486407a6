/**
 * The naive baseline: a TCP relay that pipes bytes both ways and looks at nothing. The gap
 * between it and a direct connection is the cost of one extra hop through Node; the gap between
 * it and Airlock is the cost of parsing, policy and audit.
 */
import { connect, createServer, type Server } from 'node:net';

export interface Relay {
  readonly port: number;
  close(): Promise<void>;
}

export function startRelay(upstream: { host: string; port: number }): Promise<Relay> {
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((client) => {
    const target = connect(upstream);
    client.setNoDelay(true);
    target.setNoDelay(true);
    sockets.add(client);
    sockets.add(target);
    client.pipe(target);
    target.pipe(client);
    const drop = () => {
      client.destroy();
      target.destroy();
      sockets.delete(client);
      sockets.delete(target);
    };
    client.on('error', drop);
    target.on('error', drop);
    client.on('close', drop);
    target.on('close', drop);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('relay has no port'));
        return;
      }
      resolve({
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
