/**
 * What verification learns from checkpoints, record by record: each checkpoint record must
 * vouch for the hash its record really has (else the records since the last good checkpoint
 * were rewritten and rehashed) and carry a valid signature (else it was forged); each
 * checkpoint anchored outside the store must match the store's record (else rewritten) and
 * must not lie beyond the end of the log (else the newest records were deleted).
 */
import {
  asCheckpoint,
  CHECKPOINT_TYPE,
  checkSignature,
  type KeyRing,
  type SignedCheckpoint,
} from './checkpoint.ts';

export type CheckpointProblem = 'rehashed' | 'bad-signature' | 'bad-checkpoint' | 'truncated';

export interface CheckpointFailure {
  readonly seq: number;
  readonly problem: CheckpointProblem;
  readonly message: string;
}

export interface CheckpointCheckOptions {
  /** Public keys checkpoints must verify with. Without keys, signatures are not checked. */
  readonly keys?: KeyRing | undefined;
  /** Checkpoints kept outside the store (anchor file, sink). */
  readonly anchors?: readonly SignedCheckpoint[] | undefined;
}

export interface CheckpointSummary {
  /** Checkpoint records seen and found good. */
  readonly checkpoints: number;
  /** Highest seq vouched for by a good checkpoint (0: none). */
  readonly signedThrough: number;
  /** Seq of the newest good checkpoint record (0: none). */
  readonly lastCheckpointRecord: number;
  /** Whether signatures were checked. */
  readonly signaturesChecked: boolean;
  /** The newest anchored checkpoint that was compared, if any. */
  readonly anchoredThrough: number;
  /** Anchored checkpoints ignored because their signature did not verify. */
  readonly badAnchors: number;
}

/** How many recent hashes are kept to check a checkpoint that lands a few records after its seq. */
const WINDOW = 1 << 16;

const short = (h: string) => `${h.slice(0, 16)}…`;
const iso = (ms: number) => new Date(ms).toISOString();

export class CheckpointChecker {
  private readonly keys: KeyRing | undefined;
  private readonly anchors = new Map<number, SignedCheckpoint>();
  private readonly ringHash: string[] = new Array(WINDOW);
  private readonly ringSeq = new Float64Array(WINDOW).fill(-1);
  private checkpoints = 0;
  private signedThrough = 0;
  private lastCheckpointRecord = 0;
  private anchoredThrough = 0;
  private maxAnchor: SignedCheckpoint | undefined;
  private badAnchors = 0;

  constructor(opts: CheckpointCheckOptions = {}) {
    this.keys = opts.keys;
    for (const a of opts.anchors ?? []) {
      if (this.keys && checkSignature(a, this.keys) !== 'valid') {
        this.badAnchors += 1;
        continue;
      }
      const prior = this.anchors.get(a.seq);
      if (prior && prior.hash !== a.hash) continue; // keep the first; a conflicting one cannot be both
      this.anchors.set(a.seq, a);
      if (!this.maxAnchor || a.seq > this.maxAnchor.seq) this.maxAnchor = a;
    }
  }

  /** Called for each record whose own hash and link were found intact, in order. */
  observe(seq: number, type: string, dataJson: string, recordHash: string): CheckpointFailure | undefined {
    this.ringHash[seq % WINDOW] = recordHash;
    this.ringSeq[seq % WINDOW] = seq;
    const anchored = this.anchors.get(seq);
    if (anchored) {
      if (anchored.hash !== recordHash)
        return this.rewritten(seq, anchored, `checkpoint anchored outside the store`);
      this.anchoredThrough = Math.max(this.anchoredThrough, seq);
      this.signedThrough = Math.max(this.signedThrough, seq);
    }
    if (type !== CHECKPOINT_TYPE) return undefined;
    let cp: SignedCheckpoint | undefined;
    try {
      cp = asCheckpoint(JSON.parse(dataJson));
    } catch {
      cp = undefined;
    }
    if (!cp || cp.seq >= seq)
      return {
        seq,
        problem: 'bad-checkpoint',
        message: `record ${seq} is a checkpoint that does not have the shape Airlock writes`,
      };
    if (this.keys) {
      const sig = checkSignature(cp, this.keys);
      if (sig !== 'valid')
        return {
          seq,
          problem: 'bad-signature',
          message:
            sig === 'unknown-key'
              ? `record ${seq} is a checkpoint signed with key ${cp.key}, which is not the deployment's key: it was forged or the wrong public key was given`
              : `record ${seq} is a checkpoint whose signature does not verify: it was forged or altered`,
        };
    }
    const known = this.ringSeq[cp.seq % WINDOW] === cp.seq ? this.ringHash[cp.seq % WINDOW] : undefined;
    // A checkpoint vouching for a record before the verified range (an export that starts
    // mid-log) cannot be compared here; the records it covers are not in front of us.
    if (known === undefined) return undefined;
    if (known !== cp.hash) return this.rewritten(cp.seq, cp, `signed checkpoint in record ${seq}`);
    this.checkpoints += 1;
    this.signedThrough = Math.max(this.signedThrough, cp.seq);
    this.lastCheckpointRecord = seq;
    return undefined;
  }

  /** After the last record: anchored checkpoints beyond it mean the newest records were deleted. */
  finish(lastSeq: number): CheckpointFailure | undefined {
    const a = this.maxAnchor;
    if (a && a.seq > lastSeq)
      return {
        seq: lastSeq + 1,
        problem: 'truncated',
        message: `records ${lastSeq + 1} to at least ${a.seq} were deleted: a checkpoint anchored outside the store (signed ${iso(a.at)}) vouches for record ${a.seq}, but the log ends at record ${lastSeq}`,
      };
    return undefined;
  }

  summary(): CheckpointSummary {
    return {
      checkpoints: this.checkpoints,
      signedThrough: this.signedThrough,
      lastCheckpointRecord: this.lastCheckpointRecord,
      signaturesChecked: this.keys !== undefined,
      anchoredThrough: this.anchoredThrough,
      badAnchors: this.badAnchors,
    };
  }

  private rewritten(seq: number, cp: SignedCheckpoint, by: string): CheckpointFailure {
    const from = this.signedThrough + 1;
    const range = from === seq ? `record ${seq} was` : `a record from ${from} to ${seq} was`;
    return {
      seq: from,
      problem: 'rehashed',
      message: `${range} rewritten and the hashes after it recomputed: the ${by} (signed ${iso(cp.at)}) vouches for record ${seq} with hash ${short(cp.hash)}, but record ${seq} now hashes to ${short(this.ringHash[seq % WINDOW] ?? '')}`,
    };
  }
}
