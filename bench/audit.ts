/**
 * Audit log numbers on the embedded SQLite store (a file in a temp directory, synchronous=FULL):
 *
 * - durable appends/s with 8 concurrent callers (group commit), without and with signed
 *   checkpoints every 1000 records — the second must not cost measurably more;
 * - batched appends/s (appendLater, the path allowed reads take);
 * - the cost of one checkpoint signature (Ed25519), and the same spread over 1000 records;
 * - verify speed in records/s over 100,000 records: chain only, and with every checkpoint
 *   signature and the anchors checked (target ≥ 200,000/s);
 * - export and offline verification of that export, records/s.
 *
 * Run alone: `node --import tsx bench/audit.ts`; `npm run bench` runs it after pgbench.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  generateCheckpointKey,
  keyRing,
  type SignedCheckpoint,
  signCheckpoint,
} from '../src/core/audit/checkpoint.ts';
import { exportLines, verifyExport } from '../src/core/audit/export.ts';
import { AuditLog, type CheckpointOptions } from '../src/core/audit/log.ts';
import { verifyChain } from '../src/core/audit/verify.ts';
import { SqliteStore } from '../src/store/sqlite.ts';

export interface AuditBench {
  readonly durableAppendsPerSecond: number;
  readonly durableAppendsPerSecondWithCheckpoints: number;
  readonly batchedAppendsPerSecond: number;
  readonly checkpointSignMicros: number;
  readonly checkpointSignMicrosPerRecord: number;
  readonly verifyRecordsPerSecond: number;
  readonly verifyWithSignaturesRecordsPerSecond: number;
  readonly exportRecordsPerSecond: number;
  readonly exportVerifyRecordsPerSecond: number;
  readonly records: number;
}

const DATA = {
  principal: 'agent',
  connection: 'prod-db',
  kind: 'write',
  summary: 'UPDATE orders SET status = $1 WHERE id = $2',
};

async function durableRate(
  dir: string,
  name: string,
  checkpoints: CheckpointOptions | undefined,
  ms: number,
) {
  const store = new SqliteStore({ filename: join(dir, `${name}.db`) });
  await store.migrate();
  const log = new AuditLog(store, { checkpoints });
  await log.init();
  let n = 0;
  const until = performance.now() + ms;
  const caller = async () => {
    while (performance.now() < until) {
      await log.append('action', DATA);
      n += 1;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 8 }, caller));
  const rate = n / ((performance.now() - t0) / 1000);
  await log.close();
  await store.close();
  return rate;
}

export async function benchAudit(records = 100_000, ms = 3_000): Promise<AuditBench> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-audit-bench-'));
  try {
    const { key } = generateCheckpointKey();
    const plain = await durableRate(dir, 'plain', undefined, ms);
    const signed = await durableRate(dir, 'signed', { key, every: 1000 }, ms);

    const signRounds = 2000;
    let t0 = performance.now();
    for (let i = 0; i < signRounds; i++) signCheckpoint(key, i + 1, 'a'.repeat(64), Date.now());
    const signMicros = ((performance.now() - t0) * 1000) / signRounds;

    const store = new SqliteStore({ filename: join(dir, 'verify.db') });
    await store.migrate();
    const anchors: SignedCheckpoint[] = [];
    const log = new AuditLog(store, {
      batchMax: 1000,
      checkpoints: { key, every: 1000, onCheckpoint: (c) => anchors.push(c) },
    });
    await log.init();
    t0 = performance.now();
    for (let i = 0; i < records; i++) {
      log.appendLater('action', { ...DATA, kind: 'read', i });
      if (i % 1000 === 999) await log.flush();
    }
    await log.close();
    const batched = records / ((performance.now() - t0) / 1000);
    const total = await store.auditCount();

    t0 = performance.now();
    const v1 = await verifyChain(store);
    const verifyRate = total / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    const v2 = await verifyChain(store, { keys: keyRing([key.publicKey]), anchors });
    const verifySigned = total / ((performance.now() - t0) / 1000);
    if (!v1.ok || !v2.ok) throw new Error('the benchmark log does not verify');

    t0 = performance.now();
    const lines: string[] = [];
    for await (const l of exportLines(store, { key })) lines.push(l);
    const exportRate = total / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    const v3 = await verifyExport(lines, { keys: keyRing([key.publicKey]) });
    const exportVerify = total / ((performance.now() - t0) / 1000);
    if (!v3.ok) throw new Error('the benchmark export does not verify');
    await store.close();

    return {
      durableAppendsPerSecond: Math.round(plain),
      durableAppendsPerSecondWithCheckpoints: Math.round(signed),
      batchedAppendsPerSecond: Math.round(batched),
      checkpointSignMicros: Number(signMicros.toFixed(1)),
      checkpointSignMicrosPerRecord: Number((signMicros / 1000).toFixed(3)),
      verifyRecordsPerSecond: Math.round(verifyRate),
      verifyWithSignaturesRecordsPerSecond: Math.round(verifySigned),
      exportRecordsPerSecond: Math.round(exportRate),
      exportVerifyRecordsPerSecond: Math.round(exportVerify),
      records: total,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printAuditBench(r: AuditBench): void {
  const n = (x: number) => x.toLocaleString('en-US');
  console.log(`audit (SQLite, synchronous=FULL; ${n(r.records)} records for verify/export)`);
  console.log(`  durable appends/s, 8 callers            ${n(r.durableAppendsPerSecond)}`);
  console.log(`  … with a signed checkpoint every 1000   ${n(r.durableAppendsPerSecondWithCheckpoints)}`);
  console.log(`  batched appends/s (allowed reads)       ${n(r.batchedAppendsPerSecond)}`);
  console.log(
    `  checkpoint signature                    ${r.checkpointSignMicros} µs (${r.checkpointSignMicrosPerRecord} µs per record at 1/1000)`,
  );
  console.log(`  verify, chain only                      ${n(r.verifyRecordsPerSecond)} records/s`);
  console.log(
    `  verify, chain + signatures + anchors    ${n(r.verifyWithSignaturesRecordsPerSecond)} records/s`,
  );
  console.log(`  export (JSONL, sealed)                  ${n(r.exportRecordsPerSecond)} records/s`);
  console.log(`  offline verify of the export            ${n(r.exportVerifyRecordsPerSecond)} records/s`);
}

if (import.meta.filename === process.argv[1]) printAuditBench(await benchAudit());
