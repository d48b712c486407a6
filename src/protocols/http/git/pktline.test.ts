import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FLUSH, PktLineReader, pkt, sideband } from './pktline.ts';
import { parsePushRequest } from './receive-pack.ts';

const OLD = 'a'.repeat(40);
const NEW = 'b'.repeat(40);
const ZERO = '0'.repeat(40);

function pushBody(pack: Buffer): Buffer {
  return Buffer.concat([
    pkt(`${OLD} ${NEW} refs/heads/main\0report-status side-band-64k agent=git/2.39\n`),
    pkt(`${ZERO} ${NEW} refs/tags/v1\n`),
    FLUSH,
    pack,
  ]);
}

describe('pkt-line', () => {
  it('reads the same packets whatever way the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.constant(null)), {
          maxLength: 20,
        }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (items, cuts) => {
          const wire = Buffer.concat(items.map((i) => (i === null ? FLUSH : pkt(Buffer.from(i)))));
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const reader = new PktLineReader();
          const got: (Buffer | null)[] = [];
          let last = 0;
          for (const p of [...points, wire.length]) {
            for (const packet of reader.push(wire.subarray(last, p)))
              got.push(packet.type === 'flush' ? null : packet.type === 'data' ? packet.payload : null);
            last = p;
          }
          assert.equal(reader.rest().length, 0);
          assert.deepEqual(
            got.map((g) => (g === null ? null : g.toString('hex'))),
            items.map((i) => (i === null ? null : Buffer.from(i).toString('hex'))),
          );
        },
      ),
    );
  });

  it('rejects a malformed length instead of guessing', () => {
    assert.throws(() => new PktLineReader().push(Buffer.from('zz12')), /bad pkt-line length/);
    assert.throws(() => new PktLineReader().push(Buffer.from('0003')), /out of range/);
  });

  it('splits side-band data at the 64k limit', () => {
    const big = Buffer.alloc(70_000, 1);
    const reader = new PktLineReader();
    const pkts = reader.push(sideband(1, big));
    assert.equal(pkts.length, 2);
  });
});

describe('receive-pack request', () => {
  it('parses commands and capabilities and leaves the pack untouched', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (packBytes) => {
        const pack = Buffer.concat([Buffer.from('PACK'), Buffer.from(packBytes)]);
        const r = parsePushRequest(pushBody(pack));
        assert.deepEqual(r.updates, [
          { oldOid: OLD, newOid: NEW, ref: 'refs/heads/main' },
          { oldOid: ZERO, newOid: NEW, ref: 'refs/tags/v1' },
        ]);
        assert.ok(r.capabilities.includes('report-status'));
        assert.ok(r.pack.equals(pack));
      }),
    );
  });

  it('refuses a body that is not a push', () => {
    assert.throws(() => parsePushRequest(Buffer.concat([pkt('hello\n'), FLUSH])), /not a ref update/);
    assert.throws(() => parsePushRequest(pkt(`${OLD} ${NEW} refs/heads/x\n`)), /without a flush/);
  });
});
