/**
 * A real HTTP service for proxy tests: records every request it gets (method, URL, headers,
 * body) and answers JSON. `/stream` sends chunks until told to stop, to test that responses
 * are streamed rather than buffered.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

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
  // A minimal WebSocket echo (RFC 6455 §4.2.2 handshake, §5.2 framing; short text frames only).
  const upgraded = new Set<Socket>();
  server.on('upgrade', (req, socket: Socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    seen.push({ method: 'UPGRADE', url: req.url ?? '', headers: req.headers, body: Buffer.alloc(0) });
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
    );
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 6) {
        const opcode = buf[0]! & 0x0f;
        const len = buf[1]! & 0x7f;
        if (len > 125 || buf.length < 6 + len) return;
        const mask = buf.subarray(2, 6);
        const payload = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!));
        buf = buf.subarray(6 + len);
        if (opcode === 0x8) {
          socket.end(Buffer.from([0x88, 0]));
          return;
        }
        if (opcode === 0x1) socket.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
      }
    });
    socket.on('error', () => socket.destroy());
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
        for (const s of upgraded) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
