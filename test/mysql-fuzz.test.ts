/**
 * Malformed traffic against a live MySQL listener: random bytes before and during the login, and
 * random command packets after it, split at random points. Every case must end with the gateway
 * still serving (the gateway runs in this process, so a crash fails the test run), and a session
 * that broke the protocol gets an ERR packet or a closed connection, never a hang.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Cap } from '../src/protocols/mysql/constants.ts';
import { handshakeResponse } from '../src/protocols/mysql/messages.ts';
import { packet } from '../src/protocols/mysql/packets.ts';
import {
  MYSQL_CONNECTION,
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbGatewayHooks,
  mysqlThrough,
} from './support/mariadb.ts';

const skip = mariadbAvailable();
let gw: MysqlTestGateway;

// Deny what no rule allows, so random commands are answered at once rather than held.
mariadbGatewayHooks(
  skip,
  (_target, g) => {
    gw = g;
  },
  { connectionDefault: 'deny' },
);

/** Reads from a socket until `done(bytes)` says so, the socket closes, or 10 s pass. */
function readUntil(s: Socket, done: (all: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    let all = Buffer.alloc(0);
    const finish = () => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', finish);
      resolve(all);
    };
    const onData = (d: Buffer) => {
      all = Buffer.concat([all, d]);
      if (done(all)) finish();
    };
    const timer = setTimeout(finish, 10_000);
    s.on('data', onData);
    s.once('close', finish);
  });
}

/** A logged-in raw connection: caching_sha2_password with the token sent after "full auth". */
async function login(): Promise<Socket> {
  const s = connect(gw.mysql.port, '127.0.0.1');
  s.on('error', () => {});
  await readUntil(s, (b) => b.length >= 4 && b.length >= 4 + b.readUIntLE(0, 3));
  const caps =
    Cap.LONG_PASSWORD |
    Cap.PROTOCOL_41 |
    Cap.SECURE_CONNECTION |
    Cap.PLUGIN_AUTH |
    Cap.CONNECT_WITH_DB |
    Cap.MULTI_STATEMENTS |
    Cap.MULTI_RESULTS;
  s.write(
    packet(
      handshakeResponse({
        capabilities: caps,
        collation: 45,
        user: 'agent',
        authData: Buffer.alloc(32, 1),
        database: MYSQL_CONNECTION,
        plugin: 'caching_sha2_password',
      }),
      1,
    ),
  );
  const more = await readUntil(s, (b) => b.length >= 6);
  assert.deepEqual([...more.subarray(4, 6)], [0x01, 0x04], 'perform full authentication');
  s.write(packet(Buffer.from(`${gw.tokens.agent}\0`), 3));
  const ok = await readUntil(s, (b) => b.length >= 5);
  assert.equal(ok[4], 0x00, `login OK, got ${ok.toString('hex')}`);
  return s;
}

async function stillServing(): Promise<void> {
  const c = await mysqlThrough(gw);
  try {
    const [rows] = await c.query('SELECT 1 AS ok');
    assert.deepEqual(rows, [{ ok: 1 }]);
  } finally {
    await c.end();
  }
}

function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out.filter((b) => b.length > 0);
}

async function sendSplit(s: Socket, bytes: Buffer, cuts: number[]): Promise<void> {
  for (const part of split(bytes, cuts)) {
    if (s.destroyed) return;
    s.write(part);
    await new Promise((r) => setImmediate(r));
  }
}

describe('MySQL listener under malformed traffic', { skip, timeout: 10 * 60_000 }, () => {
  test('random bytes instead of a handshake response', { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (bytes, cuts) => {
          const s = connect(gw.mysql.port, '127.0.0.1');
          s.on('error', () => {});
          await readUntil(s, (b) => b.length >= 4 && b.length >= 4 + b.readUIntLE(0, 3));
          await sendSplit(s, Buffer.from(bytes), cuts);
          s.end();
          await readUntil(s, () => false);
          s.destroy();
        },
      ),
      { numRuns: 40 },
    );
    await stillServing();
  });

  test('random command packets after the login get an answer or a closed connection', {
    timeout: 300_000,
  }, async () => {
    const command = fc
      .tuple(fc.integer({ min: 0, max: 0x20 }), fc.uint8Array({ maxLength: 200 }))
      .map(([cmd, body]) => Buffer.concat([Buffer.from([cmd]), body]));
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (cmds, cuts) => {
          const s = await login();
          // Each command starts a new sequence at 0; a QUIT or a protocol error ends the session.
          const wire = Buffer.concat(cmds.map((c) => packet(c, 0)));
          await sendSplit(s, wire, cuts);
          // Our end of the connection closes; the gateway must finish with it promptly.
          const started = Date.now();
          s.end();
          await readUntil(s, () => false);
          const tookMs = Date.now() - started;
          s.destroy();
          assert.ok(
            tookMs < 9_000,
            `the session did not end after the caller closed (commands: ${cmds.map((c) => c.toString('hex')).join(' ')})`,
          );
        },
      ),
      { numRuns: 30, endOnFailure: true },
    );
    await stillServing();
  });
});
