/**
 * The test tool server over Streamable HTTP on a random loopback port, one SDK server per
 * session, refusing any request without the bearer token Airlock is configured to send.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { buildToolServer, type ToolEffects } from './mcp-tools.ts';

export interface HttpToolServer {
  readonly url: string;
  /** The credential Airlock must present (`Authorization: Bearer`). */
  readonly token: string;
  readonly effects: ToolEffects;
  /** Every JSON-RPC notification the server received, by method (what Airlock let through). */
  readonly notifications: string[];
  /** Requests refused for a missing or wrong credential. */
  readonly refused: number;
  /** Forgets every session, as a restarted server would (their next request gets 404). */
  dropSessions(): Promise<void>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text === '' ? undefined : JSON.parse(text));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

export async function startHttpToolServer(): Promise<HttpToolServer> {
  const token = randomBytes(18).toString('base64url');
  const effects: ToolEffects = { writes: [], statements: [] };
  const transports = new Map<string, StreamableHTTPServerTransport>();
  let refused = 0;
  const notifications: string[] = [];

  const server: Server = createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      refused++;
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
      return;
    }
    try {
      const body = req.method === 'POST' ? await readBody(req) : undefined;
      for (const m of Array.isArray(body) ? body : [body])
        if (m && typeof m === 'object' && 'method' in m && !('id' in m)) notifications.push(String(m.method));
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
      if (!transport) {
        if (typeof sid === 'string') {
          res.writeHead(404).end();
          return;
        }
        const t = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            transports.set(id, t);
          },
        });
        t.onclose = () => {
          if (t.sessionId) transports.delete(t.sessionId);
        };
        await buildToolServer('http-tools', effects).connect(t);
        transport = t;
      }
      await transport.handleRequest(req, res, body);
    } catch {
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    token,
    effects,
    notifications,
    get refused() {
      return refused;
    },
    async dropSessions() {
      const all = [...transports.values()];
      transports.clear();
      await Promise.all(all.map((t) => t.close().catch(() => {})));
    },
    async close() {
      await Promise.all([...transports.values()].map((t) => t.close().catch(() => {})));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
