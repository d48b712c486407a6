/**
 * Export: the audit log as JSON Lines that can be verified offline with only the deployment's
 * public key (`airlock audit verify --from-export FILE --key FILE`).
 *
 * Line 1, the header:
 *   {"format":"airlock-audit-export","version":1,"generatedAt":ISO,"from":SEQ,
 *    "key":{"id":KEYID,"algorithm":"Ed25519","publicKey":PEM}}
 * Then one line per record, exactly as chained (`data` is the stored canonical JSON):
 *   {"seq":N,"at":MS,"type":T,"data":{...},"prevHash":H,"hash":H}
 * Last, the seal: a checkpoint signed at export time for the last exported record, so the
 * whole file is vouched for even when the log's newest checkpoint is older:
 *   {"seal":{"v":1,"seq":N,"hash":H,"at":MS,"key":KEYID,"sig":SIG}}
 *
 * Record hash: sha256 hex of the canonical JSON (keys sorted, no whitespace) of
 * {at, data, prevHash, seq, type}. The key in the header is informational: verify with a key
 * obtained independently (GET /api/v1/audit/key, or the operator).
 */
import type { Store } from '../store.ts';
import { canonical } from './canonical.ts';
import { hashCanonicalData } from './chain.ts';
import {
  asCheckpoint,
  type CheckpointKey,
  checkSignature,
  type KeyRing,
  publicKeyPem,
  signCheckpoint,
} from './checkpoint.ts';
import { CheckpointChecker, type CheckpointCheckOptions } from './checkpoint-check.ts';
import type { RawAuditReader, RawAuditRecord, VerifyResult } from './verify.ts';

export const EXPORT_FORMAT = 'airlock-audit-export';

export interface ExportOptions {
  /** First seq to export. Default 1. */
  readonly fromSeq?: number;
  /** Seals the export; without it there is no seal (and offline verification fails). */
  readonly key?: CheckpointKey | undefined;
  readonly batch?: number;
  readonly now?: () => number;
}

function hasRawReader(store: Store): store is Store & RawAuditReader {
  return typeof (store as Partial<RawAuditReader>).readAuditRaw === 'function';
}

async function readRaw(store: Store, fromSeq: number, limit: number): Promise<RawAuditRecord[]> {
  if (hasRawReader(store)) return store.readAuditRaw(fromSeq, limit);
  return (await store.readAudit(fromSeq, limit)).map((r) => ({
    seq: r.seq,
    at: r.at,
    type: r.type,
    dataJson: r.dataJson ?? canonical(r.data),
    prevHash: r.prevHash,
    hash: r.hash,
  }));
}

export function recordLine(r: RawAuditRecord): string {
  // `data` is spliced in as stored: it is canonical JSON already, and re-serialising could only
  // make it differ from what was hashed.
  return `{"seq":${r.seq},"at":${JSON.stringify(r.at)},"type":${JSON.stringify(r.type)},"data":${r.dataJson},"prevHash":${JSON.stringify(r.prevHash)},"hash":${JSON.stringify(r.hash)}}`;
}

/** The export, line by line (without newlines), streamed from the store in batches. */
export async function* exportLines(store: Store, opts: ExportOptions = {}): AsyncGenerator<string> {
  const from = Math.max(1, opts.fromSeq ?? 1);
  const batch = Math.max(1, opts.batch ?? 5000);
  const now = opts.now ?? Date.now;
  const header: Record<string, unknown> = {
    format: EXPORT_FORMAT,
    version: 1,
    generatedAt: new Date(now()).toISOString(),
    from,
  };
  if (opts.key)
    header.key = { id: opts.key.keyId, algorithm: 'Ed25519', publicKey: publicKeyPem(opts.key.publicKey) };
  yield JSON.stringify(header);
  let next = from;
  let last: RawAuditRecord | undefined;
  for (;;) {
    const rows = await readRaw(store, next, batch);
    for (const r of rows) {
      yield recordLine(r);
      last = r;
    }
    if (rows.length < batch) break;
    next = rows[rows.length - 1]!.seq + 1;
  }
  if (last && opts.key) yield JSON.stringify({ seal: signCheckpoint(opts.key, last.seq, last.hash, now()) });
}

/** Binary search for the first seq written at or after `time` (record times only grow). */
export async function firstSeqAtOrAfter(store: Store, time: number): Promise<number> {
  const head = await store.auditHead();
  if (!head) return 1;
  let lo = 1;
  let hi = head.seq + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = (await store.readAudit(mid, 1))[0];
    if (!r || r.at >= time) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export interface ExportVerifyOptions extends CheckpointCheckOptions {
  /** Required: without a key nothing vouches for the file. */
  readonly keys: KeyRing;
}

type Failure = Extract<VerifyResult, { ok: false }>;

/**
 * Verifies an export: every line chains to the one before it, every checkpoint and the seal
 * verify with `keys`, and the seal vouches for the last record (so nothing was cut off or
 * appended). The first problem is reported by record seq (and line number in the message).
 */
export async function verifyExport(
  lines: AsyncIterable<string> | Iterable<string>,
  opts: ExportVerifyOptions,
): Promise<VerifyResult> {
  const checker = new CheckpointChecker(opts);
  let lineNo = 0;
  let count = 0;
  let expectedSeq: number | undefined;
  let prevHash: string | undefined;
  let sealed = false;
  let firstSeq = 1;
  let headerSeen = false;
  const fail = (seq: number, problem: Failure['problem'], message: string): VerifyResult => ({
    ok: false,
    count,
    seq,
    problem,
    message,
  });
  const it = (
    Symbol.asyncIterator in lines
      ? (lines as AsyncIterable<string>)[Symbol.asyncIterator]()
      : (lines as Iterable<string>)[Symbol.iterator]()
  ) as AsyncIterator<string> | Iterator<string>;
  let peeked: IteratorResult<string> | undefined;
  const peek = async (): Promise<string | undefined> => {
    peeked ??= await it.next();
    return peeked.done ? undefined : peeked.value;
  };
  for (;;) {
    const step = peeked ?? (await it.next());
    peeked = undefined;
    if (step.done) break;
    const raw = step.value;
    lineNo += 1;
    const line = raw.trim();
    if (line === '') continue;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return fail(expectedSeq ?? 0, 'malformed', `line ${lineNo} is not JSON`);
    }
    if (!headerSeen) {
      headerSeen = true;
      if (value?.format !== EXPORT_FORMAT)
        return fail(
          0,
          'malformed',
          `line 1 is not an ${EXPORT_FORMAT} header: this is not an Airlock audit export`,
        );
      continue;
    }
    if (sealed)
      return fail(
        (expectedSeq ?? 1) - 1,
        'unsealed',
        `line ${lineNo} comes after the seal: records were appended to the export after it was sealed`,
      );
    if ('seal' in value) {
      const seal = asCheckpoint(value.seal);
      const lastSeq = (expectedSeq ?? 1) - 1;
      if (!seal) return fail(lastSeq, 'malformed', `line ${lineNo}: the seal is malformed`);
      const sig = checkSignature(seal, opts.keys);
      if (sig !== 'valid')
        return fail(
          lastSeq,
          'bad-signature',
          sig === 'unknown-key'
            ? `the seal (line ${lineNo}) is signed with key ${seal.key}, not the deployment's key: the export was re-signed or the wrong public key was given`
            : `the seal (line ${lineNo}) does not verify: it was forged or altered`,
        );
      if (seal.seq !== lastSeq || seal.hash !== prevHash)
        return fail(
          Math.min(seal.seq, lastSeq + 1),
          seal.seq > lastSeq ? 'truncated' : 'rehashed',
          seal.seq > lastSeq
            ? `records ${lastSeq + 1} to ${seal.seq} were removed from the export: the seal vouches for record ${seal.seq}, but the last record is ${lastSeq}`
            : `the seal vouches for record ${seal.seq} with hash ${seal.hash.slice(0, 16)}…, but the export ends at record ${lastSeq} with hash ${(prevHash ?? '').slice(0, 16)}…: records were rewritten or appended`,
        );
      sealed = true;
      continue;
    }
    const r = value as {
      seq?: unknown;
      at?: unknown;
      type?: unknown;
      data?: unknown;
      prevHash?: unknown;
      hash?: unknown;
    };
    if (
      !Number.isSafeInteger(r.seq) ||
      typeof r.at !== 'number' ||
      typeof r.type !== 'string' ||
      typeof r.data !== 'object' ||
      r.data === null ||
      typeof r.prevHash !== 'string' ||
      typeof r.hash !== 'string'
    )
      return fail(expectedSeq ?? 0, 'malformed', `line ${lineNo} is not an audit record`);
    const seq = r.seq as number;
    if (expectedSeq === undefined) {
      firstSeq = seq;
      expectedSeq = seq;
      prevHash = r.prevHash;
    }
    if (seq < expectedSeq)
      return fail(
        seq,
        'reordered',
        `line ${lineNo} holds record ${seq}, which belongs before record ${expectedSeq - 1}: records were reordered`,
      );
    if (seq > expectedSeq) {
      // A record moved later shows up right after: that is a swap, not a deletion.
      let nextSeq: unknown;
      try {
        nextSeq = (JSON.parse((await peek()) ?? 'null') as { seq?: unknown } | null)?.seq;
      } catch {
        nextSeq = undefined;
      }
      if (nextSeq === expectedSeq)
        return fail(
          expectedSeq,
          'reordered',
          `record ${expectedSeq} was reordered: line ${lineNo} holds record ${seq} and record ${expectedSeq} follows it`,
        );
      return fail(
        expectedSeq,
        'deleted',
        seq === expectedSeq + 1
          ? `record ${expectedSeq} was deleted: the export jumps from record ${expectedSeq - 1} to ${seq} (line ${lineNo})`
          : `records ${expectedSeq} to ${seq - 1} were deleted: the export jumps from record ${expectedSeq - 1} to ${seq} (line ${lineNo})`,
      );
    }
    let dataJson: string;
    try {
      dataJson = canonical(r.data);
    } catch {
      dataJson = '\u0000';
    }
    if (hashCanonicalData(seq, r.at, r.type, dataJson, r.prevHash) !== r.hash)
      return fail(
        seq,
        'edited',
        `record ${seq} (line ${lineNo}) was edited: its content no longer matches its hash`,
      );
    if (r.prevHash !== prevHash)
      return fail(
        seq,
        'broken-link',
        `record ${seq} (line ${lineNo}) does not link to record ${seq - 1}: record ${seq - 1} was rewritten or records between them were deleted`,
      );
    const bad = checker.observe(seq, r.type, dataJson, r.hash);
    if (bad) return fail(bad.seq, bad.problem, bad.message);
    prevHash = r.hash;
    expectedSeq = seq + 1;
    count += 1;
  }
  if (!headerSeen) return fail(0, 'malformed', 'the export is empty');
  const lastSeq = (expectedSeq ?? 1) - 1;
  if (!sealed && count > 0)
    return fail(
      lastSeq,
      'unsealed',
      `the export has no seal: it was cut short, or written without the signing key; nothing vouches for records after ${checker.summary().signedThrough}`,
    );
  const truncated = checker.finish(lastSeq);
  if (truncated) return fail(truncated.seq, truncated.problem, truncated.message);
  const summary = checker.summary();
  return {
    ok: true,
    count,
    headHash: prevHash ?? '',
    headSeq: lastSeq,
    firstSeq,
    checkpoints: { ...summary, signedThrough: count > 0 ? lastSeq : summary.signedThrough },
  };
}
