/**
 * The packet codec and the response tracker fed the same bytes split at random points; malformed
 * input gets a MysqlProtocolError, never another exception.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Header, Status } from './constants.ts';
import {
  eofPacket,
  errPacket,
  greeting,
  handshakeResponse,
  okPacket,
  parseGreeting,
  parseHandshakeResponse,
} from './messages.ts';
import { FrameReader, joinFrames, MAX_PAYLOAD, MysqlProtocolError, PacketReader, packet } from './packets.ts';
import { parseExecute } from './params.ts';
import { ResponseTracker } from './response.ts';

/** Cuts `bytes` at the given points (sorted, deduplicated, within range). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

const payloads = fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 1, maxLength: 20 });

describe('PacketReader', () => {
  test('the same packets come out however the bytes are split', () => {
    fc.assert(
      fc.property(payloads, fc.array(fc.nat(), { maxLength: 30 }), (ps, cuts) => {
        const wire = Buffer.concat(ps.map((p, i) => packet(Buffer.from(p), i)));
        const r = new PacketReader(1 << 20);
        const got: Buffer[] = [];
        for (const chunk of split(wire, cuts)) {
          r.push(chunk);
          for (let p = r.next(); p; p = r.next()) got.push(Buffer.from(p.payload));
        }
        assert.deepEqual(
          got.map((g) => g.toString('hex')),
          ps.map((p) => Buffer.from(p).toString('hex')),
        );
        assert.equal(r.buffered, 0);
      }),
      { numRuns: 300 },
    );
  });

  test('a payload of 0xffffff bytes or more is split and joined again', () => {
    const big = Buffer.alloc(MAX_PAYLOAD + 10, 7);
    const wire = packet(big, 3);
    assert.equal(wire.length, big.length + 8);
    const r = new PacketReader(32 * 1024 * 1024);
    for (const chunk of split(wire, [1, 5000, MAX_PAYLOAD + 3, MAX_PAYLOAD + 5])) r.push(chunk);
    const p = r.next();
    assert.ok(p);
    assert.equal(p.payload.length, big.length);
    assert.equal(p.seq, 3);
    assert.equal(p.lastSeq, 4);
    assert.equal(p.frames.length, 2);
  });

  test('oversized and out-of-order packets are protocol errors', () => {
    const r = new PacketReader(10);
    r.push(packet(Buffer.alloc(11), 0));
    assert.throws(() => r.next(), MysqlProtocolError);
    const r2 = new PacketReader(1 << 25);
    const big = packet(Buffer.alloc(MAX_PAYLOAD + 1), 0);
    big[MAX_PAYLOAD + 4 + 3] = 9; // second frame's sequence id
    r2.push(big);
    assert.throws(() => r2.next(), MysqlProtocolError);
  });

  test('random bytes never throw anything but a protocol error', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (bytes, cuts) => {
          const r = new PacketReader(4096);
          try {
            for (const chunk of split(Buffer.from(bytes), cuts)) {
              r.push(chunk);
              for (let p = r.next(); p; p = r.next()) {
                // Every parser the session runs on a caller packet.
                for (const parse of [
                  parseHandshakeResponse,
                  parseGreeting,
                  (b: Buffer) => parseExecute(b, 3, undefined, new Set()),
                ]) {
                  try {
                    parse(p.payload);
                  } catch (err) {
                    if (!(err instanceof MysqlProtocolError)) throw err;
                  }
                }
              }
            }
          } catch (err) {
            if (!(err instanceof MysqlProtocolError)) throw err;
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('handshake messages', () => {
  test('greeting and handshake response round-trip', () => {
    const scramble = Buffer.from('abcdefghijklmnopqrst');
    const g = parseGreeting(
      greeting({
        serverVersion: '8.0.0-x',
        connectionId: 42,
        scramble,
        capabilities: 0xf7ff | (0x81bf << 16),
        collation: 45,
        status: 2,
        plugin: 'caching_sha2_password',
      }),
    );
    assert.equal(g.serverVersion, '8.0.0-x');
    assert.equal(g.connectionId, 42);
    assert.deepEqual(g.scramble, scramble);
    assert.equal(g.plugin, 'caching_sha2_password');
    const r = parseHandshakeResponse(
      handshakeResponse({
        capabilities: 0x00aaa20f | 0x200 | 0x8000 | 0x80000 | 0x8,
        collation: 45,
        user: 'agent',
        authData: Buffer.from([1, 2, 3]),
        database: 'shop',
        plugin: 'mysql_native_password',
      }),
    );
    assert.equal(r.user, 'agent');
    assert.equal(r.database, 'shop');
    assert.deepEqual([...r.authData], [1, 2, 3]);
    assert.equal(r.plugin, 'mysql_native_password');
  });
});

/** A result set response: column count, columns, EOF, rows, EOF with `status`. */
function resultSet(columns: number, rows: Buffer[], status: number, binary = false): Buffer[] {
  const out: Buffer[] = [Buffer.from([columns])];
  for (let i = 0; i < columns; i++)
    out.push(
      Buffer.from(
        `\x03def\x00\x00\x00\x01c\x00\x0c\x3f\x00\x01\x00\x00\x00\x03\x00\x00\x00\x00\x00`,
        'latin1',
      ),
    );
  out.push(eofPacket(Status.AUTOCOMMIT));
  for (const r of rows) out.push(binary ? Buffer.concat([Buffer.from([0]), r]) : r);
  out.push(eofPacket(status));
  return out;
}

describe('ResponseTracker', () => {
  test('finds the end of multi-result responses however the bytes are split', () => {
    const row = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => {
      const v = Buffer.from(b);
      // A text row is length-encoded values; make it one value so it never looks like EOF/ERR.
      return Buffer.concat([Buffer.from([Math.min(v.length, 250)]), v.subarray(0, 250)]);
    });
    const result = fc.oneof(
      fc.record({ kind: fc.constant('ok' as const), rows: fc.constant([] as Buffer[]) }),
      fc.record({ kind: fc.constant('rows' as const), rows: fc.array(row, { maxLength: 5 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(result, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 20 }),
        (results, endWithErr, cuts) => {
          const payloads: Buffer[] = [];
          results.forEach((r, i) => {
            const last = i === results.length - 1 && !endWithErr;
            const status = Status.AUTOCOMMIT | (last ? 0 : Status.MORE_RESULTS_EXISTS);
            if (r.kind === 'ok') payloads.push(okPacket({ status }));
            else payloads.push(...resultSet(2, r.rows, status));
          });
          if (endWithErr) payloads.push(errPacket(1064, '42000', 'syntax'));
          const wire = Buffer.concat(payloads.map((p, i) => packet(p, (i + 1) & 0xff)));
          const extra = packet(okPacket({ status: 2 }), 1); // the next command's response must not be consumed
          const t = new ResponseTracker();
          t.start('result');
          const frames = new FrameReader();
          let doneAt = -1;
          let n = 0;
          for (const chunk of split(Buffer.concat([wire, extra]), cuts)) {
            frames.push(chunk);
            for (let f = frames.next(); f; f = frames.next()) {
              n++;
              if (doneAt >= 0) continue;
              const ev = t.frame(f);
              if (ev?.type === 'done') {
                doneAt = n;
                assert.equal(ev.error, endWithErr);
              }
            }
          }
          assert.equal(doneAt, payloads.length);
          assert.equal(t.active, false);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('prepare responses, LOCAL INFILE requests and binary rows', () => {
    const t = new ResponseTracker();
    t.start('prepare');
    const ok = Buffer.from([0, 5, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0]);
    const ev = t.frame({ seq: 1, raw: packet(ok, 1), payload: ok, continued: false, more: false });
    assert.deepEqual(ev, { type: 'prepared', statementId: 5, params: 2, columns: 1 });
    // Two parameter definitions and EOF, one column definition and EOF.
    const defs = Buffer.from([3, 0x64, 0x65, 0x66]);
    const rest = [defs, defs, eofPacket(2), defs, eofPacket(2)];
    rest.forEach((p, i) => {
      const e = t.frame({ seq: 2 + i, raw: packet(p, 2 + i), payload: p, continued: false, more: false });
      assert.equal(e?.type, i === rest.length - 1 ? 'done' : undefined);
    });
    t.start('result');
    const infile = Buffer.concat([Buffer.from([Header.LOCAL_INFILE]), Buffer.from('/etc/passwd')]);
    assert.deepEqual(
      t.frame({ seq: 1, raw: packet(infile, 1), payload: infile, continued: false, more: false }),
      {
        type: 'local-infile',
        seq: 1,
        file: '/etc/passwd',
      },
    );
    assert.equal(t.inInfile, true);
    t.infileSent();
    const done = okPacket({ status: 2 });
    assert.equal(
      t.frame({ seq: 3, raw: packet(done, 3), payload: done, continued: false, more: false })?.type,
      'done',
    );
  });

  test('random responses end or raise a protocol error, never anything else', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('result', 'ok', 'prepare', 'fields', 'rows', 'string' as const),
        fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 30 }),
        (expect, ps) => {
          const t = new ResponseTracker();
          t.start(expect as 'result');
          try {
            for (const p of ps) {
              if (!t.active) break;
              const b = Buffer.from(p);
              t.frame({ seq: 1, raw: packet(b, 1), payload: b, continued: false, more: false });
            }
          } catch (err) {
            if (!(err instanceof MysqlProtocolError)) throw err;
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('parseExecute', () => {
  test('decodes bound parameters with their types', () => {
    const body = Buffer.concat([
      Buffer.from([0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0]),
      Buffer.from([0b100]), // third parameter NULL
      Buffer.from([1]),
      Buffer.from([0x08, 0x00, 0xfd, 0x00, 0xfd, 0x00]),
      Buffer.from([7, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from([3, 0x61, 0x62, 0x63]),
    ]);
    const r = parseExecute(body, 3, undefined, new Set());
    assert.equal(r.statementId, 9);
    assert.deepEqual(r.values, ['i:7', 's:abc', null]);
    // A later execute may omit the types.
    const again = Buffer.concat([body.subarray(0, 11), Buffer.from([0]), body.subarray(18)]);
    assert.deepEqual(parseExecute(again, 3, r.types, new Set()).values, ['i:7', 's:abc', null]);
  });
});

describe('joinFrames', () => {
  test('frames back to back in one chunk become one view; others are copied', () => {
    const chunk = Buffer.from('aaaabbbbbbcc');
    const a = chunk.subarray(0, 4);
    const b = chunk.subarray(4, 10);
    const c = chunk.subarray(10);
    const joined = joinFrames([a, b, c]);
    assert.equal(joined.toString(), 'aaaabbbbbbcc');
    assert.ok(joined.buffer === chunk.buffer && joined.byteOffset === a.byteOffset, 'a view, not a copy');
    joined[0] = 0x41;
    assert.equal(chunk.toString(), 'Aaaabbbbbbcc', 'the view shares the chunk');
    const gap = joinFrames([chunk.subarray(0, 4), c]);
    assert.equal(gap.toString(), 'Aaaacc');
    const other = joinFrames([a, Buffer.from('zz')]);
    assert.equal(other.toString(), 'Aaaazz');
    assert.equal(joinFrames([b]), b);
    assert.equal(joinFrames([]).length, 0);
  });
});
