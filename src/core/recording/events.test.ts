import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EventStreamWriter } from './events.ts';
import type { RecordingWriter } from './types.ts';

function capture(): { writer: RecordingWriter; lines: string[] } {
  const lines: string[] = [];
  const writer = {
    write(chunk: string | Uint8Array) {
      lines.push(String(chunk));
      return true;
    },
  } as unknown as RecordingWriter;
  return { writer, lines };
}

test('an event line is the JSON of the fields followed by t and type', () => {
  fc.assert(
    fc.property(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
      fc.string({ maxLength: 10 }),
      fc.nat({ max: 10_000_000 }),
      (fields, type, ms) => {
        let now = 1_700_000_000_000;
        const { writer, lines } = capture();
        const ev = new EventStreamWriter(writer, {}, () => now);
        now += ms;
        ev.event(type, fields);
        const t = Number((ms / 1000).toFixed(6));
        assert.equal(lines[1], `${JSON.stringify({ ...fields, t, type })}\n`);
      },
    ),
    { numRuns: 1000 },
  );
});
