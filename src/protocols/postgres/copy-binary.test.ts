import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type BinaryCopyItem,
  BinaryCopyReader,
  CopyBinaryError,
  encodeTuple,
  SIGNATURE,
} from './copy-binary.ts';

const MAX = 1 << 20;

function header(ext: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(8);
  h.writeInt32BE(0, 0);
  h.writeInt32BE(ext.length, 4);
  return Buffer.concat([SIGNATURE, h, ext]);
}

const TRAILER = Buffer.from([0xff, 0xff]);

function stream(tuples: readonly (Buffer | null)[][], ext?: Buffer): Buffer {
  return Buffer.concat([header(ext), ...tuples.map(encodeTuple), TRAILER]);
}

function readAll(
  chunks: readonly Buffer[],
  max = MAX,
): { items: BinaryCopyItem[]; reader: BinaryCopyReader } {
  const reader = new BinaryCopyReader(max);
  const items = chunks.flatMap((c) => reader.push(c));
  return { items, reader };
}

function tuplesOf(items: readonly BinaryCopyItem[]): (string | null)[][] {
  return items.flatMap((i) => (i.t === 'tuple' ? [i.fields.map((f) => (f ? f.toString('hex') : null))] : []));
}

test('a stream as PostgreSQL writes it reads as header, tuples and trailer, each raw slice exact', () => {
  const tuples = [[Buffer.from('a@example.com'), null, Buffer.from([0, 0, 0, 7])], []];
  const bytes = stream(tuples, Buffer.from('xy'));
  const { items, reader } = readAll([bytes]);
  assert.deepEqual(
    items.map((i) => i.t),
    ['header', 'tuple', 'tuple', 'trailer'],
  );
  assert.ok(reader.done);
  assert.equal(reader.held, 0);
  assert.deepEqual(Buffer.concat(items.map((i) => i.raw)), bytes);
  assert.deepEqual(tuplesOf(items), [[Buffer.from('a@example.com').toString('hex'), null, '00000007'], []]);
});

test('a tuple cut across messages is held until whole', () => {
  const bytes = stream([[Buffer.from('hello')]]);
  const reader = new BinaryCopyReader(MAX);
  assert.deepEqual(
    reader.push(bytes.subarray(0, 25)).map((i) => i.t),
    ['header'],
  );
  assert.equal(reader.held, 6);
  assert.deepEqual(reader.push(bytes.subarray(25, 28)), []);
  const rest = reader.push(bytes.subarray(28));
  assert.deepEqual(
    rest.map((i) => i.t),
    ['tuple', 'trailer'],
  );
});

test('a tuple larger than the bound is refused as soon as its size is known', () => {
  const big = stream([[Buffer.alloc(5000)]]);
  const reader = new BinaryCopyReader(4096);
  assert.throws(() => reader.push(big.subarray(0, 40)), /larger than 4096 bytes/);
  // Many small messages of one tuple without its length: refused once the held bytes pass it.
  const fields = Array.from({ length: 2000 }, () => null);
  const wide = Buffer.concat([header(), encodeTuple(fields)]);
  const r2 = new BinaryCopyReader(4096);
  assert.throws(() => {
    for (let i = 0; i < wide.length; i += 100) r2.push(wide.subarray(i, i + 100));
  }, CopyBinaryError);
});

test('what is not binary COPY is refused with the reader’s own error', () => {
  assert.throws(() => readAll([Buffer.from('1\ttext row\n')]), /signature/);
  const flagged = header();
  flagged.writeUInt32BE(1 << 16, 11);
  assert.throws(() => readAll([flagged]), /flags/);
  assert.throws(() => readAll([Buffer.concat([header(), Buffer.from([0xff, 0xfe])])]), /field count/);
  assert.throws(() => readAll([Buffer.concat([stream([]), Buffer.from([0])])]), /after its trailer/);
  const badLen = Buffer.concat([header(), Buffer.from([0, 1, 0xff, 0xff, 0xff, 0xfe])]);
  assert.throws(() => readAll([badLen]), /length of -2/);
});

const field = fc.option(
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  { nil: null },
);
const tuples = fc.array(fc.array(field, { maxLength: 6 }), { maxLength: 12 });

test('the same bytes cut at any points read as the same tuples', () => {
  fc.assert(
    fc.property(
      tuples,
      fc.uint8Array({ maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (ts, ext, cuts) => {
        const bytes = stream(ts, Buffer.from(ext));
        const whole = readAll([bytes]).items;
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of [...points, bytes.length]) {
          chunks.push(bytes.subarray(prev, p));
          prev = p;
        }
        const { items, reader } = readAll(chunks);
        assert.ok(reader.done);
        assert.deepEqual(tuplesOf(items), tuplesOf(whole));
        assert.deepEqual(
          tuplesOf(items),
          ts.map((t) => t.map((f) => (f ? f.toString('hex') : null))),
        );
        assert.deepEqual(Buffer.concat(items.map((i) => i.raw)), bytes);
      },
    ),
  );
});

test('random bytes never throw anything but the reader’s own error', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
      (signed, chunks) => {
        const reader = new BinaryCopyReader(512);
        const parts: Buffer[] = chunks.map((c) => Buffer.from(c));
        if (signed) parts.unshift(header());
        try {
          for (const p of parts) reader.push(p);
        } catch (err) {
          assert.ok(err instanceof CopyBinaryError, String(err));
        }
      },
    ),
  );
});
