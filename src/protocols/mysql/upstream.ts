/**
 * Logging in to the target with the credential Airlock holds.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 *
 * Plugins: mysql_native_password, caching_sha2_password (fast path; full authentication over
 * TLS in clear, or with the server's RSA key otherwise), MariaDB's client_ed25519, and
 * mysql_clear_password over TLS only.
 */
import { readFileSync } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { AirlockError } from '../../core/errors.ts';
import type { SqlUpstream } from '../../core/policy/connections/sql-upstream.ts';
import { cachingSha2Proof, nativePasswordProof, rsaEncryptPassword } from './auth.ts';
import { Cap, Header } from './constants.ts';
import { ed25519PasswordProof } from './ed25519.ts';
import { handshakeResponse, parseErr, parseGreeting } from './messages.ts';
import { MysqlProtocolError, type Packet, PacketReader, packet } from './packets.ts';

/** The connection's upstream block, with the password revealed and `ca` an absolute path. */
export interface UpstreamTarget extends Omit<SqlUpstream, 'password'> {
  readonly name: string;
  readonly password?: string | undefined;
  readonly timeoutMs?: number;
}

export interface UpstreamSession {
  readonly socket: Socket | TLSSocket;
  /** Capabilities in effect on this connection. */
  readonly capabilities: number;
  readonly serverVersion: string;
  readonly connectionId: number;
  readonly status: number;
  readonly tls: boolean;
}

/** The target refused our login (as opposed to being unreachable). */
export class UpstreamRefusal extends AirlockError {}

/** Flags we always ask the target for; the caller's wire-format choices are added to them. */
const REQUIRED =
  Cap.LONG_PASSWORD | Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.CONNECT_WITH_DB;

export async function connectUpstream(
  t: UpstreamTarget,
  opts: { capabilities: number; collation: number },
): Promise<UpstreamSession> {
  const timeoutMs = t.timeoutMs ?? 15_000;
  let socket: Socket | TLSSocket = connect({ host: t.host, port: t.port });
  socket.setNoDelay(true);
  const reader = new PacketReader(1024 * 1024);
  let waiting: ((p: Packet) => void) | undefined;
  let failed: ((e: Error) => void) | undefined;
  const queue: Packet[] = [];
  let failure: Error | undefined;
  const onData = (chunk: Buffer) => {
    reader.push(chunk);
    try {
      for (let p = reader.next(); p; p = reader.next()) queue.push(p);
    } catch (err) {
      fail(err as Error);
      return;
    }
    if (waiting && queue.length > 0) {
      const w = waiting;
      waiting = undefined;
      w(queue.shift()!);
    }
  };
  const fail = (err: Error) => {
    failure ??= err;
    if (failed) {
      const f = failed;
      failed = undefined;
      f(failure);
    }
  };
  const onError = (err: Error) =>
    fail(
      new AirlockError(
        'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
        `connection "${t.name}": ${t.host}:${t.port} is unreachable (${err.message})`,
        {
          hint: 'check that the target is up and that Airlock can reach it',
        },
      ),
    );
  const onClose = () =>
    fail(
      new AirlockError(
        'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
        `connection "${t.name}": the target closed the connection during login`,
        {
          hint: 'check the target server log',
        },
      ),
    );
  const attach = (s: Socket | TLSSocket) => {
    s.on('data', onData);
    s.on('error', onError);
    s.on('close', onClose);
  };
  const detach = (s: Socket | TLSSocket) => {
    s.off('data', onData);
    s.off('error', onError);
    s.off('close', onClose);
  };
  const read = () =>
    new Promise<Packet>((resolve, reject) => {
      if (queue.length > 0) return resolve(queue.shift()!);
      if (failure) return reject(failure);
      waiting = resolve;
      failed = reject;
    });

  attach(socket);
  const timer = setTimeout(
    () =>
      fail(
        new AirlockError(
          'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
          `connection "${t.name}": login to ${t.host}:${t.port} took longer than ${timeoutMs / 1000} s`,
          {
            hint: 'check that the target is up and not overloaded',
          },
        ),
      ),
    timeoutMs,
  );
  try {
    const first = await read();
    if (first.payload[0] === Header.ERR) throw refusal(t, parseErr(first.payload).message);
    const g = parseGreeting(first.payload);
    const password = t.password ?? '';
    let caps =
      ((opts.capabilities & g.capabilities) |
        REQUIRED |
        (g.capabilities & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA)) >>>
      0;
    if (!(g.capabilities & Cap.PROTOCOL_41))
      throw new MysqlProtocolError('the target does not speak protocol 4.1');
    let seq = first.lastSeq + 1;
    let secure = false;
    if (t.tls === 'verify-full') {
      if (!(g.capabilities & Cap.SSL))
        throw new AirlockError(
          'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
          `connection "${t.name}": the target does not offer TLS, and tls is verify-full`,
          {
            hint: 'enable TLS on the target (ssl_cert/ssl_key) or set upstream.tls: off',
          },
        );
      caps |= Cap.SSL;
      socket.write(
        packet(
          handshakeResponse({
            capabilities: caps,
            collation: opts.collation,
            user: '',
            authData: Buffer.alloc(0),
            plugin: '',
            sslOnly: true,
          }),
          seq++,
        ),
      );
      detach(socket);
      const plain = socket;
      socket = await new Promise<TLSSocket>((resolve, reject) => {
        const s = tlsConnect({
          socket: plain,
          host: t.host,
          // SNI takes names only (RFC 6066); the certificate is still checked against an IP host.
          ...(isIP(t.host) ? {} : { servername: t.host }),
          ca: t.ca ? readFileSync(t.ca) : undefined,
          rejectUnauthorized: true,
        });
        s.once('secureConnect', () => resolve(s));
        s.once('error', (err) =>
          reject(
            new AirlockError(
              'AIRLOCK_E_UPSTREAM_UNAVAILABLE',
              `connection "${t.name}": TLS to the target failed (${err.message})`,
              {
                hint: 'check upstream.ca and that the certificate names the host',
              },
            ),
          ),
        );
      });
      attach(socket);
      secure = true;
    }
    let plugin = g.plugin;
    let scramble = g.scramble;
    const proof = (p: string): Buffer => {
      if (p === 'mysql_native_password') return nativePasswordProof(password, scramble);
      if (p === 'caching_sha2_password') return cachingSha2Proof(password, scramble);
      if (p === 'client_ed25519') return ed25519PasswordProof(password, scramble);
      if (p === 'mysql_clear_password') {
        if (!secure)
          throw refusal(
            t,
            'the target asked for the password in clear text on an unencrypted connection; Airlock refused',
            'set upstream.tls: verify-full',
          );
        return Buffer.from(`${password}\0`, 'utf8');
      }
      throw refusal(
        t,
        `the target asked for authentication plugin "${p}", which Airlock does not speak`,
        'give the Airlock user a mysql_native_password, caching_sha2_password or ed25519 account on the target',
      );
    };
    const firstPlugin = plugin === 'caching_sha2_password' ? plugin : 'mysql_native_password';
    plugin = firstPlugin;
    socket.write(
      packet(
        handshakeResponse({
          capabilities: caps,
          collation: opts.collation,
          user: t.user,
          authData: proof(plugin),
          database: t.database,
          plugin,
        }),
        seq++,
      ),
    );
    for (;;) {
      const p = await read();
      seq = p.lastSeq + 1;
      const head = p.payload[0];
      if (head === Header.OK) {
        clearTimeout(timer);
        detach(socket);
        socket.pause();
        if (queue.length > 0 || reader.buffered > 0)
          throw new MysqlProtocolError('the target sent data after the login');
        const status = p.payload.length >= 5 ? statusOfOk(p.payload) : 0;
        return {
          socket,
          capabilities: caps,
          serverVersion: g.serverVersion,
          connectionId: g.connectionId,
          status,
          tls: secure,
        };
      }
      if (head === Header.ERR) throw refusal(t, parseErr(p.payload).message);
      if (head === Header.AUTH_SWITCH) {
        const end = p.payload.indexOf(0, 1);
        plugin = p.payload.subarray(1, end < 0 ? p.payload.length : end).toString('utf8');
        if (end >= 0) {
          // Kept as sent: the 20-byte scrambles end in a NUL the proofs ignore, while the 32-byte
          // ed25519 nonce may end in a zero byte that is part of it.
          scramble = Buffer.from(p.payload.subarray(end + 1));
        }
        socket.write(packet(proof(plugin), seq++));
        continue;
      }
      if (head === Header.AUTH_MORE_DATA && plugin === 'caching_sha2_password') {
        const more = p.payload.subarray(1);
        if (more.length === 1 && more[0] === 3) continue; // fast authentication succeeded
        if (more.length === 1 && more[0] === 4) {
          if (secure) socket.write(packet(Buffer.from(`${password}\0`, 'utf8'), seq++));
          else socket.write(packet(Buffer.from([2]), seq++)); // ask for the server's public key
          continue;
        }
        // The server's public key, after we asked for it.
        socket.write(packet(rsaEncryptPassword(password, scramble, more.toString('latin1')), seq++));
        continue;
      }
      throw new MysqlProtocolError(
        `the target sent an unexpected packet (0x${(head ?? 0).toString(16)}) during login`,
      );
    }
  } catch (err) {
    clearTimeout(timer);
    detach(socket);
    socket.destroy();
    if (err instanceof MysqlProtocolError)
      throw new AirlockError('AIRLOCK_E_UPSTREAM_UNAVAILABLE', `connection "${t.name}": ${err.message}`, {
        hint: 'check that the target is a MySQL or MariaDB server',
      });
    throw err;
  }
}

function statusOfOk(payload: Buffer): number {
  let i = 1;
  for (let k = 0; k < 2; k++) {
    const b = payload[i]!;
    i += b < 0xfb ? 1 : b === 0xfc ? 3 : b === 0xfd ? 4 : 9;
  }
  return i + 2 <= payload.length ? payload.readUInt16LE(i) : 0;
}

function refusal(t: UpstreamTarget, message: string, hint?: string): UpstreamRefusal {
  return new UpstreamRefusal(
    'AIRLOCK_E_UPSTREAM_AUTH',
    `connection "${t.name}": the target refused Airlock's login: ${message}`,
    {
      hint: hint ?? 'check upstream.user and upstream.password for this connection',
    },
  );
}
