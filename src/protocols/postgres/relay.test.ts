import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MessageReader } from './codec.ts';
import { errorResponse, noticeResponse, readyForQuery } from './messages.ts';
import { BackendRelay } from './relay.ts';

function msg(type: string, body: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = type.charCodeAt(0);
  b.writeInt32BE(4 + body.length, 1);
  Buffer.from(body).copy(b, 5);
  return b;
}

const backendMessage = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => msg('D', b)),
  fc.uint8Array({ maxLength: 40 }).map((b) => msg('C', b)),
  fc.constantFrom('I', 'T', 'E').map((s) => readyForQuery(s.charCodeAt(0))),
  fc.constant(msg('K', new Uint8Array(8))),
  fc
    .constantFrom('plain', 'airlock_nonce')
    .map((m) => errorResponse({ severity: 'ERROR', code: '42601', message: m })),
);

function splitAt(bytes: Buffer, points: number[]): Buffer[] {
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

test('the relay passes messages through unchanged, reads statuses, drops key data, rewrites marked errors', () => {
  const denial = errorResponse({ severity: 'ERROR', code: '42501', message: 'denied by Airlock: no' });
  fc.assert(
    fc.property(
      fc.array(backendMessage, { maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 5 }),
      (msgs, points, injectAt) => {
        const statuses: number[] = [];
        const relay = new BackendRelay({
          ready: (s) => statuses.push(s),
          wantErrors: () => true,
          error: (raw) => (raw.includes(Buffer.from('airlock_nonce')) ? denial : undefined),
        });
        const notice = noticeResponse({ severity: 'NOTICE', code: '00000', message: 'waiting' });
        const out: Buffer[] = [];
        const chunks = splitAt(Buffer.concat(msgs), points);
        let injected = 0;
        chunks.forEach((c, i) => {
          relay.process(c, out);
          if (injectAt.includes(i)) {
            injected++;
            if (!relay.inject(notice)) out.push(notice);
          }
        });
        const expected = msgs
          .filter((m) => m[0] !== 0x4b)
          .map((m) => (m[0] === 0x45 && m.includes(Buffer.from('airlock_nonce')) ? denial : m));
        assert.deepEqual(
          statuses,
          msgs.filter((m) => m[0] === 0x5a).map((m) => m[5]),
        );
        // Re-frame what the caller got: every message whole, notices only between messages.
        const reader = new MessageReader({ side: 'backend' });
        reader.push(Buffer.concat(out));
        const got: Buffer[] = [];
        for (let f = reader.next(); f; f = reader.next()) got.push(Buffer.from(f.raw));
        const withoutNotices = got.filter((g) => !g.equals(notice));
        assert.deepEqual(withoutNotices, expected);
        // An injection still waiting for a boundary goes out with the next target bytes.
        const sent = got.length - withoutNotices.length;
        assert.ok(sent <= injected && sent >= injected - 1);
      },
    ),
    { numRuns: 300 },
  );
});
