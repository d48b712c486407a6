/**
 * Fuzz targets for Git smart HTTP: pkt-line framing split anywhere, and the receive-pack
 * request (ref-update commands, then the pack) valid, mutated and random. Only PktLineError and
 * PushParseError may end a parse, and a parsed push must name exactly the updates it carries.
 * https://git-scm.com/docs/protocol-common#_pkt_line_format
 * https://git-scm.com/docs/pack-protocol#_reference_update_request_and_packfile_transfer
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FLUSH,
  MAX_PKT,
  type Pkt,
  PktLineError,
  PktLineReader,
  pkt,
} from '../../src/protocols/http/git/pktline.ts';
import { PushParseError, parsePushRequest } from '../../src/protocols/http/git/receive-pack.ts';
import { type FuzzTarget, mutated, splitAt } from './targets.ts';

function cleanError(err: unknown): void {
  assert.ok(
    err instanceof PktLineError || err instanceof PushParseError,
    `not a pkt-line or push parse error: ${String(err)}`,
  );
}

const special = fc.constantFrom('0000', '0001', '0002');

/** pkt-line streams: data packets, flush, delimiter and response-end. */
const pktStream = (): fc.Arbitrary<Buffer> =>
  fc
    .array(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((b) => pkt(Buffer.from(b))),
        special.map((s) => Buffer.from(s)),
      ),
      { maxLength: 12 },
    )
    .map((xs) => Buffer.concat(xs));

function flat(p: Pkt): string {
  return p.type === 'data' ? `data:${p.payload.toString('hex')}` : p.type;
}

/**
 * The packets of a stream split anywhere are those of the stream fed a byte at a time (the
 * reader's finest split); a bad header ends both at the same packet.
 */
function readPkts(bytes: Buffer, points: readonly number[]): void {
  const read = (chunks: readonly Buffer[]) => {
    const reader = new PktLineReader();
    const out: string[] = [];
    let error: string | undefined;
    try {
      for (const c of chunks)
        for (const p of reader.push(c)) {
          if (p.type === 'data') assert.ok(p.payload.length <= MAX_PKT - 4);
          out.push(flat(p));
        }
    } catch (err) {
      cleanError(err);
      error = (err as Error).message;
    }
    return { out, error, rest: reader.rest().length };
  };
  const bytewise = read([...bytes].map((b) => Buffer.from([b])));
  const split = read(splitAt(bytes, points));
  assert.equal(split.error, bytewise.error);
  if (bytewise.error === undefined) {
    assert.deepEqual(split.out, bytewise.out);
    assert.equal(split.rest, bytewise.rest);
  }
  // Packets completed in the chunk that held the bad header are not handed out.
  else assert.deepEqual(split.out, bytewise.out.slice(0, split.out.length));
}

const oid = fc.oneof(
  fc.stringMatching(/^[0-9a-f]{40}$/),
  fc.stringMatching(/^[0-9a-f]{64}$/),
  fc.constant('0'.repeat(40)),
);
const refName = fc.oneof(
  fc.stringMatching(/^refs\/(heads|tags)\/[a-z0-9._/-]{1,20}$/),
  // Line terminators and NUL cannot be in a ref name: such a line is refused, tested by the
  // mutated and random inputs.
  fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\n\r\u2028\u2029\0]/.test(s)),
);

interface Push {
  readonly body: Buffer;
  readonly updates: readonly { oldOid: string; newOid: string; ref: string }[];
  readonly pack: Buffer;
}

const push = (): fc.Arbitrary<Push> =>
  fc
    .tuple(
      fc.array(fc.record({ oldOid: oid, newOid: oid, ref: refName }), { minLength: 1, maxLength: 5 }),
      fc.array(
        fc.constantFrom('report-status', 'side-band-64k', 'atomic', 'agent=git/2.45', 'push-options'),
        {
          maxLength: 4,
        },
      ),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    )
    .map(([updates, caps, pack]) => {
      const lines = updates.map((u, i) => {
        const line = `${u.oldOid} ${u.newOid} ${u.ref}`;
        // Capabilities ride on the first command after a NUL.
        return pkt(i === 0 && caps.length > 0 ? `${line}\0${caps.join(' ')}\n` : `${line}\n`);
      });
      return { body: Buffer.concat([...lines, FLUSH, pack]), updates, pack };
    });

function readPush(body: Buffer, expected?: Push): void {
  try {
    const r = parsePushRequest(body);
    for (const u of r.updates) {
      assert.match(u.oldOid, /^[0-9a-f]{40}([0-9a-f]{24})?$/);
      assert.match(u.newOid, /^[0-9a-f]{40}([0-9a-f]{24})?$/);
      assert.ok(u.ref.length > 0);
    }
    assert.ok(
      body.subarray(body.length - r.pack.length).equals(r.pack),
      'the pack is not the tail of the body',
    );
    if (expected) {
      assert.deepEqual(
        r.updates.map((u) => ({ ...u })),
        expected.updates.map((u) => ({ ...u })),
      );
      assert.ok(r.pack.equals(expected.pack), 'the pack was altered');
    }
  } catch (err) {
    if (expected) throw err;
    cleanError(err);
  }
}

export const GIT_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'git: pkt-line stream split anywhere, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          fc.oneof(
            pktStream(),
            mutated(pktStream()),
            fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
          ),
          fc.array(fc.nat(), { maxLength: 30 }),
        ),
        ([bytes, points]) => readPkts(bytes, points),
      ),
  },
  {
    name: 'git: receive-pack commands valid, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.oneof(
          push().map((p) => ({ body: p.body, expected: p as Push | undefined })),
          mutated(push().map((p) => p.body)).map((body) => ({ body, expected: undefined })),
          fc.uint8Array({ maxLength: 600 }).map((b) => ({ body: Buffer.from(b), expected: undefined })),
        ),
        ({ body, expected }) => readPush(body, expected),
      ),
  },
];
