/**
 * Free loopback ports for peers the tests start. The OS picks the port (bind to 0), we close the
 * probe and hand the number on; a peer that loses the race fails to bind and the caller retries.
 */
import { createServer } from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the probe port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
