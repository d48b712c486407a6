import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { generateCheckpointKey, keyRing, signCheckpoint } from './checkpoint.ts';
import { exportLines, firstSeqAtOrAfter, verifyExport } from './export.ts';
import { AuditLog } from './log.ts';

const { key } = generateCheckpointKey();
const keys = keyRing([key.publicKey]);

async function exported(n: number, fromSeq = 1): Promise<string[]> {
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  let t = 1_700_000_000_000;
  const log = new AuditLog(store, { batchMs: 1, now: () => (t += 1000), checkpoints: { key, every: 25 } });
  await log.init();
  for (let i = 1; i <= n; i++) await log.append('action', { i, note: 'ünïcode ✓', n: -0.5e-7 });
  await log.close();
  const lines: string[] = [];
  for await (const l of exportLines(store, { key, fromSeq, batch: 7 })) lines.push(l);
  await store.close();
  return lines;
}

describe('audit export', () => {
  test('an export verifies offline with the public key, also from the middle of the log', async () => {
    const lines = await exported(60);
    const v = await verifyExport(lines, { keys });
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.count, lines.length - 2);
    const mid = await exported(60, 30);
    const w = await verifyExport(mid, { keys });
    assert.ok(w.ok && w.count === mid.length - 2, JSON.stringify(w));
  });

  test('edits, deletions, reordering, a cut tail and a re-signed seal are each named', async () => {
    const lines = await exported(60);
    const at = (seq: number) => lines.findIndex((l) => l.startsWith(`{"seq":${seq},`));
    const check = async (mutated: string[]) => {
      const v = await verifyExport(mutated, { keys });
      assert.ok(!v.ok);
      return v as Extract<typeof v, { ok: false }>;
    };

    const edited = [...lines];
    edited[at(17)] = edited[at(17)]!.replace('"i":17', '"i":18');
    assert.deepEqual(((v) => [v.problem, v.seq])(await check(edited)), ['edited', 17]);

    const deleted = lines.filter((_, i) => i !== at(20));
    assert.deepEqual(((v) => [v.problem, v.seq])(await check(deleted)), ['deleted', 20]);

    const swapped = [...lines];
    [swapped[at(8)], swapped[at(9)]] = [swapped[at(9)]!, swapped[at(8)]!];
    const s = await check(swapped);
    assert.deepEqual([s.problem, s.seq], ['reordered', 8]);

    const cut = lines.slice(0, at(50));
    const c = await check(cut);
    assert.equal(c.problem, 'unsealed');

    const resealed = [...lines];
    const last = JSON.parse(lines[lines.length - 2]!) as { seq: number; hash: string };
    resealed[resealed.length - 1] = JSON.stringify({
      seal: signCheckpoint(generateCheckpointKey().key, last.seq, last.hash, 1),
    });
    assert.equal((await check(resealed)).problem, 'bad-signature');

    const wrongKey = await verifyExport(lines, { keys: keyRing([generateCheckpointKey().key.publicKey]) });
    assert.ok(!wrongKey.ok && wrongKey.problem === 'bad-signature');
  });

  test('finds the first record at or after a time', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
    let t = 0;
    const log = new AuditLog(store, { now: () => (t += 10) });
    await log.init();
    for (let i = 0; i < 50; i++) log.appendLater('x', { i });
    await log.close();
    assert.equal(await firstSeqAtOrAfter(store, 0), 1);
    assert.equal(await firstSeqAtOrAfter(store, 105), 11);
    assert.equal(await firstSeqAtOrAfter(store, 10_000), 51);
    await store.close();
  });
});
