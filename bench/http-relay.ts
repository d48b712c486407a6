/**
 * The naive HTTP baseline: a reverse proxy that forwards each request to the upstream with
 * undici and streams the answer back, looking at nothing (no policy, audit, recording or
 * masking). The gap between it and a direct request is the cost of one extra HTTP hop through
 * Node; the gap between it and Airlock is the cost of what Airlock does per request.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { Pool } from 'undici';

export interface HttpRelay {
  /** Requests to `${url}/PATH` go to the upstream's `/PATH`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's, not the request's. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

function forwardable(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>) {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

export async function startHttpRelay(upstream: string, connections = 64): Promise<HttpRelay> {
  const pool = new Pool(upstream, { connections });
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool
      .request({
        method: (req.method ?? 'GET') as 'GET',
        path: req.url ?? '/',
        headers: forwardable(req.headers),
        body: hasBody ? req : null,
      })
      .then((r) => {
        res.writeHead(r.statusCode, forwardable(r.headers));
        // pipe rather than stream.pipeline: the lighter of the two per request.
        r.body.on('error', () => res.destroy());
        res.once('close', () => {
          if (!res.writableFinished) r.body.destroy();
        });
        r.body.pipe(res);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}
