import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import { maskerFor } from '../../core/masking/masker.ts';
import { parsePolicy } from '../../core/policy/load.ts';
import type { RelationInfo } from './catalog.ts';
import { initClassifier } from './classify.ts';
import { MessageReader, MessageWriter } from './codec.ts';
import { BinaryCopyReader, encodeTuple, SIGNATURE } from './copy-binary.ts';
import { MaskingRelay } from './masking-relay.ts';
import { noticeResponse, queryMessage, readyForQuery } from './messages.ts';

const policy = parsePolicy(`
connections:
  db: { type: postgres, upstream: { host: h, database: d, user: u } }
masking:
  - columns: ["public.people.email"]
    detectors: [email, credit_card]
    strategy: partial
`);
const masker = maskerFor(policy.masking, 'db', { name: 'agent', groups: [] })!;
const PEOPLE_OID = 16400;

before(() => initClassifier());

function rowDescription(
  cols: { name: string; table: number; attnum: number; type: number; format: number }[],
): Buffer {
  const w = new MessageWriter().int16(cols.length);
  for (const c of cols)
    w.cstring(c.name).int32(c.table).int16(c.attnum).int32(c.type).int16(-1).int32(-1).int16(c.format);
  return w.finish(0x54);
}

function dataRow(values: (string | null)[]): Buffer {
  const w = new MessageWriter().int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else {
      const b = Buffer.from(v, 'utf8');
      w.int32(b.length).bytes(b);
    }
  }
  return w.finish(0x44);
}

const complete = (tag: string) => new MessageWriter().cstring(tag).finish(0x43);

const PEOPLE: RelationInfo = {
  schema: 'public',
  table: 'people',
  kind: 'r',
  columns: ['id', 'email', 'pan', 'note'],
  types: [23, 25, 20, 25],
};

function relayFor(
  out: Buffer[],
  opts: { queryTypes?: readonly number[] | null; fail?: (m: string) => void } = {},
): MaskingRelay {
  return new MaskingRelay(masker, {
    ready: () => {},
    wantErrors: () => false,
    error: () => undefined,
    cached: (oid) =>
      oid === PEOPLE_OID ? { schema: 'public', table: 'people', columns: new Map([[2, 'email']]) } : null,
    lookup: async () => {},
    relations: (_schema, table) => (table === 'people' ? [PEOPLE] : []),
    lookupRelations: async () => {},
    queryTypes: () => opts.queryTypes,
    lookupQueryTypes: async () => {},
    write: (b) => out.push(...b),
    pauseUpstream: () => {},
    resumeUpstream: () => {},
    fail:
      opts.fail ??
      ((m) => {
        throw new Error(m);
      }),
  });
}

function types(bytes: Buffer): string {
  const r = new MessageReader({ side: 'backend' });
  r.push(bytes);
  let s = '';
  for (let f = r.next(); f; f = r.next()) s += String.fromCharCode(f.type);
  assert.equal(r.buffered, 0, 'output ends on a message boundary');
  return s;
}

test('masking gives the same messages however the target bytes are split (property)', () => {
  const email = fc
    .tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.stringMatching(/^[a-z]{1,8}$/))
    .map(([u, d]) => `${u}@${d}.example`);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(email, fc.string({ maxLength: 20 }), fc.option(email)), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (rows, points) => {
        const stream = Buffer.concat([
          rowDescription([
            { name: 'email', table: PEOPLE_OID, attnum: 2, type: 25, format: 0 },
            { name: 'note', table: 0, attnum: 0, type: 25, format: 0 },
            { name: 'other', table: 0, attnum: 0, type: 1043, format: 1 },
          ]),
          ...rows.map(([e, n, o]) => dataRow([e, `${n} ${e}`, o])),
          complete(`SELECT ${rows.length}`),
          noticeResponse({ severity: 'NOTICE', code: '00000', message: `about ${rows[0]![0]}` }),
          readyForQuery(0x49),
        ]);
        const whole: Buffer[] = [];
        const a = relayFor(whole);
        a.outgoing([queryMessage('SELECT ...')]);
        a.process(stream, whole);
        const split: Buffer[] = [];
        const b = relayFor(split);
        b.outgoing([queryMessage('SELECT ...')]);
        const cuts = [...new Set(points.map((p) => p % (stream.length + 1)))].sort((x, y) => x - y);
        let at = 0;
        for (const c of [...cuts, stream.length]) {
          b.process(stream.subarray(at, c), split);
          at = c;
        }
        const outWhole = Buffer.concat(whole);
        assert.deepEqual(Buffer.concat(split), outWhole);
        assert.equal(types(outWhole), `T${'D'.repeat(rows.length)}CNZ`);
        const text = outWhole.toString('utf8');
        for (const [e, , o] of rows) {
          assert.ok(!text.includes(e), `${e} leaked`);
          if (o) assert.ok(!text.includes(o), `${o} leaked`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("the gateway's own Describe answers are swallowed and the Execute rows masked", () => {
  const out: Buffer[] = [];
  const relay = relayFor(out);
  const execute = new MessageWriter().cstring('').int32(0).finish(0x45);
  const sync = Buffer.from([0x53, 0, 0, 0, 4]);
  const sent = relay.outgoing([execute, sync]);
  assert.deepEqual(
    sent.map((b) => String.fromCharCode(b[0]!)),
    ['D', 'E', 'S'],
  );
  relay.process(
    Buffer.concat([
      rowDescription([{ name: 'e', table: PEOPLE_OID, attnum: 2, type: 25, format: 1 }]),
      dataRow(['someone@corp.example']),
      complete('SELECT 1'),
      readyForQuery(0x49),
    ]),
    out,
  );
  const bytes = Buffer.concat(out);
  assert.equal(types(bytes), 'DCZ');
  assert.ok(bytes.includes(Buffer.from('s******@corp.example')));
});

function copyOutBinary(n: number): Buffer {
  const w = new MessageWriter().byte(1).int16(n);
  for (let i = 0; i < n; i++) w.int16(1);
  return w.finish(0x48);
}

const copyData = (b: Buffer) => new MessageWriter().bytes(b).finish(0x64);
const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]);

function int(n: number, size: 4 | 8): Buffer {
  const b = Buffer.alloc(size);
  if (size === 4) b.writeInt32BE(n);
  else b.writeBigInt64BE(BigInt(n));
  return b;
}

/** The tuples of the binary COPY the caller got, as text (numbers decoded). */
function copiedTuples(out: Buffer): (string | null)[][] {
  const r = new MessageReader({ side: 'backend' });
  r.push(out);
  const reader = new BinaryCopyReader(1 << 20);
  const rows: (string | null)[][] = [];
  for (let f = r.next(); f; f = r.next())
    if (f.type === 0x64)
      for (const it of reader.push(f.raw.subarray(5)))
        if (it.t === 'tuple')
          rows.push(
            it.fields.map((v, i) =>
              v === null
                ? null
                : i === 0
                  ? String(v.readInt32BE())
                  : i === 2
                    ? String(v.readBigInt64BE())
                    : v.toString(),
            ),
          );
  assert.ok(reader.done, 'the copy ends with its trailer');
  return rows;
}

test('binary COPY is masked tuple by tuple, the same however CopyData cuts it (property)', () => {
  const email = fc
    .tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.stringMatching(/^[a-z]{1,8}$/))
    .map(([u, d]) => `${u}@${d}.example`);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer(), email, fc.boolean(), fc.option(fc.string({ maxLength: 20 }))), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (rows, points) => {
        const data = Buffer.concat([
          SIGNATURE,
          Buffer.alloc(8),
          ...rows.map(([id, e, card, note]) =>
            encodeTuple([
              int(id, 4),
              Buffer.from(e),
              int(card ? 4111111111111111 : 42, 8),
              note === null ? null : Buffer.from(`${note} ${e}`),
            ]),
          ),
          Buffer.from([0xff, 0xff]),
        ]);
        const cuts = [...new Set(points.map((p) => p % (data.length + 1)))].sort((x, y) => x - y);
        const messages: Buffer[] = [];
        let at = 0;
        for (const c of [...cuts, data.length]) {
          messages.push(copyData(data.subarray(at, c)));
          at = c;
        }
        const out: Buffer[] = [];
        const relay = relayFor(out);
        relay.outgoing([queryMessage('COPY people TO STDOUT (FORMAT binary)')]);
        relay.process(
          Buffer.concat([copyOutBinary(4), ...messages, COPY_DONE, complete('COPY 1'), readyForQuery(0x49)]),
          out,
        );
        const bytes = Buffer.concat(out);
        assert.match(types(bytes), /^Hd+cCZ$/);
        assert.deepEqual(
          copiedTuples(bytes),
          rows.map(([id, e, card, note]) => [
            String(id),
            masker.mask(e, masker.columnByName('email')!),
            card ? null : '42',
            note === null ? null : masker.scan(`${note} ${e}`),
          ]),
        );
        for (const [, e] of rows) assert.ok(!bytes.includes(Buffer.from(e)), `${e} leaked`);
      },
    ),
    { numRuns: 200 },
  );
});

test('binary COPY of a query: a masked column of a type that cannot hold text is sent as NULL', () => {
  const out: Buffer[] = [];
  const relay = relayFor(out, { queryTypes: [23, 25] });
  relay.outgoing([queryMessage('COPY (SELECT length(email), note FROM people) TO STDOUT (FORMAT binary)')]);
  const data = Buffer.concat([
    SIGNATURE,
    Buffer.alloc(8),
    encodeTuple([int(7, 4), Buffer.from('plain')]),
    Buffer.from([0xff, 0xff]),
  ]);
  relay.process(Buffer.concat([copyOutBinary(2), copyData(data), COPY_DONE]), out);
  const r = new MessageReader({ side: 'backend' });
  r.push(Buffer.concat(out));
  r.next();
  const tuple = new BinaryCopyReader(1024).push(r.next()!.raw.subarray(5))[1];
  assert.ok(tuple?.t === 'tuple');
  assert.deepEqual(tuple.fields, [null, Buffer.from('plain')]);
});

test('binary COPY whose types cannot be learned, or that ends mid-tuple, ends the session unsent', () => {
  for (const [queryTypes, stream, expected] of [
    [null, [copyOutBinary(2)], /could not learn the types/],
    [[23, 25], [copyOutBinary(3)], /could not learn the types/],
    [
      [23, 25],
      [
        copyOutBinary(2),
        copyData(Buffer.concat([SIGNATURE, Buffer.alloc(8), Buffer.from([0, 2, 0, 0])])),
        COPY_DONE,
      ],
      /before its trailer/,
    ],
  ] as const) {
    const out: Buffer[] = [];
    let failed = '';
    const relay = relayFor(out, { queryTypes, fail: (m) => (failed = m) });
    relay.outgoing([queryMessage('COPY (SELECT id, email FROM people) TO STDOUT (FORMAT binary)')]);
    relay.process(Buffer.concat(stream), out);
    assert.match(failed, expected);
    const sent = Buffer.concat(out);
    assert.ok(!types(sent).includes('d') || !sent.includes(Buffer.from([0, 2, 0, 0])));
  }
});
