import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrontendType, MAX_STARTUP_PACKET, MessageReader, PgProtocolError, STARTUP } from './codec.ts';
import { errorResponse, parseBind, parseStartupPacket, startupMessage } from './messages.ts';

const TYPES = Object.values(FrontendType);

function frame(type: number, body: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = type;
  b.writeInt32BE(4 + body.length, 1);
  Buffer.from(body).copy(b, 5);
  return b;
}

/** Splits `bytes` at the given points (taken modulo the length). */
function split(bytes: Buffer, points: number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of cuts) {
    out.push(bytes.subarray(at, c));
    at = c;
  }
  out.push(bytes.subarray(at));
  return out;
}

function readAll(reader: MessageReader, chunks: Buffer[]): Buffer[] {
  const got: Buffer[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (let f = reader.next(); f; f = reader.next()) {
      got.push(Buffer.from(f.raw));
      if (f.type === STARTUP) reader.startup = false;
    }
  }
  return got;
}

test('frontend messages split at any points frame the same', () => {
  const message = fc
    .tuple(fc.constantFrom(...TYPES), fc.uint8Array({ maxLength: 300 }))
    .map(([t, body]) => frame(t, body));
  const params = fc.dictionary(
    fc.stringMatching(/^[a-z_]{1,12}$/),
    fc.string({ maxLength: 20 }).map((s) => s.replace(/\0/g, '')),
  );
  fc.assert(
    fc.property(
      params,
      fc.array(message, { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (p, msgs, points) => {
        const startup = startupMessage(Object.entries({ user: 'u', ...p }));
        const all = Buffer.concat([startup, ...msgs]);
        const got = readAll(new MessageReader({ side: 'frontend', startup: true }), split(all, points));
        assert.deepEqual(got, [startup, ...msgs]);
        const parsed = parseStartupPacket({ type: STARTUP, raw: got[0]!, bodyOffset: 4 });
        assert.equal(parsed.kind, 'startup');
      },
    ),
    { numRuns: 300 },
  );
});

test('random bytes give frames or a clean protocol error, never anything else', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.uint8Array({ maxLength: 2000 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (startup, bytes, points) => {
        const reader = new MessageReader({ side: 'frontend', startup, maxMessage: 1000 });
        try {
          for (const c of split(Buffer.from(bytes), points)) {
            reader.push(c);
            for (let f = reader.next(); f; f = reader.next()) {
              if (f.type === STARTUP) {
                try {
                  parseStartupPacket(f);
                } catch (err) {
                  assert.ok(err instanceof PgProtocolError, String(err));
                }
                reader.startup = false;
              } else if (f.type === FrontendType.Bind) {
                try {
                  parseBind(f);
                } catch (err) {
                  assert.ok(err instanceof PgProtocolError, String(err));
                }
              }
            }
          }
        } catch (err) {
          assert.ok(err instanceof PgProtocolError, String(err));
          assert.throws(() => reader.next(), PgProtocolError);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('a startup packet over 10000 bytes is refused, naming the limit', () => {
  const reader = new MessageReader({ side: 'frontend', startup: true });
  const b = Buffer.alloc(8);
  b.writeInt32BE(MAX_STARTUP_PACKET + 1, 0);
  b.writeInt32BE(196608, 4);
  reader.push(b);
  assert.throws(() => reader.next(), /exceeds the limit of 10000 bytes/);
});

test('a regular message over the limit is refused before it is buffered', () => {
  const reader = new MessageReader({ side: 'frontend', maxMessage: 100 });
  reader.push(frame(FrontendType.Query, new Uint8Array(4)).subarray(0, 5));
  const big = Buffer.from([FrontendType.Query, 0, 0, 1, 0]);
  const r2 = new MessageReader({ side: 'frontend', maxMessage: 100 });
  r2.push(big);
  assert.throws(
    () => r2.next(),
    (e: PgProtocolError) => /exceeds the limit of 100 bytes/.test(e.message),
  );
});

test('an unknown message type is a protocol error', () => {
  const reader = new MessageReader({ side: 'frontend' });
  reader.push(frame(0x7a, new Uint8Array(0)));
  assert.throws(() => reader.next(), /invalid frontend message type "z"/);
});

test('a frame inside one chunk is a view, not a copy', () => {
  const reader = new MessageReader({ side: 'frontend' });
  const chunk = Buffer.concat([
    frame(FrontendType.Sync, new Uint8Array(0)),
    frame(FrontendType.Flush, new Uint8Array(0)),
  ]);
  reader.push(chunk);
  const f = reader.next()!;
  assert.equal(f.raw.buffer, chunk.buffer);
  assert.equal(reader.next()!.type, FrontendType.Flush);
  assert.equal(reader.next(), null);
});

test('ErrorResponse carries severity, code, message and hint fields', () => {
  const e = errorResponse({ severity: 'FATAL', code: '28P01', message: 'm', hint: 'h' });
  assert.equal(e.toString('latin1'), 'E\0\0\0\x20SFATAL\0VFATAL\0C28P01\0Mm\0Hh\0\0');
});
