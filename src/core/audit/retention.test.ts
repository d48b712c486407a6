import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../store/sqlite.ts';
import { generateCheckpointKey, keyRing } from './checkpoint.ts';
import { exportLines, verifyExport } from './export.ts';
import { AuditLog } from './log.ts';
import { pruneAudit, RETENTION_TYPE } from './retention.ts';
import { verifyChain } from './verify.ts';

const { key } = generateCheckpointKey();
const keys = keyRing([key.publicKey]);

async function log100() {
  const store = new SqliteStore({ filename: ':memory:' });
  await store.migrate();
  let t = 0;
  const log = new AuditLog(store, { batchMs: 1, now: () => (t += 1000), checkpoints: { key, every: 10 } });
  await log.init();
  for (let i = 0; i < 100; i++) await log.append('action', { i });
  return { store, log };
}

describe('audit retention', () => {
  test('old records are cut at a checkpoint and the rest still verifies, online and exported', async () => {
    const { store, log } = await log100();
    const r = await pruneAudit(store, log, 50_000);
    assert.ok(r.keptFrom > 30 && r.keptFrom <= 50, JSON.stringify(r));
    assert.equal(r.deleted, r.keptFrom - 1);
    const v = await verifyChain(store, { keys });
    assert.ok(v.ok && v.firstSeq === r.keptFrom, JSON.stringify(v));
    const retention = (await store.readAudit(1, 1000)).find((x) => x.type === RETENTION_TYPE);
    assert.equal(retention?.data.keptFrom, r.keptFrom);
    const lines: string[] = [];
    for await (const l of exportLines(store, { key })) lines.push(l);
    assert.ok((await verifyExport(lines, { keys })).ok);
    await log.close();
    await store.close();
  });

  test('old records deleted without a retention record are reported as deleted', async () => {
    const { store, log } = await log100();
    await log.close();
    await store.db.deleteFrom('audit').where('seq', '<', 21).execute();
    const v = await verifyChain(store, { keys });
    assert.ok(!v.ok && v.problem === 'deleted' && v.seq === 1, JSON.stringify(v));
    assert.match(!v.ok ? v.message : '', /records 1 to 20 were deleted: the log starts at record 21/);
    await store.close();
  });

  test('a retention record appended by someone without the key does not excuse a cut', async () => {
    const { store, log } = await log100();
    await log.close();
    await store.db.deleteFrom('audit').where('seq', '<', 21).execute();
    const root = (await store.readAudit(21, 1))[0]!;
    // Anyone with the database can append a well-chained record; only a signature vouches for it.
    const forger = new AuditLog(store);
    await forger.init();
    await forger.append(RETENTION_TYPE, {
      keptFrom: 21,
      prevHash: root.prevHash,
      hash: root.hash,
      before: 0,
    });
    await forger.close();
    assert.equal((await verifyChain(store)).ok, true, 'without the key it cannot be told apart');
    const v = await verifyChain(store, { keys });
    assert.ok(!v.ok && v.problem === 'deleted', JSON.stringify(v));
    assert.match(!v.ok ? v.message : '', /not vouched for by a signed checkpoint/);
    await store.close();
  });
});
