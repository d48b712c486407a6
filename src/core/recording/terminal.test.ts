import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SessionMasker } from '../masking/masker.ts';
import { AsciicastWriter, parseAsciicast } from './asciicast.ts';
import { TerminalRecording } from './terminal.ts';
import type { RecordingMeta, RecordingWriter } from './types.ts';

function memoryWriter(): RecordingWriter & { text(): string } {
  let text = '';
  return {
    id: 'r1',
    sessionId: 's1',
    format: 'asciicast-v2',
    write(chunk) {
      text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return true;
    },
    drained: async () => {},
    close: async () => ({}) as RecordingMeta,
    text: () => text,
  };
}

const masker = new SessionMasker([
  { index: 0, columns: [], detectors: ['email'], strategy: 'redact', exempt: { principals: [], groups: [] } },
]);

function record(chunks: readonly Buffer[], withMasker = true, max?: number) {
  const w = memoryWriter();
  const rec = new TerminalRecording(new AsciicastWriter(w, { width: 80, height: 24 }), {
    masker: withMasker ? masker : undefined,
    maxRecordedBytes: max,
  });
  for (const c of chunks) rec.output(c);
  return rec.close().then(() => parseAsciicast(w.text()));
}

const outputOf = (cast: Awaited<ReturnType<typeof record>>) =>
  cast.events
    .filter((e) => e.code === 'o')
    .map((e) => e.data)
    .join('');

test('recorded output is masked; a secret split across chunks is still found', async () => {
  const cast = await record([Buffer.from('user: alice.sm'), Buffer.from('ith@example.com\nnext ')]);
  const out = outputOf(cast);
  assert.doesNotMatch(out, /alice\.smith@example\.com/);
  assert.match(out, /^user: .*\nnext $/);
});

test('past the byte bound output is counted, not kept, and a marker says so', async () => {
  const cast = await record([Buffer.alloc(10, 0x61), Buffer.alloc(10, 0x62)], false, 15);
  assert.equal(outputOf(cast), 'aaaaaaaaaa');
  assert.ok(cast.events.some((e) => e.code === 'm' && e.data.includes('10 more bytes')));
});

test('the bound is on the stored size: control bytes stored as six-character escapes count six times', async () => {
  const w = memoryWriter();
  const rec = new TerminalRecording(new AsciicastWriter(w, { width: 80, height: 24 }), {
    maxRecordedBytes: 1000,
  });
  for (let i = 0; i < 100; i++) rec.output(Buffer.alloc(100, 0));
  await rec.close();
  const lines = w.text().split('\n').slice(1).filter(Boolean);
  const outputLines = lines.filter((l) => JSON.parse(l)[1] === 'o');
  const stored = outputLines.reduce((n, l) => n + l.length + 1, 0);
  // At most one chunk past the bound (100 NULs escape to 600 characters, plus the event's frame).
  assert.ok(stored <= 1000 + 6 * 100 + 40, `stored ${stored}`);
  assert.ok(outputLines.length >= 1);
  const marker = lines.map((l) => JSON.parse(l)).find((e) => e[1] === 'm');
  assert.match(marker[2], /more bytes of output were passed on but not recorded/);
});

test('property: however the output is split, the recording reads the same (UTF-8 and masking)', async () => {
  const text = 'héllo ✓ mail bob@example.org now\nzwei € café\n終わり';
  const whole = outputOf(await record([Buffer.from(text)]));
  assert.doesNotMatch(whole, /bob@example\.org/);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (cuts) => {
      const bytes = Buffer.from(text);
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let at = 0;
      for (const p of [...points, bytes.length]) {
        chunks.push(bytes.subarray(at, p));
        at = p;
      }
      assert.equal(outputOf(await record(chunks)), whole);
      assert.equal(outputOf(await record(chunks, false)), text);
    }),
    { numRuns: 300 },
  );
});
