import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ChannelDecoder,
  type ChannelEvent,
  ChannelProtocolError,
  channelMessage,
  ERROR,
  RESIZE,
  STDIN,
  STDOUT,
} from './channels.ts';

/** `bytes` cut at the given points (modulo its length) into messages of `channel`. */
function cut(channel: number, bytes: Buffer, points: readonly number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    out.push(channelMessage(channel, bytes.subarray(from, c)));
    from = c;
  }
  return out;
}

const concat = (events: ChannelEvent[], type: string) =>
  Buffer.concat(events.flatMap((e) => (e.type === type && 'data' in e ? [e.data] : [])));

describe('kubectl exec channel decoder', () => {
  it('stdin, resizes and the exit status come out whole however the streams were cut', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })), {
          maxLength: 6,
        }),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (stdin, sizes, exit, stdinCuts, resizeCuts, errorCuts) => {
          const d = new ChannelDecoder('v5.channel.k8s.io');
          // Resize objects are written back to back, some with whitespace between them.
          const resizeText = sizes
            .map(([w, h], i) => `${i % 2 ? ' ' : ''}{"Width":${w},"Height":${h}}`)
            .join('');
          const fromClient = [
            ...cut(STDIN, Buffer.from(stdin), stdinCuts),
            ...cut(RESIZE, Buffer.from(resizeText), resizeCuts),
          ];
          const clientEvents = fromClient.flatMap((m) => d.fromClient(m));
          assert.deepEqual(concat(clientEvents, 'stdin'), Buffer.from(stdin));
          assert.deepEqual(
            clientEvents.flatMap((e) => (e.type === 'resize' ? [[e.cols, e.rows]] : [])),
            sizes,
          );
          const status =
            exit === 0
              ? { kind: 'Status', status: 'Success', metadata: {} }
              : {
                  kind: 'Status',
                  status: 'Failure',
                  reason: 'NonZeroExitCode',
                  message: `command terminated with non-zero exit code: exit status ${exit}`,
                  details: { causes: [{ reason: 'ExitCode', message: String(exit) }] },
                };
          const serverEvents = cut(ERROR, Buffer.from(JSON.stringify(status)), errorCuts).flatMap((m) =>
            d.fromServer(m),
          );
          const statuses = serverEvents.filter((e) => e.type === 'status');
          assert.equal(statuses.length, 1);
          assert.equal(statuses[0]!.type === 'status' && statuses[0]!.exitCode, exit);
        },
      ),
    );
  });

  it('stdout split inside a UTF-8 character is passed on byte for byte', () => {
    const d = new ChannelDecoder('v4.channel.k8s.io');
    const text = Buffer.from('héllo wörld\n');
    const events = cut(STDOUT, text, [2, 3, 9]).flatMap((m) => d.fromServer(m));
    assert.deepEqual(concat(events, 'stdout'), text);
  });

  it('refuses streams a side does not write, bad resizes, and close signals outside v5', () => {
    const v5 = new ChannelDecoder('v5.channel.k8s.io');
    assert.throws(() => v5.fromClient(channelMessage(STDOUT, 'x')), ChannelProtocolError);
    assert.throws(() => v5.fromClient(Buffer.alloc(0)), ChannelProtocolError);
    assert.throws(() => v5.fromServer(channelMessage(STDIN, 'x')), ChannelProtocolError);
    assert.throws(
      () => v5.fromClient(channelMessage(RESIZE, '{"Width":-1,"Height":2}')),
      ChannelProtocolError,
    );
    assert.throws(() => v5.fromClient(channelMessage(RESIZE, '[1,2]')), ChannelProtocolError);
    assert.deepEqual(v5.fromClient(Buffer.from([255, STDIN])), [{ type: 'close', channel: STDIN }]);
    assert.throws(() => v5.fromClient(channelMessage(STDIN, 'late')), ChannelProtocolError);
    assert.throws(() => v5.fromClient(Buffer.from([255, STDOUT])), ChannelProtocolError);
    const v4 = new ChannelDecoder('v4.channel.k8s.io');
    assert.throws(() => v4.fromClient(Buffer.from([255, STDIN])), ChannelProtocolError);
  });

  it('an unfinished resize object is bounded', () => {
    const d = new ChannelDecoder('v5.channel.k8s.io');
    assert.throws(
      () => d.fromClient(channelMessage(RESIZE, `{"Width":${' '.repeat(70_000)}`)),
      ChannelProtocolError,
    );
  });
});
