/**
 * Logging in to a target whose account uses caching_sha2_password (MySQL 8's default), which
 * MariaDB cannot play: a scripted server here checks every step the way MySQL does, with its own
 * arithmetic rather than the gateway's: the fast path, full authentication over the server's RSA
 * key on a plain connection (the password never crosses it in clear), full authentication in clear
 * inside TLS, and a wrong password.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, privateDecrypt, randomBytes, constants as rsa } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { TLSSocket } from 'node:tls';
import { type SelfSigned, selfSignedCert } from '../../../test/support/tls.ts';
import { Cap } from './constants.ts';
import { greeting } from './messages.ts';
import { PacketReader, packet } from './packets.ts';
import { connectUpstream, UpstreamRefusal } from './upstream.ts';

const PASSWORD = 'held-secret-Ω';

const keys = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

const sha256 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** What a MySQL server would accept as the fast-path proof for PASSWORD. */
function expectedProof(scramble: Buffer): Buffer {
  const m1 = sha256(Buffer.from(PASSWORD, 'utf8'));
  const m2 = sha256(sha256(m1), scramble);
  return Buffer.from(m1.map((b, i) => b ^ m2[i]!));
}

type Mode = 'fast' | 'full';

interface Seen {
  /** Every payload the client sent after the handshake response. */
  readonly replies: Buffer[];
  plugin?: string;
  tls: boolean;
  outcome?: 'ok' | 'denied';
}

/** One connection of the scripted server: greeting, then the caching_sha2_password exchange. */
async function serve(raw: Socket, mode: Mode, cert: SelfSigned | undefined, seen: Seen): Promise<void> {
  let sock: Socket = raw;
  let reader = new PacketReader(1 << 20);
  const queue: Buffer[] = [];
  let wake: (() => void) | undefined;
  const listen = (s: Socket) =>
    s.on('data', (d: Buffer) => {
      reader.push(d);
      for (let p = reader.next(); p; p = reader.next()) queue.push(p.payload);
      wake?.();
    });
  const next = async (): Promise<Buffer> => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift()!;
  };
  raw.on('error', () => {});
  listen(raw);
  const scramble = Buffer.from(randomBytes(20).map((b) => (b === 0 ? 1 : b)));
  let caps =
    Cap.LONG_PASSWORD |
    Cap.PROTOCOL_41 |
    Cap.SECURE_CONNECTION |
    Cap.PLUGIN_AUTH |
    Cap.CONNECT_WITH_DB |
    Cap.TRANSACTIONS |
    Cap.MULTI_STATEMENTS |
    Cap.MULTI_RESULTS;
  if (cert) caps |= Cap.SSL;
  let seq = 0;
  sock.write(
    packet(
      greeting({
        serverVersion: '8.0.36-scripted',
        connectionId: 7,
        scramble,
        capabilities: caps,
        collation: 45,
        status: 2,
        plugin: 'caching_sha2_password',
      }),
      seq++,
    ),
  );
  let response = await next();
  seq++;
  if (cert && response.length === 32) {
    // SSLRequest: the rest of the login runs inside TLS.
    // The ClientHello may have arrived in the same chunk: TLS reads through a stream fed with it.
    const early = reader.takeRest();
    raw.removeAllListeners('data');
    const feed = new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        raw.write(chunk, cb);
      },
    });
    if (early.length > 0) feed.push(early);
    raw.on('data', (d: Buffer) => feed.push(d));
    raw.on('end', () => feed.push(null));
    const t = new TLSSocket(feed as unknown as Socket, { isServer: true, cert: cert.cert, key: cert.key });
    t.on('error', () => {});
    sock = t;
    seen.tls = true;
    reader = new PacketReader(1 << 20);
    listen(t);
    response = await next();
    seq++;
  }
  // HandshakeResponse41: caps(4) max(4) charset(1) filler(23) user\0 authlen auth db\0 plugin\0
  let at = 32;
  at = response.indexOf(0, at) + 1;
  const authLen = response[at]!;
  const proof = response.subarray(at + 1, at + 1 + authLen);
  at += 1 + authLen;
  at = response.indexOf(0, at) + 1;
  seen.plugin = response.subarray(at, response.indexOf(0, at)).toString('utf8');
  const ok = () => sock.write(packet(Buffer.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]), seq++));
  const deny = () => {
    const msg = Buffer.from("#28000Access denied for user 'app'@'localhost'");
    const head = Buffer.from([0xff, 0x15, 0x04]);
    sock.write(packet(Buffer.concat([head, msg]), seq++));
  };
  const finish = (good: boolean) => {
    seen.outcome = good ? 'ok' : 'denied';
    if (good) ok();
    else deny();
  };

  if (mode === 'fast') {
    const good = proof.equals(expectedProof(scramble));
    if (good) sock.write(packet(Buffer.from([0x01, 0x03]), seq++));
    finish(good);
    return;
  }
  // Full authentication, as after a cache miss.
  sock.write(packet(Buffer.from([0x01, 0x04]), seq++));
  let reply = await next();
  seq++;
  seen.replies.push(reply);
  if (seen.tls) {
    finish(reply.equals(Buffer.from(`${PASSWORD}\0`, 'utf8')));
    return;
  }
  // A plain connection: MySQL accepts only a request for its key, then the encrypted password.
  if (!(reply.length === 1 && reply[0] === 2)) {
    finish(false);
    return;
  }
  sock.write(packet(Buffer.concat([Buffer.from([0x01]), Buffer.from(keys.publicKey, 'latin1')]), seq++));
  reply = await next();
  seq++;
  seen.replies.push(reply);
  let plain: Buffer;
  try {
    plain = privateDecrypt({ key: keys.privateKey, padding: rsa.RSA_PKCS1_OAEP_PADDING }, reply);
  } catch {
    finish(false);
    return;
  }
  const pw = Buffer.from(plain.map((b, i) => b ^ scramble[i % scramble.length]!));
  finish(pw.equals(Buffer.from(`${PASSWORD}\0`, 'utf8')));
}

async function scriptedServer(
  mode: Mode,
  cert?: SelfSigned,
): Promise<{ server: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((s) => {
    const entry: Seen = { replies: [], tls: false };
    seen.push(entry);
    serve(s, mode, cert, entry).catch(() => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return { server, port: addr.port, seen };
}

function target(port: number, o: { password?: string; ca?: string } = {}) {
  return {
    name: 'shop',
    host: '127.0.0.1',
    port,
    database: 'app',
    user: 'app',
    password: o.password ?? PASSWORD,
    tls: o.ca ? ('verify-full' as const) : ('off' as const),
    ...(o.ca ? { ca: o.ca } : {}),
    timeoutMs: 10_000,
  };
}

const CALLER = {
  capabilities: Cap.PROTOCOL_41 | Cap.TRANSACTIONS | Cap.MULTI_STATEMENTS | Cap.MULTI_RESULTS,
  collation: 45,
};

describe('target login with caching_sha2_password', () => {
  let dir: string;
  let cert: SelfSigned;
  const servers: Server[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-mysql-upstream-'));
    cert = selfSignedCert(dir);
  });
  after(() => {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function login(mode: Mode, o: { password?: string; tls?: boolean } = {}) {
    const s = await scriptedServer(mode, o.tls ? cert : undefined);
    servers.push(s.server);
    const result = connectUpstream(
      target(s.port, { password: o.password, ca: o.tls ? cert.certFile : undefined }) as Parameters<
        typeof connectUpstream
      >[0],
      CALLER,
    );
    return { result, seen: s.seen };
  }

  test('fast path: the scramble proof is accepted', async () => {
    const { result, seen } = await login('fast');
    const session = await result;
    session.socket.destroy();
    assert.equal(seen[0]!.plugin, 'caching_sha2_password');
    assert.equal(seen[0]!.outcome, 'ok');
  });

  test('full authentication on a plain connection asks for the key and sends the password encrypted', async () => {
    const { result, seen } = await login('full');
    const session = await result;
    session.socket.destroy();
    assert.equal(seen[0]!.outcome, 'ok');
    assert.deepEqual([...seen[0]!.replies[0]!], [2], 'asked for the public key');
    for (const r of seen[0]!.replies)
      assert.equal(r.includes(Buffer.from(PASSWORD, 'utf8')), false, 'the password crossed in clear');
  });

  test('full authentication inside TLS sends the password itself', async () => {
    const { result, seen } = await login('full', { tls: true });
    const session = await result;
    assert.equal(session.tls, true);
    session.socket.destroy();
    assert.equal(seen[0]!.tls, true);
    assert.equal(seen[0]!.outcome, 'ok');
  });

  test('a wrong held password is a refusal that names the target, without the password', async () => {
    for (const mode of ['fast', 'full'] as const) {
      const { result } = await login(mode, { password: 'not-the-password' });
      await assert.rejects(result, (err: Error) => {
        assert.ok(err instanceof UpstreamRefusal, `${mode}: ${err.message}`);
        assert.match(err.message, /shop/);
        assert.match(err.message, /Access denied/);
        assert.doesNotMatch(err.message, /not-the-password/);
        return true;
      });
    }
  });
});
