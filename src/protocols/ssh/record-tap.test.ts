import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import fc from 'fast-check';
import { SessionMasker } from '../../core/masking/masker.ts';
import { AsciicastWriter, parseAsciicast } from '../../core/recording/asciicast.ts';
import { TerminalRecording } from '../../core/recording/terminal.ts';
import type { RecordingMeta, RecordingWriter } from '../../core/recording/types.ts';
import { RecordTap, watchBacklog } from './record-tap.ts';

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

function tapped(withMasker = false) {
  const w = memoryWriter();
  const rec = new TerminalRecording(new AsciicastWriter(w, { width: 80, height: 24 }), {
    masker: withMasker ? masker : undefined,
  });
  const tap = new RecordTap(rec);
  const events = async () => {
    tap.flush();
    await rec.close();
    return parseAsciicast(w.text()).events;
  };
  return { tap, events };
}

test('output of one turn becomes one event, after the turn; a character split across packets stays whole', async () => {
  const { tap, events } = tapped();
  const text = Buffer.from('héllo ✓ wörld\n');
  tap.output(text.subarray(0, 2)); // splits the é
  tap.output(text.subarray(2, 7));
  tap.output(text.subarray(7));
  await nextTurn();
  tap.output(Buffer.from('second turn\n'));
  const out = (await events()).filter((e) => e.code === 'o').map((e) => e.data);
  assert.deepEqual(out, ['héllo ✓ wörld\n', 'second turn\n']);
});

test('keystrokes and window changes come after the output the caller saw before them', async () => {
  const { tap, events } = tapped();
  tap.output(Buffer.from('$ '));
  tap.input(Buffer.from('ls\r'));
  tap.output(Buffer.from('file\r\n'));
  tap.resize(100, 40);
  tap.output(Buffer.from('$ '));
  const codes = (await events()).map((e) => `${e.code}:${e.data}`);
  assert.deepEqual(codes, ['o:$ ', 'i:ls\r', 'o:file\r\n', 'r:100x40', 'o:$ ']);
});

test('a secret split across packets of one turn is masked in the recording', async () => {
  const { tap, events } = tapped(true);
  tap.output(Buffer.from('contact: carol.jo'));
  tap.output(Buffer.from('nes@example.com\n'));
  const out = (await events())
    .filter((e) => e.code === 'o')
    .map((e) => e.data)
    .join('');
  assert.match(out, /^contact: /);
  assert.doesNotMatch(out, /carol\.jones@example\.com/);
});

test('whatever the packet and turn boundaries, the recorded output is the text that was sent', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.string({ unit: 'grapheme', maxLength: 300 }),
      fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 20 }),
      async (text, cuts) => {
        const bytes = Buffer.from(text);
        const { tap, events } = tapped();
        const points = [...new Set(cuts.map(([c]) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        let at = 0;
        for (const [i, p] of points.entries()) {
          tap.output(bytes.subarray(at, p));
          at = p;
          if (cuts[i]?.[1]) await nextTurn();
        }
        tap.output(bytes.subarray(at));
        const out = (await events())
          .filter((e) => e.code === 'o')
          .map((e) => e.data)
          .join('');
        assert.equal(out, text);
      },
    ),
    { numRuns: 200 },
  );
});

test('a recording writer that falls behind pauses the host until it has caught up', async () => {
  let queued = 0;
  let release: (() => void) | undefined;
  let text = '';
  const slow: RecordingWriter = {
    id: 'r2',
    sessionId: 's2',
    format: 'asciicast-v2',
    write(chunk) {
      text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      queued += chunk.length;
      return queued < 1000;
    },
    drained: () =>
      queued < 1000
        ? Promise.resolve()
        : new Promise<void>((ok) => {
            release = () => {
              queued = 0;
              ok();
            };
          }),
    close: async () => ({}) as RecordingMeta,
  };
  const { writer, backlog } = watchBacklog(slow);
  const rec = new TerminalRecording(new AsciicastWriter(writer, { width: 80, height: 24 }));
  const flow: string[] = [];
  const tap = new RecordTap(rec, backlog, {
    pause: () => flow.push('pause'),
    resume: () => flow.push('resume'),
  });
  tap.output(Buffer.from('small\n'));
  await nextTurn();
  assert.deepEqual(flow, []);
  const big = '\u0000'.repeat(400); // six characters each once escaped
  tap.output(Buffer.from(big));
  await nextTurn();
  assert.deepEqual(flow, ['pause']);
  release?.();
  await nextTurn();
  assert.deepEqual(flow, ['pause', 'resume']);
  await rec.close();
  const out = parseAsciicast(text)
    .events.filter((e) => e.code === 'o')
    .map((e) => e.data)
    .join('');
  assert.equal(out, `small\n${big}`);
});
