/**
 * The API server's side of `kubectl port-forward` for the stand-in API server: an SPDY/3.1
 * session tunnelled through a WebSocket (`SPDY/3.1+portforward.k8s.io`). Each pair of streams
 * (`streamtype` error and data, same `requestid`) becomes a TCP connection to the local port the
 * test maps the pod's port to; the data stream carries the bytes, the error stream says what
 * went wrong, and both end when the connection does.
 * https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/
 */
import { connect, type Socket } from 'node:net';
import type { WebSocket } from 'ws';
import {
  controlStreamId,
  dataFrame,
  encodeFrame,
  FLAG_FIN,
  FrameReader,
  HEADERS,
  HeaderDeflater,
  HeaderInflater,
  header,
  headersOf,
  PING,
  RST_STREAM,
  SYN_REPLY,
  SYN_STREAM,
  synReply,
} from '../../src/protocols/http/kubernetes/spdy-frames.ts';

interface Pair {
  error?: number;
  data?: number;
  socket?: Socket;
}

export function servePortForward(
  ws: WebSocket,
  ports: ReadonlyMap<number, number>,
  opened: { port: number }[],
): void {
  const reader = new FrameReader();
  const inflater = new HeaderInflater();
  const deflater = new HeaderDeflater();
  const pairs = new Map<string, Pair>();
  const byStream = new Map<number, Pair>();
  const send = (b: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(b);
  };
  const fail = (pair: Pair, message: string) => {
    if (pair.error !== undefined) send(dataFrame(pair.error, Buffer.from(message), true));
    if (pair.data !== undefined) send(dataFrame(pair.data, Buffer.alloc(0), true));
  };
  const start = (pair: Pair, port: number) => {
    opened.push({ port });
    const local = ports.get(port);
    if (local === undefined) {
      fail(pair, `unable to do port forwarding: port ${port} is not open in the pod`);
      return;
    }
    const socket = connect(local, '127.0.0.1');
    pair.socket = socket;
    socket.on('data', (d: Buffer) => send(dataFrame(pair.data!, d)));
    socket.on('end', () => {
      send(dataFrame(pair.data!, Buffer.alloc(0), true));
      if (pair.error !== undefined) send(dataFrame(pair.error, Buffer.alloc(0), true));
    });
    socket.on('error', (err) => fail(pair, err.message));
  };
  ws.on('message', (m: Buffer) => {
    for (const f of reader.push(m)) {
      if (!f.control) {
        const pair = byStream.get(f.streamId);
        if (pair?.socket && f.streamId === pair.data) {
          if (f.data.length > 0) pair.socket.write(f.data);
          if (f.flags & FLAG_FIN) pair.socket.end();
        }
        continue;
      }
      if (f.type === PING) send(encodeFrame(f));
      else if (f.type === SYN_STREAM) {
        const h = headersOf(f, inflater);
        const id = controlStreamId(f)!;
        const rid = header(h, 'requestid') ?? '';
        send(synReply(id, [], deflater));
        let pair = pairs.get(rid);
        if (!pair) {
          pair = {};
          pairs.set(rid, pair);
        }
        byStream.set(id, pair);
        if (header(h, 'streamtype') === 'error') pair.error = id;
        else {
          pair.data = id;
          start(pair, Number(header(h, 'port')));
        }
      } else if (f.type === SYN_REPLY || f.type === HEADERS) headersOf(f, inflater);
      else if (f.type === RST_STREAM) byStream.get(controlStreamId(f)!)?.socket?.destroy();
    }
  });
  ws.on('close', () => {
    for (const p of pairs.values()) p.socket?.destroy();
  });
}
