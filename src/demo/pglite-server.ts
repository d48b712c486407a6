/**
 * Serves a PGlite database over the PostgreSQL wire protocol on a TCP port, so the demo has a
 * real target that psql, the `pg` driver and the gateway's own upstream client can talk to.
 *
 * PGlite is one backend process. Every client's messages go to that one backend, so clients
 * take turns: a client owns the backend from its first message until the backend reports it
 * idle again (ReadyForQuery with status `I`). While one client is inside a transaction or in
 * the middle of an extended-protocol batch, the others' messages wait. A client that goes away
 * while owning the backend has its batch closed and its transaction rolled back.
 *
 * Framing follows https://www.postgresql.org/docs/current/protocol-message-formats.html and the
 * start-up flow in https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

/** Codes carried in the first int32 after the length of an untyped start-up packet. */
const PROTOCOL_3 = 196608;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

/** Largest message we buffer from one client; a demo never needs more. */
const MAX_MESSAGE = 16 * 1024 * 1024;

export interface PgliteServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

interface Client {
  readonly socket: Socket;
  buffer: Buffer;
  started: boolean;
  closed: boolean;
  /** Messages are handled one at a time, in order. */
  chain: Promise<void>;
}

function query(sql: string): Uint8Array {
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const b = Buffer.alloc(5 + text.length);
  b[0] = 0x51; // 'Q'
  b.writeInt32BE(4 + text.length, 1);
  text.copy(b, 5);
  return b;
}

const SYNC = Uint8Array.from([0x53, 0, 0, 0, 4]);

/** ErrorResponse (https://www.postgresql.org/docs/current/protocol-error-fields.html). */
function errorResponse(code: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, 'utf8');
  const b = Buffer.alloc(5 + fields.length);
  b[0] = 0x45; // 'E'
  b.writeInt32BE(4 + fields.length, 1);
  fields.copy(b, 5);
  return b;
}

/** The transaction status of the last ReadyForQuery in a backend output, if any. */
export function lastReadyStatus(out: Uint8Array): string | undefined {
  let status: string | undefined;
  let i = 0;
  while (i + 5 <= out.length) {
    const type = out[i]!;
    const len = ((out[i + 1]! << 24) | (out[i + 2]! << 16) | (out[i + 3]! << 8) | out[i + 4]!) >>> 0;
    if (len < 4) break;
    if (type === 0x5a && len === 5 && i + 5 < out.length) status = String.fromCharCode(out[i + 5]!);
    i += 1 + len;
  }
  return status;
}

export async function startPgliteServer(
  db: PGlite,
  opts: { host?: string; port?: number } = {},
): Promise<PgliteServer> {
  const host = opts.host ?? '127.0.0.1';
  const clients = new Set<Client>();
  /** The client whose transaction or batch the backend is in; others queue. */
  let owner: Client | undefined;
  const waiting: { client: Client; resume: () => void }[] = [];
  /** Reply to the start-up packet: captured once from PGlite, then replayed for every client. */
  let greeting: Uint8Array | undefined;

  function acquire(client: Client): Promise<void> {
    if (owner === undefined || owner === client) {
      owner = client;
      return Promise.resolve();
    }
    return new Promise((resolve) => waiting.push({ client, resume: resolve }));
  }

  function release(client: Client): void {
    if (owner !== client) return;
    owner = undefined;
    const next = waiting.shift();
    if (next) {
      owner = next.client;
      next.resume();
    }
  }

  async function exec(bytes: Uint8Array): Promise<Uint8Array> {
    // The result may be a view into WASM memory that the next call overwrites: copy it out.
    return db.runExclusive(async () => Buffer.from(await db.execProtocolRaw(bytes)));
  }

  function send(client: Client, out: Uint8Array): void {
    if (!client.closed && out.length > 0) client.socket.write(out);
  }

  async function handleStartup(client: Client, packet: Buffer): Promise<void> {
    const code = packet.readInt32BE(4);
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      send(client, Buffer.from('N'));
      return;
    }
    if (code === CANCEL_REQUEST) {
      // PGlite cannot interrupt a running statement; the request is acknowledged by closing.
      client.socket.end();
      return;
    }
    if (code !== PROTOCOL_3) {
      send(client, errorResponse('08P01', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}`));
      client.socket.end();
      return;
    }
    await acquire(client);
    try {
      if (!greeting) greeting = await exec(packet);
      send(client, greeting);
      client.started = true;
    } finally {
      release(client);
    }
  }

  async function handleMessage(client: Client, message: Buffer): Promise<void> {
    if (message[0] === 0x58) {
      // Terminate: the backend is shared and must not see it.
      client.socket.end();
      return;
    }
    await acquire(client);
    if (client.closed) {
      await abandon(client);
      return;
    }
    let out: Uint8Array;
    try {
      out = await exec(message);
    } catch (err) {
      send(client, errorResponse('XX000', `demo database failed: ${(err as Error).message}`));
      client.socket.destroy();
      await abandon(client);
      return;
    }
    send(client, out);
    if (lastReadyStatus(out) === 'I') release(client);
  }

  /** The client left: close its open batch and transaction so the next client starts clean. */
  async function abandon(client: Client): Promise<void> {
    const queued = waiting.findIndex((w) => w.client === client);
    if (queued >= 0) waiting.splice(queued, 1);
    if (owner !== client) return;
    try {
      const out = await exec(SYNC);
      if (lastReadyStatus(out) !== 'I' || db.isInTransaction()) await exec(query('ROLLBACK'));
    } catch {
      // The backend is shared; if even ROLLBACK fails there is nothing more a demo can do.
    } finally {
      release(client);
    }
  }

  function onData(client: Client, chunk: Buffer): void {
    client.buffer = client.buffer.length === 0 ? chunk : Buffer.concat([client.buffer, chunk]);
    for (;;) {
      const b = client.buffer;
      let message: Buffer;
      if (!client.started) {
        if (b.length < 8) return;
        const len = b.readInt32BE(0);
        if (len < 8 || len > 10_000) {
          protocolViolation(client, 'invalid start-up packet length');
          return;
        }
        if (b.length < len) return;
        message = b.subarray(0, len);
        client.buffer = b.subarray(len);
        // Until the start-up packet is answered no typed message may be parsed.
        client.chain = client.chain.then(() => handleStartup(client, message));
        const code = message.readInt32BE(4);
        if (code === PROTOCOL_3) client.started = true;
        continue;
      }
      if (b.length < 5) return;
      const len = b.readInt32BE(1);
      if (len < 4 || len > MAX_MESSAGE) {
        protocolViolation(client, 'invalid message length');
        return;
      }
      if (b.length < len + 1) return;
      message = Buffer.from(b.subarray(0, len + 1));
      client.buffer = b.subarray(len + 1);
      client.chain = client.chain.then(() => handleMessage(client, message));
    }
  }

  function protocolViolation(client: Client, text: string): void {
    send(client, errorResponse('08P01', text));
    client.buffer = Buffer.alloc(0);
    client.socket.end();
  }

  const server: Server = createServer((socket) => {
    const client: Client = {
      socket,
      buffer: Buffer.alloc(0),
      started: false,
      closed: false,
      chain: Promise.resolve(),
    };
    clients.add(client);
    socket.setNoDelay(true);
    socket.on('data', (chunk) => onData(client, chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      client.closed = true;
      clients.delete(client);
      client.chain = client.chain.then(() => abandon(client));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 0);

  return {
    host,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of clients) c.socket.destroy();
      await closed;
      await Promise.allSettled([...clients].map((c) => c.chain));
    },
  };
}
