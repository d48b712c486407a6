/**
 * Chain verification. Streams the log in seq order, in batches, recomputing each record's hash
 * and checking that it links to the record before it. The first problem found is reported by
 * the seq of the record where it shows, classified so a person knows what happened:
 *
 * - edited: the record's content no longer matches its hash.
 * - deleted: seq numbers jump (records are missing), or records were removed and the rest
 *   renumbered (each later record's hash matches a seq further on).
 * - reordered: the record's content hashes correctly under a different seq, later in the log.
 * - inserted: a record that was not written by Airlock sits here; the records after it were
 *   pushed back (they hash correctly under a smaller seq).
 * - broken-link: the record is intact but its prev_hash is not the previous record's hash
 *   (the previous record was rewritten with a recomputed hash, or records between them were
 *   deleted and the rest rehashed).
 *
 * Then checkpoints (checkpoint-check.ts): signatures, the hashes they vouch for, and anchors
 * kept outside the store, which catch records rewritten with recomputed hashes and the newest
 * records deleted — neither of which the chain alone can show.
 */
import type { AuditRecord, Store } from '../store.ts';
import { canonical } from './canonical.ts';
import { GENESIS, hashCanonicalData } from './chain.ts';
import {
  CheckpointChecker,
  type CheckpointCheckOptions,
  type CheckpointProblem,
  type CheckpointSummary,
} from './checkpoint-check.ts';
import { RETENTION_TYPE } from './retention.ts';

export type Problem =
  | 'edited'
  | 'deleted'
  | 'reordered'
  | 'inserted'
  | 'broken-link'
  | CheckpointProblem
  /** Exports: the file is not an export, or a line is not a record. */
  | 'malformed'
  /** Exports: the seal that vouches for the last record is missing, or records follow it. */
  | 'unsealed';

export type VerifyResult =
  | {
      readonly ok: true;
      readonly count: number;
      readonly headHash: string;
      /** Seq of the newest record (equals count for a log that starts at 1). */
      readonly headSeq: number;
      /** Seq of the oldest record: above 1 when older records were removed by retention. */
      readonly firstSeq: number;
      readonly checkpoints: CheckpointSummary;
    }
  | {
      readonly ok: false;
      /** Records verified intact before the problem. */
      readonly count: number;
      readonly seq: number;
      readonly problem: Problem;
      readonly message: string;
    };

export interface VerifyOptions extends CheckpointCheckOptions {
  /** Records read per store round trip. Default 5000. */
  readonly batch?: number;
  /** How far (in seq) to look for the place a moved record came from. Default 4096. */
  readonly searchWindow?: number;
}

/** An audit record with its data exactly as stored (canonical JSON text). */
export interface RawAuditRecord {
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly dataJson: string;
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * Optional store capability: records with their stored data text. Hashing the stored text
 * directly is both faster (no parse and re-serialize) and stricter (any byte changed in the
 * row is an edit, even one that parses to the same value).
 */
export interface RawAuditReader {
  readAuditRaw(fromSeq: number, limit: number): Promise<RawAuditRecord[]>;
}

function hasRawReader(store: Store): store is Store & RawAuditReader {
  return typeof (store as Partial<RawAuditReader>).readAuditRaw === 'function';
}

/** Data that cannot be canonicalized can never match its hash; this text guarantees that. */
const UNHASHABLE = '\u0000';

function toRaw(record: AuditRecord): RawAuditRecord {
  let dataJson: string;
  try {
    dataJson = canonical(record.data);
  } catch {
    dataJson = UNHASHABLE;
  }
  return {
    seq: record.seq,
    at: record.at,
    type: record.type,
    dataJson,
    prevHash: record.prevHash,
    hash: record.hash,
  };
}

async function read(store: Store, fromSeq: number, limit: number): Promise<RawAuditRecord[]> {
  if (hasRawReader(store)) return store.readAuditRaw(fromSeq, limit);
  return (await store.readAudit(fromSeq, limit)).map(toRaw);
}

function contentHash(record: RawAuditRecord, seq: number = record.seq): string | undefined {
  if (typeof record.at !== 'number' || !Number.isFinite(record.at) || typeof record.type !== 'string')
    return undefined;
  return hashCanonicalData(seq, record.at, record.type, record.dataJson, record.prevHash);
}

/** The seq under which this record's content hashes to its stored hash, if any nearby. */
function originalSeq(record: RawAuditRecord, window: number): number | undefined {
  for (let d = 1; d <= window; d++) {
    for (const seq of [record.seq + d, record.seq - d]) {
      if (seq < 1) continue;
      if (contentHash(record, seq) === record.hash) return seq;
    }
  }
  return undefined;
}

export async function verifyChain(store: Store, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const batchSize = Math.max(1, opts.batch ?? 5000);
  const window = Math.max(1, opts.searchWindow ?? 4096);
  let expectedSeq = 1;
  let prevHash = GENESIS;
  let count = 0;
  const checker = new CheckpointChecker(opts);
  // A log cut by retention starts later; an audit.retention record further on must explain it.
  const first = (await read(store, 1, 1))[0];
  const firstSeq = first && first.seq > 1 ? first.seq : 1;
  if (first && first.seq > 1) {
    expectedSeq = first.seq;
    prevHash = first.prevHash;
  }
  let retentionRecord = 0;

  const fail = (seq: number, problem: Problem, message: string): VerifyResult => ({
    ok: false,
    count,
    seq,
    problem,
    message,
  });
  const next = async (seq: number): Promise<RawAuditRecord | undefined> => (await read(store, seq, 1))[0];

  for (;;) {
    const records = await read(store, expectedSeq, batchSize);
    if (records.length === 0) break;
    for (const record of records) {
      const seq = record.seq;
      if (seq !== expectedSeq) {
        const missing = seq - expectedSeq;
        return fail(
          expectedSeq,
          'deleted',
          missing === 1
            ? `record ${expectedSeq} was deleted: the log jumps from record ${expectedSeq - 1} to record ${seq}`
            : `records ${expectedSeq} to ${seq - 1} were deleted: the log jumps from record ${expectedSeq - 1} to record ${seq}`,
        );
      }
      const hash = contentHash(record);
      if (hash !== record.hash) {
        const from = originalSeq(record, window);
        if (from !== undefined && from > seq) {
          // Either it was swapped with a later record, or records before it were deleted and
          // everything after renumbered. Renumbering shifts the next record by the same amount.
          const after = await next(seq + 1);
          const shift = from - seq;
          // With no record after it, nothing can have been swapped into its place.
          if (!after || contentHash(after, after.seq + shift) === after.hash) {
            return fail(
              seq,
              'deleted',
              shift === 1
                ? `record ${seq} was deleted and the records after it renumbered: record ${seq} is the record written as ${from}`
                : `records ${seq} to ${from - 1} were deleted and the records after them renumbered: record ${seq} is the record written as ${from}`,
            );
          }
          return fail(
            seq,
            'reordered',
            `record ${seq} was reordered: it holds the record written as ${from}`,
          );
        }
        if (from !== undefined && from < seq) {
          return fail(
            from,
            'inserted',
            `a record was inserted at ${from}: the record now numbered ${seq} was written as ${from}`,
          );
        }
        // The record may itself be a fabricated insertion: then the next one hashes under seq.
        const after = await next(seq + 1);
        if (after && after.prevHash === prevHash && contentHash(after, seq) === after.hash) {
          return fail(
            seq,
            'inserted',
            `record ${seq} was inserted: it was not written by Airlock, and the record after it was written as ${seq}`,
          );
        }
        return fail(seq, 'edited', `record ${seq} was edited: its content no longer matches its hash`);
      }
      if (record.prevHash !== prevHash) {
        return fail(
          seq,
          seq === 1 ? 'deleted' : 'broken-link',
          seq === 1
            ? `record 1 does not start the chain: the records before it were deleted and the log renumbered`
            : `record ${seq} does not link to record ${seq - 1}: record ${seq - 1} was rewritten or records between them were deleted`,
        );
      }
      if (firstSeq > 1 && record.type === RETENTION_TYPE && retentionRecord === 0) {
        try {
          const d = JSON.parse(record.dataJson) as { keptFrom?: unknown; prevHash?: unknown };
          if (d.keptFrom === firstSeq && d.prevHash === first!.prevHash) retentionRecord = seq;
        } catch {
          // not one Airlock wrote; it explains nothing
        }
      }
      const bad = checker.observe(seq, record.type, record.dataJson, record.hash);
      if (bad) return fail(bad.seq, bad.problem, bad.message);
      prevHash = record.hash;
      expectedSeq = seq + 1;
      count += 1;
    }
    if (records.length < batchSize) break;
  }
  const truncated = checker.finish(expectedSeq - 1);
  if (truncated) return fail(truncated.seq, truncated.problem, truncated.message);
  const summary = checker.summary();
  if (firstSeq > 1) {
    // Nothing before record 1 was verified: the problem is at the very start.
    count = 0;
    const range = firstSeq === 2 ? 'record 1 was' : `records 1 to ${firstSeq - 1} were`;
    if (retentionRecord === 0)
      return fail(
        1,
        'deleted',
        `${range} deleted: the log starts at record ${firstSeq} and no audit.retention record explains it`,
      );
    if (summary.signaturesChecked && retentionRecord > summary.signedThrough)
      return fail(
        1,
        'deleted',
        `${range} deleted: the audit.retention record ${retentionRecord} that would explain it is not vouched for by a signed checkpoint`,
      );
  }
  return { ok: true, count, headHash: prevHash, headSeq: expectedSeq - 1, firstSeq, checkpoints: summary };
}
