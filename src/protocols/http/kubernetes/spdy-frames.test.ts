import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  dataFrame,
  FrameReader,
  HeaderDeflater,
  HeaderInflater,
  headersOf,
  SPDY_DICTIONARY,
  SpdyProtocolError,
  SYN_STREAM,
  withHeaders,
} from './spdy-frames.ts';

/** The first frame kubectl 1.32 port-forward sent through its tunnel: SYN_STREAM of an error stream. */
const KUBECTL_SYN_STREAM = Buffer.from(
  '800300010000003e000000010000000000' +
    '0078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c60616061c0c0c0c0590489c64c50f2663400000000ffff',
  'hex',
);

describe('SPDY/3.1 frames of kubectl port-forward', () => {
  it('the dictionary is the one kubectl primes its compressor with', () => {
    assert.equal(SPDY_DICTIONARY.length, 1423);
  });

  it("decodes kubectl's own SYN_STREAM, cut anywhere", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(KUBECTL_SYN_STREAM.length), { maxLength: 6 }), (cuts) => {
        const reader = new FrameReader();
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const frames = [];
        let from = 0;
        for (const p of [...points, KUBECTL_SYN_STREAM.length]) {
          frames.push(...reader.push(KUBECTL_SYN_STREAM.subarray(from, p)));
          from = p;
        }
        assert.equal(frames.length, 1);
        const f = frames[0]!;
        assert.ok(f.control && f.type === SYN_STREAM);
        assert.deepEqual(headersOf(f, new HeaderInflater()), [
          ['streamtype', 'error'],
          ['port', '8080'],
          ['requestid', '0'],
        ]);
      }),
    );
  });

  it("Airlock's re-encoded header blocks decode to the same headers, block after block", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })), { maxLength: 5 }),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        (blocks) => {
          const deflater = new HeaderDeflater();
          const inflater = new HeaderInflater();
          const reader = new FrameReader();
          const template = reader.push(KUBECTL_SYN_STREAM)[0]!;
          assert.ok(template.control);
          for (const headers of blocks) {
            const latin = headers.map(
              ([n, v]) =>
                [
                  Buffer.from(n, 'latin1').toString('latin1'),
                  Buffer.from(v, 'latin1').toString('latin1'),
                ] as const,
            );
            const bytes = Buffer.concat([
              withHeaders(template, latin, deflater),
              dataFrame(1, Buffer.from('x')),
            ]);
            const [syn, data] = reader.push(bytes);
            assert.ok(syn?.control);
            assert.deepEqual(headersOf(syn, inflater), latin);
            assert.equal(data?.control, false);
          }
        },
      ),
    );
  });

  it('refuses oversized frames, other versions, and header blocks that do not inflate', () => {
    assert.throws(() => new FrameReader().push(Buffer.from('8003000100ffffff', 'hex')), SpdyProtocolError);
    assert.throws(() => new FrameReader().push(Buffer.from('8002000100000000', 'hex')), SpdyProtocolError);
    const bad = new FrameReader().push(
      Buffer.from('800300010000000e00000001000000000000deadbeef', 'hex'),
    )[0]!;
    assert.ok(bad.control);
    assert.throws(() => headersOf(bad, new HeaderInflater()), SpdyProtocolError);
  });
});
