/**
 * Fuzz targets for the kubectl stream decoders. exec/attach (`v5.channel.k8s.io`): a valid
 * session's streams (stdin, resize JSON, stdout, the exit Status) cut into messages anywhere,
 * then mutated or replaced by random messages; the decoder must return events or throw its own
 * ChannelProtocolError, and an unmutated session must decode to the bytes and sizes it was made
 * of. port-forward (SPDY/3.1 in a WebSocket): SYN_STREAM and DATA frames with header blocks
 * written by Airlock's encoder, cut anywhere, mutated or random; frames and header blocks must
 * decode to what was written or fail with SpdyProtocolError.
 * https://github.com/kubernetes/enhancements/tree/master/keps/sig-api-machinery/4006-transition-spdy-to-websockets
 * https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ChannelDecoder,
  ChannelProtocolError,
  channelMessage,
  ERROR,
  RESIZE,
  STDIN,
  STDOUT,
} from '../../src/protocols/http/kubernetes/channels.ts';
import {
  dataFrame,
  encodeFrame,
  FrameReader,
  HeaderDeflater,
  HeaderInflater,
  type HeaderList,
  headersOf,
  SpdyProtocolError,
  SYN_STREAM,
  withHeaders,
} from '../../src/protocols/http/kubernetes/spdy-frames.ts';
import { type FuzzTarget, mutated, splitAt } from './targets.ts';

interface Session {
  readonly stdin: Buffer;
  readonly sizes: [number, number][];
  readonly stdout: Buffer;
  readonly exit: number;
}

const session: fc.Arbitrary<Session> = fc.record({
  stdin: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  sizes: fc.array(fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })), {
    maxLength: 4,
  }),
  stdout: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  exit: fc.integer({ min: 0, max: 255 }),
});

function statusOf(exit: number): string {
  return JSON.stringify(
    exit === 0
      ? { kind: 'Status', status: 'Success' }
      : {
          kind: 'Status',
          status: 'Failure',
          reason: 'NonZeroExitCode',
          details: { causes: [{ reason: 'ExitCode', message: String(exit) }] },
        },
  );
}

/** One direction's messages: each stream cut at the points, in stream order. */
function messages(streams: [number, Buffer][], points: readonly number[]): Buffer[] {
  return streams.flatMap(([channel, bytes]) =>
    splitAt(bytes, points).map((part) => channelMessage(channel, part)),
  );
}

function decodeAll(d: ChannelDecoder, side: 'client' | 'server', list: readonly Buffer[]) {
  const events = [];
  for (const m of list) {
    try {
      events.push(...(side === 'client' ? d.fromClient(m) : d.fromServer(m)));
    } catch (err) {
      assert.ok(err instanceof ChannelProtocolError, String(err));
      return { events, failed: true };
    }
  }
  return { events, failed: false };
}

export const KUBE_CHANNEL_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'kubernetes: exec channel messages cut anywhere, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          session,
          fc.array(fc.nat(), { maxLength: 12 }),
          fc.oneof(
            fc.constant(undefined),
            fc.array(mutated(fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b))), {
              maxLength: 8,
            }),
          ),
        ),
        ([s, points, noise]) => {
          const resize = Buffer.from(s.sizes.map(([w, h]) => `{"Width":${w},"Height":${h}}`).join(' '));
          const fromClient = messages(
            [
              [STDIN, s.stdin],
              [RESIZE, resize],
            ],
            points,
          );
          const fromServer = messages(
            [
              [STDOUT, s.stdout],
              [ERROR, Buffer.from(statusOf(s.exit))],
            ],
            points,
          );
          if (noise) {
            // Random messages mixed in: only clean errors or events may come out.
            decodeAll(new ChannelDecoder('v5.channel.k8s.io'), 'client', [...noise, ...fromClient]);
            decodeAll(new ChannelDecoder('v4.channel.k8s.io'), 'server', [...fromServer, ...noise]);
            return;
          }
          const d = new ChannelDecoder('v5.channel.k8s.io');
          const c = decodeAll(d, 'client', fromClient);
          const v = decodeAll(d, 'server', fromServer);
          assert.equal(c.failed || v.failed, false);
          const data = (events: typeof c.events, type: string) =>
            Buffer.concat(events.flatMap((e) => (e.type === type && 'data' in e ? [e.data] : [])));
          assert.deepEqual(data(c.events, 'stdin'), s.stdin);
          assert.deepEqual(data(v.events, 'stdout'), s.stdout);
          assert.deepEqual(
            c.events.flatMap((e) => (e.type === 'resize' ? [[e.cols, e.rows]] : [])),
            s.sizes,
          );
          const exits = v.events.flatMap((e) => (e.type === 'status' ? [e.exitCode] : []));
          assert.deepEqual(exits, [s.exit]);
        },
      ),
  },
  {
    name: 'kubernetes: port-forward SPDY frames cut anywhere, mutated and random',
    quickRuns: 200,
    property: () =>
      fc.property(
        fc.tuple(
          spdyStream.chain((st) =>
            fc.tuple(fc.constant(st), fc.option(mutated(fc.constant(st.bytes)), { nil: undefined })),
          ),
          fc.array(fc.nat(), { maxLength: 12 }),
        ),
        ([[{ bytes, written }, changed], points]) => {
          const mutate = changed !== undefined;
          const input = changed ?? bytes;
          const reader = new FrameReader();
          const inflater = new HeaderInflater();
          const headers: HeaderList[] = [];
          const data: Buffer[] = [];
          try {
            for (const part of splitAt(input, points))
              for (const f of reader.push(part)) {
                if (f.control && f.type === SYN_STREAM) headers.push(headersOf(f, inflater));
                else if (!f.control) data.push(f.data);
              }
          } catch (err) {
            assert.ok(err instanceof SpdyProtocolError, String(err));
            assert.ok(mutate, `a valid stream failed: ${(err as Error).message}`);
            return;
          }
          if (mutate) return;
          assert.deepEqual(
            headers,
            written.map((w) => w.headers),
          );
          assert.deepEqual(Buffer.concat(data), Buffer.concat(written.map((w) => w.data)));
        },
      ),
  },
];

const latin1 = fc.string({ maxLength: 24 }).map((t) => Buffer.from(t, 'latin1').toString('latin1'));

/** Frames as kubectl's side of a tunnel would send them, with headers from Airlock's encoder. */
const spdyStream = fc
  .array(
    fc.record({
      headers: fc.array(fc.tuple(latin1, latin1), { maxLength: 4 }),
      data: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    }),
    { minLength: 1, maxLength: 6 },
  )
  .map((written) => {
    const deflater = new HeaderDeflater();
    const template = {
      control: true as const,
      type: SYN_STREAM,
      flags: 0,
      data: Buffer.alloc(10),
    };
    const frames = written.flatMap((w, i) => {
      const syn = { ...template, data: Buffer.from(template.data) };
      syn.data.writeUInt32BE(2 * i + 1, 0);
      return [withHeaders(syn, w.headers, deflater), dataFrame(2 * i + 1, w.data)];
    });
    return {
      bytes: Buffer.concat([
        ...frames,
        encodeFrame({ control: true, type: 6, flags: 0, data: Buffer.alloc(4) }),
      ]),
      written,
    };
  });
