/**
 * Fuzz target for the asciicast v2 writer: terminal output and input as arbitrary byte chunks
 * (UTF-8 text cut inside characters, invalid sequences, control bytes, quotes) interleaved and
 * split anywhere. Every line written must be JSON, the file must read back as asciicast v2, and
 * each direction's text must reassemble to the bytes decoded in one piece.
 * https://docs.asciinema.org/manual/asciicast/v2/
 */
import assert from 'node:assert/strict';
import { TextDecoder } from 'node:util';
import fc from 'fast-check';
import { AsciicastWriter, parseAsciicast } from '../../src/core/recording/asciicast.ts';
import type { RecordingMeta, RecordingWriter } from '../../src/core/recording/types.ts';
import { type FuzzTarget, splitAt } from './targets.ts';

/** Collects what the writer queues, as the recorder's file would hold it. */
function memoryWriter(): RecordingWriter & { text(): string } {
  const chunks: Buffer[] = [];
  return {
    id: 'fuzz',
    sessionId: 'fuzz',
    format: 'asciicast-v2',
    write(chunk) {
      chunks.push(Buffer.from(chunk));
      return true;
    },
    drained: async () => {},
    close: async () => ({}) as RecordingMeta,
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}

const terminalBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 80 }).map((s) => Buffer.from(s, 'utf8')),
  fc.string({ unit: 'binary', maxLength: 80 }).map((s) => Buffer.from(s, 'utf8')),
  fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
  fc
    .constantFrom('\x1b[31m', '\r\n', '"\\', '\u2028', '\x00', '\xff\xfe', 'é', '😀')
    .map((s) => Buffer.from(s)),
);

interface Session {
  readonly out: Buffer;
  readonly in: Buffer;
  readonly outCuts: readonly number[];
  readonly inCuts: readonly number[];
  readonly resizes: readonly [number, number][];
  readonly marker: string;
}

const session: fc.Arbitrary<Session> = fc.record({
  out: fc.array(terminalBytes, { maxLength: 8 }).map((xs) => Buffer.concat(xs)),
  in: fc.array(terminalBytes, { maxLength: 4 }).map((xs) => Buffer.concat(xs)),
  outCuts: fc.array(fc.nat(), { maxLength: 20 }),
  inCuts: fc.array(fc.nat(), { maxLength: 10 }),
  resizes: fc.array(fc.tuple(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 200 })), {
    maxLength: 2,
  }),
  marker: fc.string({ maxLength: 20 }),
});

async function record(s: Session): Promise<void> {
  const w = memoryWriter();
  let now = 1_700_000_000_000;
  const writer = new AsciicastWriter(w, { width: 80, height: 24, title: s.marker }, () => (now += 7));
  const outs = splitAt(s.out, s.outCuts);
  const ins = splitAt(s.in, s.inCuts);
  // Interleave the two directions as a terminal would.
  for (let i = 0; i < Math.max(outs.length, ins.length); i++) {
    if (i < outs.length) writer.output(outs[i]!);
    if (i < ins.length) writer.input(ins[i]!);
    if (i < s.resizes.length) writer.resize(...s.resizes[i]!);
    if (i === 1) writer.marker(s.marker);
  }
  await writer.close();

  const text = w.text();
  assert.ok(text.endsWith('\n'));
  for (const line of text.slice(0, -1).split('\n')) JSON.parse(line);
  const parsed = parseAsciicast(text);
  assert.equal(parsed.header.width, 80);
  const joined = (code: string) =>
    parsed.events
      .filter((e) => e.code === code)
      .map((e) => e.data)
      .join('');
  assert.equal(joined('o'), new TextDecoder('utf-8').decode(s.out));
  assert.equal(joined('i'), new TextDecoder('utf-8').decode(s.in));
  let last = 0;
  for (const e of parsed.events) {
    assert.ok(e.time >= last, 'time went backwards');
    last = e.time;
  }
}

export const ASCIICAST_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'asciicast: writer on byte chunks split anywhere (JSON lines, UTF-8 reassembles)',
    quickRuns: 300,
    property: () => fc.asyncProperty(fc.tuple(session), async ([s]) => record(s)),
  },
];
