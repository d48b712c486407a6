/**
 * A real HTTP service for proxy tests: records every request it gets (method, URL, headers,
 * body) and answers JSON. `/stream` sends chunks until told to stop, to test that responses
 * are streamed rather than buffered.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface HttpUpstream {
  readonly url: string;
  readonly seen: SeenRequest[];
  /** Resolves the next time a request arrives. */
  next(): Promise<SeenRequest>;
  /** Ends the open `/stream` responses. */
  endStreams(): void;
  close(): Promise<void>;
}

export async function startHttpUpstream(): Promise<HttpUpstream> {
  const seen: SeenRequest[] = [];
  let waiters: ((r: SeenRequest) => void)[] = [];
  const streams = new Set<import('node:http').ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      seen.push(r);
      const w = waiters;
      waiters = [];
      for (const fn of w) fn(r);
      if (req.url?.includes('/stream')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
        streams.add(res);
        res.on('close', () => streams.delete(res));
        return;
      }
      if (req.url?.includes('/status/')) {
        const status = Number(req.url.slice(req.url.indexOf('/status/') + '/status/'.length)) || 500;
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(`status ${status}\n`);
        return;
      }
      const body = JSON.stringify({ ok: true, method: r.method, url: r.url, bodyBytes: r.body.length });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    next: () => new Promise((resolve) => waiters.push(resolve)),
    endStreams() {
      for (const s of streams) s.end('last\n');
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
