import assert from 'node:assert/strict';
import { PassThrough, Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { relayBody } from './relay-body.ts';

function sink(opts: { slow?: boolean } = {}): Writable & { chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    highWaterMark: 16,
    write(chunk, _enc, cb) {
      chunks.push(chunk);
      if (opts.slow) setTimeout(cb, 1);
      else cb();
    },
  }) as Writable & { chunks: Buffer[] };
  w.chunks = chunks;
  return w;
}

test('the whole body arrives, in order, with backpressure from a slow caller', async () => {
  const parts = Array.from({ length: 200 }, (_, i) => Buffer.from(`chunk ${i};`));
  const dst = sink({ slow: true });
  await relayBody(Readable.from(parts), dst);
  assert.equal(Buffer.concat(dst.chunks).toString(), Buffer.concat(parts).toString());
});

test('an upstream error destroys the caller side and rejects', async () => {
  const src = new PassThrough();
  const dst = sink();
  const p = relayBody(src, dst);
  src.write('partial');
  src.destroy(new Error('upstream reset'));
  await assert.rejects(p, /upstream reset/);
  assert.equal(dst.destroyed, true);
});

test('a caller that goes away stops the upstream body and rejects', async () => {
  const src = new PassThrough();
  const dst = sink();
  const p = relayBody(src, dst);
  src.write('partial');
  dst.destroy();
  await assert.rejects(p, /caller closed/);
  assert.equal(src.destroyed, true);
});

test('an upstream body that closes without ending rejects', async () => {
  const src = new PassThrough();
  const dst = sink();
  const p = relayBody(src, dst);
  src.write('partial');
  src.destroy();
  await assert.rejects(p, /mid-body/);
});
