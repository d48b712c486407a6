import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { SqliteStore } from '../../store/sqlite.ts';
import type { AuditRecord } from '../store.ts';
import { canonical } from './canonical.ts';
import { GENESIS, hashRecord } from './chain.ts';
import { AuditLog } from './log.ts';
import { verifyChain } from './verify.ts';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-verify-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A file-backed log of `count` records, written through AuditLog; returns the path. */
async function makeLog(count: number): Promise<string> {
  const file = join(dir, `log-${++n}.db`);
  const store = new SqliteStore({ filename: file });
  await store.migrate();
  const log = new AuditLog(store, { batchMs: 10_000, batchMax: 10_000 });
  await log.init();
  for (let i = 1; i <= count; i++)
    log.appendLater(i % 2 ? 'action.allowed' : 'action.denied', { i, who: `p${i % 7}` });
  await log.close();
  await store.close();
  return file;
}

/** Tamper with the file the way an attacker with database access would, then verify. */
async function tamperAndVerify(file: string, sqls: string[], opts = {}) {
  const raw = new Database(file);
  raw.transaction(() => {
    for (const s of sqls) raw.exec(s);
  })();
  raw.close();
  const store = new SqliteStore({ filename: file });
  try {
    return await verifyChain(store, opts);
  } finally {
    await store.close();
  }
}

/** Shifts seq of records >= from by delta without tripping the primary key. */
function shift(from: number, delta: number): string[] {
  return [
    `UPDATE audit SET seq = -seq WHERE seq >= ${from}`,
    `UPDATE audit SET seq = -seq + ${delta} WHERE seq < 0`,
  ];
}

describe('verifyChain', () => {
  test('an untouched log verifies, also across batch boundaries', async () => {
    const file = await makeLog(50);
    const r = await tamperAndVerify(file, [], { batch: 7 });
    assert.equal(r.ok, true);
    assert.equal(r.count, 50);
  });

  test('an empty log verifies', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
    const v = await verifyChain(store);
    assert.deepEqual([v.ok, v.count, v.ok && v.headHash], [true, 0, GENESIS]);
    await store.close();
  });

  test('edit of data is reported at that record', async () => {
    const file = await makeLog(30);
    const r = await tamperAndVerify(
      file,
      [`UPDATE audit SET data = '{"i":17,"who":"mallory"}' WHERE seq = 17`],
      { batch: 5 },
    );
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.seq, 17);
    assert.equal(r.problem, 'edited');
    assert.equal(r.count, 16);
    assert.equal(r.message, 'record 17 was edited: its content no longer matches its hash');
  });

  test('edits of type, time, and broken JSON are edits', async () => {
    for (const sql of [
      `UPDATE audit SET type = 'action.allowed' WHERE seq = 4`,
      `UPDATE audit SET at = at + 1 WHERE seq = 4`,
      `UPDATE audit SET data = '{not json' WHERE seq = 4`,
      `UPDATE audit SET hash = '${'a'.repeat(64)}' WHERE seq = 4`,
    ]) {
      const r = await tamperAndVerify(await makeLog(8), [sql]);
      assert.ok(!r.ok, sql);
      assert.equal(r.problem, 'edited', sql);
      assert.equal(r.seq, 4, sql);
    }
  });

  test('deleting a record is reported at the missing seq', async () => {
    const r = await tamperAndVerify(await makeLog(30), ['DELETE FROM audit WHERE seq = 12']);
    assert.ok(!r.ok);
    assert.equal(r.problem, 'deleted');
    assert.equal(r.seq, 12);
    assert.match(r.message, /record 12 was deleted/);
  });

  test('deleting a range, or the first record, is a deletion', async () => {
    const r = await tamperAndVerify(await makeLog(30), ['DELETE FROM audit WHERE seq BETWEEN 5 AND 9']);
    assert.ok(!r.ok);
    assert.deepEqual([r.problem, r.seq], ['deleted', 5]);
    assert.match(r.message, /records 5 to 9 were deleted/);
    const first = await tamperAndVerify(await makeLog(5), ['DELETE FROM audit WHERE seq = 1']);
    assert.ok(!first.ok);
    assert.deepEqual([first.problem, first.seq], ['deleted', 1]);
  });

  test('deleting a record and renumbering the rest is still a deletion', async () => {
    const r = await tamperAndVerify(await makeLog(30), [
      'DELETE FROM audit WHERE seq = 12',
      ...shift(13, -1),
    ]);
    assert.ok(!r.ok);
    assert.deepEqual([r.problem, r.seq], ['deleted', 12]);
  });

  test('swapping two records is a reorder at the first of them', async () => {
    const r = await tamperAndVerify(await makeLog(30), [
      'UPDATE audit SET seq = -1 WHERE seq = 20',
      'UPDATE audit SET seq = 20 WHERE seq = 21',
      'UPDATE audit SET seq = 21 WHERE seq = -1',
    ]);
    assert.ok(!r.ok);
    assert.deepEqual([r.problem, r.seq], ['reordered', 20]);
    assert.equal(r.message, 'record 20 was reordered: it holds the record written as 21');
  });

  test('an inserted record is reported where it was inserted', async () => {
    const file = await makeLog(30);
    // A forgery that even links and hashes correctly: the record after it gives it away.
    const raw = new Database(file);
    const prev = raw.prepare('SELECT hash FROM audit WHERE seq = 9').get() as { hash: string };
    raw.close();
    const forged = { seq: 10, at: 1, type: 'action.allowed', data: { forged: true }, prevHash: prev.hash };
    const hash = hashRecord(forged);
    const insert = `INSERT INTO audit (seq, at, type, data, prev_hash, hash) VALUES (10, 1, 'action.allowed', '${canonical(forged.data)}', '${prev.hash}', '${hash}')`;
    const r = await tamperAndVerify(file, [...shift(10, 1), insert]);
    assert.ok(!r.ok);
    assert.deepEqual([r.problem, r.seq], ['inserted', 10]);

    // A clumsy forgery (garbage hash) is also an insertion, not an edit.
    const file2 = await makeLog(30);
    const r2 = await tamperAndVerify(file2, [
      ...shift(10, 1),
      `INSERT INTO audit (seq, at, type, data, prev_hash, hash) VALUES (10, 1, 'x', '{}', '${GENESIS}', '${'b'.repeat(64)}')`,
    ]);
    assert.ok(!r2.ok);
    assert.deepEqual([r2.problem, r2.seq], ['inserted', 10]);
  });

  test('a rewritten record with a recomputed hash breaks the link to the next one', async () => {
    const file = await makeLog(10);
    const store = new SqliteStore({ filename: file });
    const [rec] = await store.readAudit(5, 1);
    await store.close();
    const edited = { ...rec!, data: { i: 5, who: 'mallory' } };
    const hash = hashRecord(edited);
    const r = await tamperAndVerify(file, [
      `UPDATE audit SET data = '${canonical(edited.data)}', hash = '${hash}' WHERE seq = 5`,
    ]);
    assert.ok(!r.ok);
    assert.deepEqual([r.problem, r.seq], ['broken-link', 6]);
    assert.match(r.message, /record 6 does not link to record 5/);
  });

  test('property: random logs verify; any single-record mutation is found at that seq', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
    const raw = (store as unknown as { sqlite: Database.Database }).sqlite;
    const entry = fc.record({
      type: fc.constantFrom('action.allowed', 'action.denied', 'request.created', 'session.opened'),
      data: fc.dictionary(
        fc.string({ maxLength: 6 }),
        fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.boolean()),
        {
          maxKeys: 4,
        },
      ),
      later: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 40 }),
        fc.nat(),
        fc.constantFrom('data', 'type', 'at', 'hash', 'prev_hash', 'delete'),
        async (entries, pick, field) => {
          raw.exec('DELETE FROM audit');
          const log = new AuditLog(store, { batchMs: 10_000 });
          await log.init();
          for (const e of entries) {
            if (e.later) log.appendLater(e.type, e.data);
            else await log.append(e.type, e.data);
          }
          await log.flush();
          const ok = await verifyChain(store, { batch: 8 });
          assert.ok(ok.ok);
          assert.equal(ok.count, entries.length);

          const seq = (pick % entries.length) + 1;
          const target = raw.prepare('SELECT * FROM audit WHERE seq = ?').get(seq) as Record<string, unknown>;
          if (field === 'delete') {
            // Deleting the newest record is invisible to the chain alone (checkpoints cover it).
            if (seq === entries.length) return;
            raw.prepare('DELETE FROM audit WHERE seq = ?').run(seq);
          } else if (field === 'data') {
            raw
              .prepare('UPDATE audit SET data = ? WHERE seq = ?')
              .run(canonical({ tampered: String(target.data) }), seq);
          } else if (field === 'type') {
            raw.prepare('UPDATE audit SET type = ? WHERE seq = ?').run(`${target.type}!`, seq);
          } else if (field === 'at') {
            raw.prepare('UPDATE audit SET at = at - 1 WHERE seq = ?').run(seq);
          } else {
            raw.prepare(`UPDATE audit SET ${field} = ? WHERE seq = ?`).run('c'.repeat(64), seq);
          }
          const bad = await verifyChain(store, { batch: 8 });
          assert.ok(!bad.ok, `${field} of ${seq} not detected`);
          assert.equal(bad.seq, seq);
          assert.equal(bad.count, seq - 1);
          assert.equal(bad.problem, field === 'delete' ? 'deleted' : 'edited');
        },
      ),
      { numRuns: 150 },
    );
    await store.close();
  });

  test('verifies a 100k-record chain in one streaming pass', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
    const total = 100_000;
    const records: AuditRecord[] = [];
    let prevHash = GENESIS;
    for (let seq = 1; seq <= total; seq++) {
      const content = {
        seq,
        at: 1_700_000_000_000 + seq,
        type: 'action.allowed',
        data: {
          principal: { name: 'agent', kind: 'agent', groups: ['bots'] },
          connection: 'prod-db',
          summary: `SELECT ${seq}`,
        },
        prevHash,
      };
      prevHash = hashRecord(content);
      records.push({ ...content, hash: prevHash });
    }
    await store.appendAudit(records);
    // Speed is measured by `npm run bench`, never asserted here: wall-clock time varies with the machine.
    const r = await verifyChain(store);
    assert.ok(r.ok);
    assert.equal(r.count, total);
    await store.close();
  });
});
