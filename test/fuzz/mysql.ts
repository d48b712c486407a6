/**
 * Fuzz targets for the MySQL codec: packet framing split anywhere, the handshake packets
 * (mutated and random), and the caller's commands as the session reads them (COM_QUERY text
 * through the classifier, COM_STMT_EXECUTE parameters). Only MysqlProtocolError may end a parse.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { classifySql } from '../../src/protocols/mysql/classify.ts';
import { Cap, Command } from '../../src/protocols/mysql/constants.ts';
import {
  greeting,
  handshakeResponse,
  isSslRequest,
  parseGreeting,
  parseHandshakeResponse,
} from '../../src/protocols/mysql/messages.ts';
import { MysqlProtocolError, PacketReader, packet } from '../../src/protocols/mysql/packets.ts';
import { parseExecute } from '../../src/protocols/mysql/params.ts';
import { ACTION_KINDS, type FuzzTarget, mutated, splitAt } from './targets.ts';

const MAX_PACKET = 4096;

function cleanError(err: unknown): void {
  assert.ok(err instanceof MysqlProtocolError, `not a MySQL protocol error: ${String(err)}`);
}

/** Command packets as a caller sends them: each command starts its own sequence at 0. */
const commandPayload = (): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc
      .tuple(
        fc.constantFrom(Command.QUERY, Command.INIT_DB, Command.STMT_PREPARE),
        fc.string({ maxLength: 120 }),
      )
      .map(([c, text]) => Buffer.concat([Buffer.from([c]), Buffer.from(text, 'utf8')])),
    fc
      .tuple(fc.integer({ min: 0, max: 0x20 }), fc.uint8Array({ maxLength: 300 }))
      .map(([c, body]) => Buffer.concat([Buffer.from([c]), body])),
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  );

/**
 * Frames the stream split at `points`: the packets (and their physical frames) must be those of
 * the unsplit stream, and both must end with the same clean error or none.
 */
function readPackets(bytes: Buffer, points: readonly number[]): void {
  const frame = (chunks: readonly Buffer[]) => {
    const reader = new PacketReader(MAX_PACKET);
    const out: { seq: number; payload: Buffer }[] = [];
    let error: string | undefined;
    try {
      for (const c of chunks) {
        reader.push(c);
        for (let p = reader.next(); p; p = reader.next()) {
          assert.ok(p.payload.length <= MAX_PACKET, `a ${p.payload.length}-byte packet passed the bound`);
          assert.equal(Buffer.concat(p.frames).length, p.payload.length + 4 * p.frames.length);
          out.push({ seq: p.seq, payload: Buffer.from(p.payload) });
        }
      }
    } catch (err) {
      cleanError(err);
      error = (err as Error).message;
    }
    return { out, error, buffered: reader.buffered };
  };
  const whole = frame([bytes]);
  const split = frame(splitAt(bytes, points));
  assert.equal(split.error, whole.error);
  assert.deepEqual(split.out, whole.out);
  if (whole.error === undefined) assert.equal(split.buffered, whole.buffered);
}

const handshake = (): fc.Arbitrary<Buffer> =>
  fc
    .record({
      capabilities: fc.integer({ min: 0, max: 0x3fffff }).map((c) => c | Cap.PROTOCOL_41),
      collation: fc.integer({ min: 0, max: 255 }),
      user: fc.stringMatching(/^[^\0]{0,20}$/),
      authData: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      database: fc.option(fc.stringMatching(/^[^\0]{0,16}$/), { nil: undefined }),
      plugin: fc.constantFrom('mysql_native_password', 'caching_sha2_password', 'client_ed25519', ''),
      sslOnly: fc.boolean(),
    })
    .map((r) => handshakeResponse(r));

const serverGreeting = (): fc.Arbitrary<Buffer> =>
  fc
    .record({
      serverVersion: fc.stringMatching(/^[^\0]{0,30}$/),
      connectionId: fc.nat(),
      scramble: fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b)),
      capabilities: fc.integer({ min: 0, max: 0x3fffff }),
      collation: fc.integer({ min: 0, max: 255 }),
      status: fc.integer({ min: 0, max: 0xffff }),
      plugin: fc.constantFrom('mysql_native_password', 'caching_sha2_password', 'client_ed25519'),
    })
    .map((g) => greeting(g));

function readHandshake(payload: Buffer): void {
  isSslRequest(payload);
  try {
    const r = parseHandshakeResponse(payload);
    assert.equal(typeof r.user, 'string');
    assert.ok(r.attributes.size <= 64);
  } catch (err) {
    cleanError(err);
  }
  try {
    parseGreeting(payload);
  } catch (err) {
    cleanError(err);
  }
}

/** A COM_STMT_EXECUTE with `params` parameters of random types and values. */
const execute = (): fc.Arbitrary<{ payload: Buffer; params: number }> =>
  fc
    .tuple(
      fc.nat(),
      fc.array(
        fc.tuple(
          fc.constantFrom(
            0x01,
            0x02,
            0x03,
            0x04,
            0x05,
            0x06,
            0x07,
            0x08,
            0x0a,
            0x0f,
            0xfd,
            0xfe,
            0x8003,
            0x42,
          ),
          fc.uint8Array({ maxLength: 12 }),
        ),
        { maxLength: 10 },
      ),
      fc.boolean(),
    )
    .map(([id, ps, nulls]) => {
      const head = Buffer.alloc(10);
      head[0] = Command.STMT_EXECUTE;
      head.writeUInt32LE(id >>> 0, 1);
      head.writeUInt32LE(1, 6);
      if (ps.length === 0) return { payload: head, params: 0 };
      const bitmap = Buffer.alloc(Math.floor((ps.length + 7) / 8));
      if (nulls) bitmap[0] = 0x01;
      const types = Buffer.concat(
        ps.map(([t]) => {
          const b = Buffer.alloc(2);
          b.writeUInt16LE(t);
          return b;
        }),
      );
      const values = Buffer.concat(ps.map(([, v]) => Buffer.from(v)));
      return { payload: Buffer.concat([head, bitmap, Buffer.from([1]), types, values]), params: ps.length };
    });

function readExecute(payload: Buffer, params: number, longData: ReadonlySet<number>): void {
  try {
    const r = parseExecute(payload, params, undefined, longData);
    assert.equal(r.values.length, params);
    assert.equal(r.types.length, params);
  } catch (err) {
    cleanError(err);
  }
}

/** COM_QUERY text: whatever it is, it is judged (parts of known kinds), never waved through unread. */
function judgeQuery(sql: string): void {
  const c = classifySql(sql, { database: 'app' });
  if (c.empty) assert.equal(c.parts.length, 0);
  else assert.ok(c.parts.length > 0, 'a non-empty statement produced no part to judge');
  for (const p of c.parts) assert.ok(ACTION_KINDS.has(p.kind), `kind ${p.kind}`);
  if (sql.includes('\0')) assert.ok(c.parts.every((p) => p.kind === 'unknown'));
}

const sqlish = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'SELECT ',
        'DELETE FROM t',
        'UPDATE t SET a=1',
        'DROP TABLE t',
        'INSERT INTO t VALUES (1)',
        ' WHERE ',
        ';',
        "'",
        '"',
        '`',
        '/*',
        '*/',
        '/*!',
        '-- ',
        '#',
        '\n',
        '\\',
        'PREPARE s FROM ',
        'EXECUTE s',
        'LOAD DATA LOCAL INFILE ',
        'CALL p()',
        'SLEEP(1)',
        'USE other',
        '\0',
      ),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 20 },
  )
  .map((xs) => xs.join(''));

export const MYSQL_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'mysql: command packets split anywhere, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          fc.oneof(
            fc
              .array(commandPayload(), { minLength: 1, maxLength: 6 })
              .map((ps) => Buffer.concat(ps.map((p) => packet(p, 0)))),
            mutated(
              fc
                .array(commandPayload(), { minLength: 1, maxLength: 4 })
                .map((ps) => Buffer.concat(ps.map((p) => packet(p, 0)))),
            ),
            fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
          ),
          fc.array(fc.nat(), { maxLength: 30 }),
        ),
        ([bytes, points]) => readPackets(bytes, points),
      ),
  },
  {
    name: 'mysql: handshake and greeting packets, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.oneof(
          handshake(),
          mutated(handshake()),
          serverGreeting(),
          mutated(serverGreeting()),
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        ),
        (payload) => readHandshake(payload),
      ),
  },
  {
    name: 'mysql: COM_STMT_EXECUTE parameters and COM_QUERY text, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          fc.oneof(
            execute().map((e) => ({ ...e, sql: undefined })),
            fc
              .tuple(mutated(execute().map((e) => e.payload)), fc.integer({ min: 0, max: 12 }))
              .map(([payload, params]) => ({ payload, params, sql: undefined })),
            fc
              .oneof(sqlish, fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }))
              .map((sql) => ({ payload: Buffer.alloc(0), params: 0, sql })),
          ),
          fc.uniqueArray(fc.nat(11), { maxLength: 3 }),
        ),
        ([{ payload, params, sql }, longData]) => {
          if (sql !== undefined) judgeQuery(sql);
          else readExecute(payload, params, new Set(longData));
        },
      ),
  },
];
