import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { classifySftp, PacketReader, permissionDenied, SftpProtocolError, SftpType } from './sftp.ts';

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function packet(type: number, id: number, ...fields: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), u32(id), ...fields]);
  return Buffer.concat([u32(body.length), body]);
}

test('opens are reads or writes by their flags; changes are writes; metadata passes', () => {
  const read = classifySftp(packet(SftpType.OPEN, 1, str('/etc/hosts'), u32(0x01), u32(0)));
  assert.deepEqual([read.parts[0]?.kind, read.parts[0]?.fields?.file], ['transfer', ['/etc/hosts']]);
  const write = classifySftp(packet(SftpType.OPEN, 2, str('/srv/x'), u32(0x02 | 0x08 | 0x10), u32(0)));
  assert.equal(write.parts[0]?.kind, 'write');
  const rename = classifySftp(packet(SftpType.RENAME, 3, str('/a'), str('/b')));
  assert.deepEqual(rename.parts[0]?.fields?.file, ['/a', '/b']);
  assert.equal(classifySftp(packet(SftpType.REMOVE, 4, str('/a'))).parts[0]?.kind, 'write');
  assert.equal(classifySftp(packet(SftpType.STAT, 5, str('/a'))).parts.length, 0);
  assert.equal(
    classifySftp(packet(SftpType.EXTENDED, 6, str('posix-rename@openssh.com'), str('/a'), str('/b'))).parts[0]
      ?.kind,
    'write',
  );
  assert.equal(classifySftp(packet(SftpType.EXTENDED, 7, str('copy-data'))).parts[0]?.kind, 'unknown');
  assert.equal(classifySftp(packet(99, 8)).parts[0]?.kind, 'unknown');
});

test('a refusal is a well-formed SSH_FXP_STATUS with the request id', () => {
  const p = permissionDenied(42, 'Airlock: no');
  const r = new PacketReader();
  r.push(p);
  const whole = r.next()!;
  assert.equal(whole.length, p.length);
  assert.equal(whole[4], SftpType.STATUS);
  assert.equal(whole.readUInt32BE(5), 42);
  assert.equal(whole.readUInt32BE(9), 3);
});

test('property: packets come out the same however the stream is split', () => {
  const anyPacket = fc
    .tuple(fc.integer({ min: 1, max: 220 }), fc.nat(), fc.uint8Array({ maxLength: 300 }))
    .map(([type, id, rest]) => packet(type, id, Buffer.from(rest)));
  fc.assert(
    fc.property(
      fc.array(anyPacket, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (packets, cuts) => {
        const stream = Buffer.concat(packets);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const r = new PacketReader();
        const out: Buffer[] = [];
        let at = 0;
        for (const p of [...points, stream.length]) {
          r.push(stream.subarray(at, p));
          at = p;
          for (let q = r.next(); q; q = r.next()) out.push(q);
        }
        assert.deepEqual(
          out.map((b) => b.toString('hex')),
          packets.map((b) => b.toString('hex')),
        );
        assert.equal(r.buffered, 0);
      },
    ),
    { numRuns: 500 },
  );
});

test('property: any bytes classify or fail as a protocol error, never anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const b = Buffer.from(bytes);
      const framed = Buffer.concat([u32(b.length), b]);
      try {
        const r = classifySftp(framed);
        assert.ok(Array.isArray(r.parts));
      } catch (err) {
        assert.ok(err instanceof SftpProtocolError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
  assert.throws(() => {
    const r = new PacketReader();
    r.push(u32(0xffffffff));
    r.next();
  }, SftpProtocolError);
});
