/**
 * Fuzz targets: one property per parser Airlock owns, shared by the quick run in the test
 * suite (test/fuzz/quick.test.ts) and the long, time-bounded run (`npm run fuzz`). Each
 * property feeds random and mutated valid input, split at random points where the parser is
 * incremental, and accepts only a result or the parser's own clean error.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AirlockError } from '../../src/core/errors.ts';
import { TokenRegistry } from '../../src/core/identity/tokens.ts';
import { PolicyError, parsePolicy } from '../../src/core/policy/load.ts';
import { FrontendType, MessageReader, PgProtocolError, STARTUP } from '../../src/protocols/postgres/codec.ts';
import { parseBind, parseStartupPacket, startupMessage } from '../../src/protocols/postgres/messages.ts';
import { classifyCommand, parseCommandLine } from '../../src/protocols/ssh/command.ts';
import {
  classifySftp,
  MAX_SFTP_PACKET,
  PacketReader,
  SftpProtocolError,
  SftpType,
} from '../../src/protocols/ssh/sftp.ts';
import { ASCIICAST_TARGETS } from './asciicast.ts';
import { GIT_TARGETS } from './git.ts';
import { KUBE_CHANNEL_TARGETS } from './kube-channels.ts';
import { KUBERNETES_TARGETS } from './kubernetes.ts';
import { MYSQL_TARGETS } from './mysql.ts';

export interface FuzzTarget {
  readonly name: string;
  /** Runs in the quick suite; the long run goes on until its time budget ends. */
  readonly quickRuns: number;
  /** Asynchronous targets (real sockets) return an async property. */
  property(): fc.IProperty<[unknown]> | fc.IAsyncProperty<[unknown]>;
}

/** Splits `bytes` at the given points (taken modulo the length). */
export function splitAt(bytes: Buffer, points: readonly number[]): Buffer[] {
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

/** A valid input with bytes flipped, cut, duplicated or spliced in. */
export function mutated(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
    fc.record({ op: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 32 }) }),
  );
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([b, edits]) => {
    let out = Buffer.from(b);
    for (const e of edits) {
      const at = out.length === 0 ? 0 : e.at % out.length;
      if (e.op === 'flip' && out.length > 0) out[at] = out[at]! ^ (1 << e.bit);
      else if (e.op === 'cut') out = out.subarray(0, at);
      else if (e.op === 'insert')
        out = Buffer.concat([out.subarray(0, at), Buffer.from(e.bytes), out.subarray(at)]);
      else if (e.op === 'dup') out = Buffer.concat([out.subarray(0, at + e.len), out.subarray(at)]);
    }
    return out;
  });
}

function pgFrame(type: number, body: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = type;
  b.writeInt32BE(4 + body.length, 1);
  Buffer.from(body).copy(b, 5);
  return b;
}

/** A startup packet followed by frontend messages of every type. */
export const pgStream: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.dictionary(fc.stringMatching(/^[a-z_]{1,12}$/), fc.stringMatching(/^[^\0]{0,20}$/)),
    fc.array(
      fc
        .tuple(fc.constantFrom(...Object.values(FrontendType)), fc.uint8Array({ maxLength: 200 }))
        .map(([t, body]) => pgFrame(t, body)),
      { maxLength: 10 },
    ),
  )
  .map(([params, msgs]) =>
    Buffer.concat([startupMessage(Object.entries({ user: 'u', ...params })), ...msgs]),
  );

function readPg(bytes: Buffer, points: readonly number[]): void {
  const reader = new MessageReader({ side: 'frontend', startup: true, maxMessage: 4096 });
  try {
    for (const c of splitAt(bytes, points)) {
      reader.push(c);
      for (let f = reader.next(); f; f = reader.next()) {
        try {
          if (f.type === STARTUP) {
            parseStartupPacket(f);
            reader.startup = false;
          } else if (f.type === FrontendType.Bind) parseBind(f);
        } catch (err) {
          if (!(err instanceof PgProtocolError)) throw err;
          reader.startup = false;
        }
      }
    }
  } catch (err) {
    assert.ok(err instanceof PgProtocolError, `not a protocol error: ${String(err)}`);
  }
}

const VALID_POLICY = `listen: { api: 127.0.0.1:7070, postgres: 127.0.0.1:15432 }
identities:
  tokens:
    - { name: alice, token: alk_fuzz_alice_0123456789, kind: human, groups: [dba] }
connections:
  db: { type: postgres, upstream: { host: h, database: d, user: u, password: p }, default: review }
rules:
  - { name: reads, kinds: [read], effect: allow }
  - { name: writes, kinds: [write], effect: review, review: { groups: [dba], approvals: 1, expires: 15m } }
  - { name: drops, statements: [DropStmt], effect: deny, reason: no }
limits: { max_connections: 10, auth_failures: { max: 3, window: 1m, block: 5m } }
`;

function loadPolicyText(text: string): void {
  try {
    parsePolicy(text, 'fuzz.yaml', '/tmp');
  } catch (err) {
    assert.ok(err instanceof PolicyError, `not a PolicyError: ${String(err)}`);
    for (const p of err.problems) {
      assert.ok(Number.isInteger(p.line) && p.line >= 1, `line ${p.line}`);
      assert.ok(Number.isInteger(p.column) && p.column >= 1, `column ${p.column}`);
    }
  }
}

const registry = new TokenRegistry([]);

export const ACTION_KINDS: ReadonlySet<string> = new Set([
  'read',
  'write',
  'schema',
  'privilege',
  'admin',
  'exec',
  'session',
  'transfer',
  'unknown',
]);

/** Command lines built from the pieces a shell cares about: words, quotes, operators, redirections. */
export const commandLine: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      fc.stringMatching(/^[a-z][a-z0-9_./-]{0,10}$/),
      fc.constantFrom(
        ' ',
        ' ',
        ';',
        '&&',
        '||',
        '|',
        '&',
        '\n',
        '>',
        '>>',
        '2>&1',
        '<',
        '<<<',
        '<<EOF',
        '&>',
        '"',
        "'",
        '\\',
        '$',
        '$(',
        ')',
        '`',
        '${',
        '}',
        '(',
        '{',
        '#',
        '*',
        '~',
        '=',
        'sudo',
        'rm -rf /',
        'echo',
        'if',
        'then',
        'fi',
        'for',
        'do',
        'done',
        'scp -t',
        'scp -f',
        '/dev/null',
        'X=1',
        'eval',
        'exec',
        'bash -c',
        '\t',
        '\0',
      ),
      fc.string({ maxLength: 6 }),
    ),
    { maxLength: 30 },
  )
  .map((pieces) => pieces.join(''));

/**
 * Whatever the line, the splitter returns parts of known kinds, never nothing, and anything it
 * could not see through shows up as an `unknown` part (fail closed).
 */
function splitCommand(line: string): void {
  const parsed = parseCommandLine(line);
  const parts = classifyCommand(line);
  assert.ok(parts.length > 0, 'no parts: the line would not be judged at all');
  for (const p of parts) {
    assert.ok(ACTION_KINDS.has(p.kind), `kind ${p.kind}`);
    assert.equal(typeof p.text, 'string');
  }
  if (parsed.unknown.length > 0)
    assert.ok(
      parts.some((p) => p.kind === 'unknown'),
      `"${line}" holds ${parsed.unknown.join(', ')} but no part is unknown`,
    );
  for (const c of parsed.commands) for (const w of c.words) assert.equal(typeof w, 'string');
}

function sftpString(s: string | Uint8Array): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function sftpPacket(type: number, fields: readonly Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), ...fields]);
  return Buffer.concat([u32(body.length), body]);
}

const sftpPath = fc.oneof(fc.stringMatching(/^\/[a-z0-9._/-]{0,30}$/), fc.string({ maxLength: 20 }));

/** Caller → host SFTP requests of every kind the relay judges or passes. */
export const sftpRequest: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constant(sftpPacket(SftpType.INIT, [u32(3)])),
  fc
    .tuple(fc.nat(), sftpPath, fc.nat(0x3f))
    .map(([id, p, flags]) => sftpPacket(SftpType.OPEN, [u32(id), sftpString(p), u32(flags), u32(0)])),
  fc
    .tuple(
      fc.constantFrom(
        SftpType.REMOVE,
        SftpType.MKDIR,
        SftpType.RMDIR,
        SftpType.STAT,
        SftpType.OPENDIR,
        SftpType.SETSTAT,
      ),
      fc.nat(),
      sftpPath,
    )
    .map(([t, id, p]) => sftpPacket(t, [u32(id), sftpString(p), u32(0)])),
  fc
    .tuple(fc.constantFrom(SftpType.RENAME, SftpType.SYMLINK), fc.nat(), sftpPath, sftpPath)
    .map(([t, id, a, b]) => sftpPacket(t, [u32(id), sftpString(a), sftpString(b)])),
  fc
    .tuple(
      fc.constantFrom(SftpType.READ, SftpType.WRITE, SftpType.CLOSE),
      fc.nat(),
      fc.uint8Array({ maxLength: 8 }),
      fc.uint8Array({ maxLength: 200 }),
    )
    .map(([t, id, handle, data]) =>
      sftpPacket(t, [u32(id), sftpString(handle), Buffer.alloc(8), u32(data.length), Buffer.from(data)]),
    ),
  fc
    .tuple(
      fc.nat(),
      fc.constantFrom(
        'posix-rename@openssh.com',
        'hardlink@openssh.com',
        'lsetstat@openssh.com',
        'statvfs@openssh.com',
        'copy-data',
      ),
      sftpPath,
      sftpPath,
    )
    .map(([id, name, a, b]) =>
      sftpPacket(SftpType.EXTENDED, [u32(id), sftpString(name), sftpString(a), sftpString(b)]),
    ),
);

export const sftpStream: fc.Arbitrary<Buffer> = fc
  .array(sftpRequest, { minLength: 1, maxLength: 8 })
  .map((packets) => Buffer.concat(packets));

/**
 * Frames the stream split at `points` and classifies each packet; the packets must be exactly
 * those of the unsplit stream, and only SftpProtocolError may end it.
 */
function readSftp(bytes: Buffer, points: readonly number[]): void {
  const frame = (chunks: readonly Buffer[]) => {
    const reader = new PacketReader();
    const out: Buffer[] = [];
    let error: string | undefined;
    try {
      for (const c of chunks) {
        reader.push(c);
        for (let p = reader.next(); p; p = reader.next()) {
          assert.ok(p.length >= 5 && p.length <= MAX_SFTP_PACKET + 4, `packet of ${p.length} bytes`);
          out.push(Buffer.from(p));
          try {
            const r = classifySftp(p);
            for (const part of r.parts) assert.ok(ACTION_KINDS.has(part.kind), `kind ${part.kind}`);
          } catch (err) {
            assert.ok(err instanceof SftpProtocolError, `not an SFTP protocol error: ${String(err)}`);
          }
        }
      }
    } catch (err) {
      assert.ok(err instanceof SftpProtocolError, `not an SFTP protocol error: ${String(err)}`);
      error = err.message;
    }
    return { out, error };
  };
  const whole = frame([bytes]);
  const split = frame(splitAt(bytes, points));
  assert.equal(split.error, whole.error);
  assert.deepEqual(split.out, whole.out);
}

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: 'postgres: frontend stream split anywhere',
    quickRuns: 200,
    property: () =>
      fc.property(fc.tuple(pgStream, fc.array(fc.nat(), { maxLength: 30 })), ([bytes, points]) => {
        readPg(bytes, points);
      }),
  },
  {
    name: 'postgres: mutated and random frontend bytes',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          fc.oneof(
            mutated(pgStream),
            fc.uint8Array({ maxLength: 3000 }).map((b) => Buffer.from(b)),
          ),
          fc.array(fc.nat(), { maxLength: 30 }),
        ),
        ([bytes, points]) => readPg(bytes, points),
      ),
  },
  {
    name: 'policy loader: mutated valid files and random YAML',
    quickRuns: 150,
    property: () =>
      fc.property(
        fc.oneof(
          mutated(fc.constant(Buffer.from(VALID_POLICY))).map((b) => b.toString('utf8')),
          fc.string({ unit: 'grapheme', maxLength: 400 }),
          fc.string({ unit: fc.constantFrom(...'{}[]:,-#&*!|>\'"% \n\tab1'.split('')), maxLength: 200 }),
        ),
        (text) => loadPolicyText(text),
      ),
  },
  {
    name: 'ssh: command-line splitter on shell-shaped, mutated and random lines',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.oneof(
          commandLine,
          mutated(commandLine.map((l) => Buffer.from(l))).map((b) => b.toString('utf8')),
          fc.string({ unit: 'grapheme', maxLength: 200 }),
          fc.string({ unit: 'binary', maxLength: 200 }),
        ),
        (line) => splitCommand(line),
      ),
  },
  {
    name: 'ssh: SFTP packet stream split anywhere, mutated and random',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.tuple(
          fc.oneof(
            sftpStream,
            mutated(sftpStream),
            fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
          ),
          fc.array(fc.nat(), { maxLength: 30 }),
        ),
        ([bytes, points]) => readSftp(bytes, points),
      ),
  },
  {
    name: 'tokens: any credential string is a principal or a clean token error',
    quickRuns: 300,
    property: () =>
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 })),
        (s) => {
          try {
            registry.verify(s);
            assert.fail('an unknown token was accepted');
          } catch (err) {
            assert.ok(err instanceof AirlockError, String(err));
            assert.match(err.code, /^AIRLOCK_E_TOKEN_/);
            assert.ok(!err.message.includes(s) || s.length < 4, 'the error echoes the credential');
          }
        },
      ),
  },
  // Targets of other parsers, one file each; they take splitAt and mutated from here.
  ...MYSQL_TARGETS,
  ...GIT_TARGETS,
  ...ASCIICAST_TARGETS,
  ...KUBERNETES_TARGETS,
  ...KUBE_CHANNEL_TARGETS,
];
