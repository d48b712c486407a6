import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { AuditLog } from '../audit/log.ts';
import { AsciicastWriter, parseAsciicast } from './asciicast.ts';
import { EventStreamWriter } from './events.ts';
import { Recordings } from './recorder.ts';
import { verifyRecordingFile } from './verify.ts';

describe('recordings', () => {
  let dir: string;
  let store: SqliteStore;
  let audit: AuditLog;
  let recordings: Recordings;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-rec-'));
    store = new SqliteStore({ filename: join(dir, 'airlock.db') });
    await store.migrate();
    audit = new AuditLog(store);
    await audit.init();
    recordings = new Recordings({ dir: join(dir, 'recordings'), store, audit });
  });
  after(async () => {
    await audit.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const readAudit = async (seq: number) => (await store.readAudit(seq, 1))[0];

  it('writes asciicast v2, names the file by its hash and enters the hash into the chain', async () => {
    let t = 1_700_000_000_000;
    const cast = new AsciicastWriter(
      recordings.open('sess-1', 'web-1', 'asciicast-v2', { protocol: 'ssh', principal: 'alice' }),
      { width: 80, height: 24, env: { TERM: 'xterm' } },
      () => t,
    );
    const listed = await store.listRecordings({ sessionId: 'sess-1' });
    // The open recording is listed while the session runs (registration is asynchronous).
    assert.ok(listed.length <= 1);
    t += 500;
    cast.output('$ ');
    t += 250;
    cast.input('ls\r');
    // A multibyte character split across two chunks stays one character.
    const euro = Buffer.from('€\r\n');
    cast.output(euro.subarray(0, 1));
    cast.output(euro.subarray(1));
    cast.resize(100, 30);
    const meta = await cast.close();

    assert.equal(meta.status, 'closed');
    const bytes = readFileSync(join(recordings.dir, meta.path));
    assert.equal(meta.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(meta.bytes, bytes.length);
    assert.ok(meta.path.includes(meta.sha256!));
    const parsed = parseAsciicast(bytes.toString('utf8'));
    assert.equal(parsed.header.width, 80);
    assert.deepEqual(
      parsed.events.map((e) => [e.time, e.code, e.data]),
      [
        [0.5, 'o', '$ '],
        [0.75, 'i', 'ls\r'],
        [0.75, 'o', '€\r\n'],
        [0.75, 'r', '100x30'],
      ],
    );
    const record = await readAudit(meta.auditSeq!);
    assert.equal(record?.type, 'recording.closed');
    assert.equal(record?.data.sha256, meta.sha256);
    assert.equal(record?.data.session, 'sess-1');
    assert.deepEqual(await store.getRecording(meta.id), meta);
    assert.deepEqual(await verifyRecordingFile(recordings.dir, meta, readAudit), {
      ok: true,
      sha256: meta.sha256,
      bytes: meta.bytes,
      auditSeq: meta.auditSeq,
    });
  });

  it('detects a recording altered by one byte, and one whose hash was rewritten in the store', async () => {
    const ev = new EventStreamWriter(recordings.open('sess-2', 'prod-db', 'events-jsonl'));
    ev.event('query', { sql: 'SELECT 1' });
    ev.event('query', { sql: 'DELETE FROM orders WHERE id = 7' });
    const meta = await ev.close();
    const path = join(recordings.dir, meta.path);
    const original = readFileSync(path);
    const altered = Buffer.from(original);
    altered[altered.length - 5] = altered[altered.length - 5]! ^ 0x01;
    writeFileSync(path, altered);
    const check = await verifyRecordingFile(recordings.dir, meta, readAudit);
    assert.equal(check.ok, false);
    assert.equal(!check.ok && check.problem, 'altered');
    assert.match(
      !check.ok ? check.message : '',
      new RegExp(`audit record ${meta.auditSeq} recorded ${meta.sha256}`),
    );

    // Rewriting the metadata to the altered bytes' hash does not help: the chain still holds the original.
    const forged = { ...meta, sha256: createHash('sha256').update(altered).digest('hex') };
    await store.putRecording(forged);
    const again = await verifyRecordingFile(recordings.dir, forged, readAudit);
    assert.equal(!again.ok && again.problem, 'altered');
    writeFileSync(path, original);
    assert.equal((await verifyRecordingFile(recordings.dir, meta, readAudit)).ok, true);
  });

  it('keeps the queue bounded: a chunk past the limit is dropped whole and counted', async () => {
    const small = new Recordings({
      dir: join(dir, 'small'),
      store,
      audit,
      highWaterBytes: 8,
      maxBufferedBytes: 16,
    });
    const w = small.open('sess-3', 'c', 'events-jsonl');
    assert.equal(w.write('0123456789'), false); // above high water, still queued
    assert.equal(w.write('0123456789'), false); // would exceed 16: dropped
    await w.drained();
    const meta = await w.close();
    assert.equal(meta.bytes, 10);
    assert.equal(meta.droppedBytes, 10);
    assert.equal(readFileSync(join(small.dir, meta.path), 'utf8'), '0123456789');
    const record = await readAudit(meta.auditSeq!);
    assert.equal(record?.data.droppedBytes, 10);
    assert.equal(small.openCount, 0);
  });

  it('a recording left open by a crash is sealed into the chain at the next start', async () => {
    const w = recordings.open('sess-crash', 'c', 'events-jsonl');
    w.write('{"t":0,"type":"query"}\n');
    await w.drained();
    // Let the queued bytes reach the file, as they would before a kill -9.
    await new Promise((r) => setTimeout(r, 50));
    const meta = (await store.listRecordings({ sessionId: 'sess-crash' }))[0]!;
    assert.equal(meta.status, 'open');
    // A new process over the same directory and store (the old writer is simply abandoned).
    const next = new Recordings({ dir: recordings.dir, store, audit });
    assert.equal(await next.recover(), 1);
    const sealed = (await store.getRecording(meta.id))!;
    assert.equal(sealed.status, 'closed');
    const record = await readAudit(sealed.auditSeq!);
    assert.equal(record?.data.recovered, true);
    assert.equal((await verifyRecordingFile(recordings.dir, sealed, readAudit)).ok, true);
    assert.equal(await next.recover(), 0);
  });

  it('seals every open recording on close and lists newest first', async () => {
    const a = recordings.open('sess-4', 'c', 'events-jsonl');
    a.write('{"x":1}\n');
    await recordings.close();
    const list = await store.listRecordings({ sessionId: 'sess-4' });
    assert.equal(list.length, 1);
    assert.equal(list[0]!.status, 'closed');
    const all = await store.listRecordings({ limit: 2 });
    assert.equal(all.length, 2);
    const next = await store.listRecordings({ limit: 100, before: all[1]! });
    assert.ok(next.every((m) => m.startedAt <= all[1]!.startedAt && m.id !== all[1]!.id));
  });
});
