/**
 * Retention: deleting old records while keeping the log verifiable. Records are only ever cut
 * at a checkpoint: the oldest kept record is one a signed checkpoint vouches for, so the kept
 * log still starts from a signed root. Before anything is deleted, an `audit.retention` record
 * naming the cut (`keptFrom`, and that record's `prevHash`) is appended and a checkpoint signed
 * over it; verify accepts a log that starts after record 1 only when such a record, vouched for
 * by a signature, says where and why it starts. Deleting old records any other way is reported
 * as deleted.
 */
import type { AuditRecord, Store } from '../store.ts';
import { CHECKPOINT_TYPE } from './checkpoint.ts';
import { firstSeqAtOrAfter } from './export.ts';
import type { AuditLog } from './log.ts';

export const RETENTION_TYPE = 'audit.retention';

/** Optional store capability: delete every record with seq below `seq`, returning how many. */
export interface AuditPruner {
  deleteAuditBefore(seq: number): Promise<number>;
}

export function canPrune(store: Store): store is Store & AuditPruner {
  return typeof (store as Partial<AuditPruner>).deleteAuditBefore === 'function';
}

export interface PruneResult {
  /** Seq of the oldest record kept (0: nothing pruned). */
  readonly keptFrom: number;
  readonly deleted: number;
}

/** The newest checkpoint record written before `beforeSeq`, searching backwards in windows. */
async function checkpointBefore(store: Store, beforeSeq: number): Promise<AuditRecord | undefined> {
  const window = 4096;
  for (let end = beforeSeq; end > 1; end -= window) {
    const from = Math.max(1, end - window);
    const rows = await store.readAudit(from, end - from);
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i]!;
      if (r.seq < end && r.type === CHECKPOINT_TYPE) return r;
    }
    const first = rows[0];
    if (!first || first.seq > from) return undefined; // reached what was pruned before
  }
  return undefined;
}

/**
 * Deletes records written before `before` (epoch ms), cutting at the newest checkpoint older
 * than that. Needs a log with checkpoints (a signing key) and a store that can delete.
 */
export async function pruneAudit(
  store: Store & AuditPruner,
  audit: AuditLog,
  before: number,
): Promise<PruneResult> {
  const firstNewer = await firstSeqAtOrAfter(store, before);
  const cp = await checkpointBefore(store, firstNewer);
  if (!cp) return { keptFrom: 0, deleted: 0 };
  const keptFrom = Number((cp.data as { seq?: unknown }).seq);
  const oldest = (await store.readAudit(1, 1))[0];
  if (!Number.isSafeInteger(keptFrom) || !oldest || keptFrom <= oldest.seq)
    return { keptFrom: 0, deleted: 0 };
  const root = (await store.readAudit(keptFrom, 1))[0];
  if (root?.seq !== keptFrom) return { keptFrom: 0, deleted: 0 };
  await audit.append(RETENTION_TYPE, {
    keptFrom,
    prevHash: root.prevHash,
    hash: root.hash,
    before,
    checkpoint: cp.seq,
  });
  // The retention record must be vouched for by a signature before anything it explains is gone.
  await audit.checkpoint();
  const deleted = await store.deleteAuditBefore(keptFrom);
  return { keptFrom, deleted };
}
