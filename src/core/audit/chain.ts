/**
 * The audit hash chain: each record's hash covers its own content and the previous record's
 * hash, so editing, deleting or reordering any record breaks the chain from that point on.
 */
import { hash } from 'node:crypto';
import { canonical } from './canonical.ts';

/** prevHash of the first record. */
export const GENESIS = '0'.repeat(64);

export interface RecordContent {
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
}

/** sha256 hex over the canonical JSON of { seq, at, type, data, prevHash }. */
export function hashRecord(record: RecordContent): string {
  return hashCanonicalData(record.seq, record.at, record.type, canonical(record.data), record.prevHash);
}

/**
 * The same hash when the data is already in canonical form: the writer canonicalizes once when
 * a record is queued and the verifier avoids rebuilding the envelope object per record. The
 * keys are spelled out in canonical (sorted) order: at, data, prevHash, seq, type.
 */
export function hashCanonicalData(
  seq: number,
  at: number,
  type: string,
  dataJson: string,
  prevHash: string,
): string {
  if (!Number.isSafeInteger(seq) || !Number.isFinite(at))
    throw new TypeError('audit seq and at must be finite numbers');
  const text = `{"at":${JSON.stringify(at)},"data":${dataJson},"prevHash":${JSON.stringify(prevHash)},"seq":${seq},"type":${JSON.stringify(type)}}`;
  // One-shot crypto.hash is several times cheaper than createHash() for short inputs.
  return hash('sha256', text, 'hex');
}
