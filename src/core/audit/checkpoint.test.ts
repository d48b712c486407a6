import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { FileAnchor, readAnchorFile } from './anchors.ts';
import { GENESIS, hashCanonicalData } from './chain.ts';
import {
  CHECKPOINT_TYPE,
  checkSignature,
  generateCheckpointKey,
  keyRing,
  parsePublicKey,
  publicKeyPem,
  rawPublicKey,
  type SignedCheckpoint,
  signCheckpoint,
} from './checkpoint.ts';
import { AuditLog } from './log.ts';
import { verifyChain } from './verify.ts';

const { key } = generateCheckpointKey();
const keys = keyRing([key.publicKey]);

async function signedLog(n: number, every = 10) {
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  const anchors: SignedCheckpoint[] = [];
  const log = new AuditLog(store, {
    batchMs: 1,
    checkpoints: { key, every, intervalMs: 3_600_000, onCheckpoint: (cp) => anchors.push(cp) },
  });
  await log.init();
  for (let i = 1; i <= n; i++) await log.append('action', { i, text: `statement ${i}` });
  await log.close();
  return { store, anchors };
}

/** Rewrites every record from `fromSeq` on with recomputed hashes, as someone with only the database could. */
async function rehashFrom(store: SqliteStore, fromSeq: number): Promise<void> {
  const rows = await store.db.selectFrom('audit').selectAll().orderBy('seq').execute();
  let prev = GENESIS;
  for (const r of rows) {
    if (r.seq >= fromSeq) {
      const hash = hashCanonicalData(r.seq, r.at, r.type, r.data, prev);
      await store.db.updateTable('audit').set({ prev_hash: prev, hash }).where('seq', '=', r.seq).execute();
      prev = hash;
    } else prev = r.hash;
  }
}

describe('checkpoints', () => {
  test('a signature verifies with the public key only, and not after any change', () => {
    const cp = signCheckpoint(key, 42, 'a'.repeat(64), 1_700_000_000_000);
    assert.equal(checkSignature(cp, keys), 'valid');
    assert.equal(checkSignature({ ...cp, seq: 43 }, keys), 'invalid');
    assert.equal(checkSignature({ ...cp, hash: 'b'.repeat(64) }, keys), 'invalid');
    const other = generateCheckpointKey().key;
    assert.equal(checkSignature(signCheckpoint(other, 42, 'a'.repeat(64), 1), keys), 'unknown-key');
    // The published forms of the public key parse back to the same key.
    for (const text of [publicKeyPem(key.publicKey), rawPublicKey(key.publicKey).toString('base64')])
      assert.equal(checkSignature(cp, keyRing([parsePublicKey(text)])), 'valid');
  });

  test('the log writes a checkpoint every N records and one on close; verify checks them', async () => {
    const { store, anchors } = await signedLog(95);
    const rows = await store.readAudit(1, 1000);
    const cps = rows.filter((r) => r.type === CHECKPOINT_TYPE);
    assert.ok(cps.length >= 9, `${cps.length} checkpoints`);
    for (const r of cps) assert.equal((r.data as unknown as SignedCheckpoint).seq, r.seq - 1);
    assert.equal(anchors.length, cps.length);
    const v = await verifyChain(store, { keys, anchors });
    assert.equal(v.ok, true);
    assert.ok(v.ok && v.checkpoints.signedThrough === v.headSeq - 1, JSON.stringify(v));
    await store.close();
  });

  test('a record rewritten with every later hash recomputed is caught at the next checkpoint', async () => {
    const { store, anchors } = await signedLog(95);
    assert.equal((await verifyChain(store)).ok, true);
    await store.db
      .updateTable('audit')
      .set({ data: '{"i":37,"text":"nothing to see"}' })
      .where('seq', '=', 37)
      .execute();
    await rehashFrom(store, 37);
    // The chain alone is consistent again...
    assert.equal((await verifyChain(store)).ok, false, 'checkpoints catch it even without a key');
    // ...but the checkpoint after it vouches for the old hash.
    const v = await verifyChain(store, { keys, anchors });
    assert.equal(v.ok, false);
    assert.ok(!v.ok && v.problem === 'rehashed');
    assert.ok(!v.ok && v.seq <= 37, JSON.stringify(v));
    assert.match(!v.ok ? v.message : '', /a record from \d+ to \d+ was rewritten/);
    await store.close();
  });

  test('checkpoints re-signed with another key are refused', async () => {
    const { store } = await signedLog(40);
    const forger = generateCheckpointKey().key;
    await store.db
      .updateTable('audit')
      .set({ data: '{"i":5,"text":"forged"}' })
      .where('seq', '=', 5)
      .execute();
    // Re-sign every checkpoint over the rewritten chain with the forger's key.
    const rows = await store.db.selectFrom('audit').selectAll().orderBy('seq').execute();
    let prev = GENESIS;
    for (const r of rows) {
      let data = r.data;
      if (r.type === CHECKPOINT_TYPE) {
        const old = JSON.parse(data) as SignedCheckpoint;
        const cp = signCheckpoint(forger, old.seq, prev, old.at);
        data = JSON.stringify(Object.fromEntries(Object.entries(cp).sort(([a], [b]) => (a < b ? -1 : 1))));
      }
      const hash = hashCanonicalData(r.seq, r.at, r.type, data, prev);
      await store.db
        .updateTable('audit')
        .set({ data, prev_hash: prev, hash })
        .where('seq', '=', r.seq)
        .execute();
      prev = hash;
    }
    assert.equal((await verifyChain(store)).ok, true, 'without the key nothing is wrong');
    const v = await verifyChain(store, { keys });
    assert.ok(!v.ok && v.problem === 'bad-signature', JSON.stringify(v));
    assert.equal(!v.ok && v.seq, 11);
    await store.close();
  });

  test('deleting the newest records is caught by the anchored checkpoints', async () => {
    const { store, anchors } = await signedLog(95);
    const head = (await store.auditHead())!.seq;
    await store.db.deleteFrom('audit').where('seq', '>', 70).execute();
    assert.equal((await verifyChain(store, { keys })).ok, true, 'the chain alone cannot see it');
    const v = await verifyChain(store, { keys, anchors });
    assert.ok(!v.ok && v.problem === 'truncated', JSON.stringify(v));
    assert.equal(!v.ok && v.seq, 71);
    assert.match(!v.ok ? v.message : '', new RegExp(`records 71 to at least ${head - 1} were deleted`));
    // Anchors that do not verify with the key are ignored, not trusted.
    const forged = signCheckpoint(generateCheckpointKey().key, 500, 'c'.repeat(64), 1);
    const w = await verifyChain(store, { keys, anchors: [forged] });
    assert.ok(w.ok && w.checkpoints.badAnchors === 1);
    await store.close();
  });

  test('checkpoints due while a write is in flight neither lose nor repeat records', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.migrate();
    // A store whose writes take a while, so timers fire and callers append meanwhile.
    const slow = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'appendAudit')
          return async (records: Parameters<SqliteStore['appendAudit']>[0]) => {
            await new Promise((r) => setTimeout(r, 5));
            return target.appendAudit(records);
          };
        return Reflect.get(target, prop, receiver);
      },
    });
    const log = new AuditLog(slow, { batchMs: 1, checkpoints: { key, every: 1_000_000, intervalMs: 10 } });
    await log.init();
    const appended = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
        return log.append('action', { i });
      }),
    );
    await log.close();
    const rows = await store.readAudit(1, 10_000);
    const actions = rows.filter((r) => r.type === 'action').map((r) => (r.data as { i: number }).i);
    assert.equal(actions.length, 300, 'every record once');
    assert.equal(new Set(actions).size, 300);
    for (const r of appended) assert.equal(rows.find((x) => x.seq === r.seq)?.hash, r.hash);
    assert.ok(rows.some((r) => r.type === CHECKPOINT_TYPE));
    const v = await verifyChain(store, { keys });
    assert.ok(v.ok, JSON.stringify(v));
    await store.close();
  });

  test('a file anchor appends one line per checkpoint and reads back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-anchor-'));
    try {
      const path = join(dir, 'sub', 'anchors.jsonl');
      const a = new FileAnchor(path);
      const cps = [1, 2, 3].map((i) => signCheckpoint(key, i * 10, String(i).repeat(64), i));
      for (const [i, cp] of cps.entries()) a.send(cp, (i + 1) * 10 + 1);
      await a.close();
      assert.equal(a.deliveredThrough, 30);
      const read = readAnchorFile(path);
      assert.deepEqual(read.checkpoints, cps);
      assert.deepEqual(read.badLines, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
