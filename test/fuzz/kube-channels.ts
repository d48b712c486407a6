/**
 * Fuzz target for the kubectl exec/attach channel decoder (`v5.channel.k8s.io`): a valid
 * session's streams (stdin, resize JSON, stdout, the exit Status) cut into messages anywhere,
 * then mutated or replaced by random messages. The decoder must return events or throw its own
 * ChannelProtocolError, and an unmutated session must decode to the bytes and sizes it was made of.
 * https://github.com/kubernetes/enhancements/tree/master/keps/sig-api-machinery/4006-transition-spdy-to-websockets
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
];
