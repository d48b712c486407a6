import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { maskerFor } from '../../core/masking/masker.ts';
import { parsePolicy } from '../../core/policy/load.ts';
import { MessageReader, MessageWriter } from './codec.ts';
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

function relayFor(out: Buffer[]): MaskingRelay {
  return new MaskingRelay(masker, {
    ready: () => {},
    wantErrors: () => false,
    error: () => undefined,
    cached: (oid) =>
      oid === PEOPLE_OID ? { schema: 'public', table: 'people', columns: new Map([[2, 'email']]) } : null,
    lookup: async () => {},
    relations: () => [],
    lookupRelations: async () => {},
    write: (b) => out.push(...b),
    pauseUpstream: () => {},
    resumeUpstream: () => {},
    fail: (m) => {
      throw new Error(m);
    },
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
