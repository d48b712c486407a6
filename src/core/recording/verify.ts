/**
 * Checking a recording against the evidence that vouches for it: the bytes must hash to the
 * SHA-256 in its `recording.closed` audit record, and that record must itself be intact (its
 * content hashes to its chain hash; the chain as a whole is `audit verify`'s job). The store's
 * metadata is only a pointer: an attacker who rewrites both the file and the metadata still
 * has to rewrite the audit record, which breaks the chain.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { hashRecord } from '../audit/chain.ts';
import type { AuditRecord } from '../store.ts';
import { RECORDING_AUDIT_TYPE } from './recorder.ts';
import type { RecordingMeta } from './types.ts';

export type RecordingProblem = 'open' | 'missing' | 'altered' | 'unbound' | 'incomplete';

export type RecordingCheck =
  | { readonly ok: true; readonly sha256: string; readonly bytes: number; readonly auditSeq: number }
  | { readonly ok: false; readonly problem: RecordingProblem; readonly message: string };

/** sha256 and length of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/**
 * The decision, given the bytes' actual hash and the audit record at `meta.auditSeq`. Pure,
 * so the CLI can apply it to bytes fetched over the API exactly as the server does to files.
 */
export function checkRecording(
  meta: RecordingMeta,
  actual: { readonly sha256: string; readonly bytes: number },
  record: AuditRecord | undefined,
): RecordingCheck {
  const name = `recording ${meta.id}`;
  if (meta.status !== 'closed' || meta.auditSeq === undefined)
    return {
      ok: false,
      problem: 'open',
      message: `${name} is still open (or its session never closed): its hash is not in the audit log yet`,
    };
  if (
    !record ||
    record.seq !== meta.auditSeq ||
    record.type !== RECORDING_AUDIT_TYPE ||
    record.data.recording !== meta.id
  )
    return {
      ok: false,
      problem: 'unbound',
      message: `${name}: audit record ${meta.auditSeq} is not this recording's recording.closed record`,
    };
  let intact: boolean;
  try {
    intact = hashRecord(record) === record.hash;
  } catch {
    intact = false;
  }
  if (!intact)
    return {
      ok: false,
      problem: 'unbound',
      message: `${name}: audit record ${record.seq}, which holds its hash, was edited (run airlock audit verify)`,
    };
  if (typeof record.data.error === 'string')
    return {
      ok: false,
      problem: 'incomplete',
      message: `${name} is incomplete: ${record.data.error}`,
    };
  const expected = record.data.sha256;
  if (actual.sha256 !== expected)
    return {
      ok: false,
      problem: 'altered',
      message: `${name} was altered: its ${actual.bytes} bytes hash to ${actual.sha256}, but audit record ${record.seq} recorded ${String(expected)} (${String(record.data.bytes)} bytes)`,
    };
  return { ok: true, sha256: actual.sha256, bytes: actual.bytes, auditSeq: record.seq };
}

/** Reads the recording's bytes from `dir` and checks them. */
export async function verifyRecordingFile(
  dir: string,
  meta: RecordingMeta,
  readAudit: (seq: number) => Promise<AuditRecord | undefined>,
): Promise<RecordingCheck> {
  let actual: { sha256: string; bytes: number };
  try {
    actual = await hashFile(join(dir, meta.path));
  } catch {
    return {
      ok: false,
      problem: 'missing',
      message: `recording ${meta.id}: its file ${meta.path} is missing from ${dir}`,
    };
  }
  const record = meta.auditSeq === undefined ? undefined : await readAudit(meta.auditSeq);
  return checkRecording(meta, actual, record);
}
