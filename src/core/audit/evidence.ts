/**
 * The gateway's evidence: the audit log (with signed checkpoints and their anchors outside the
 * store) and the session recorder, set up and torn down together so that recordings are sealed
 * into the chain before the log closes.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Policy } from '../policy/policy.ts';
import { Recordings } from '../recording/recorder.ts';
import type { Store } from '../store.ts';
import { AuditLog } from './log.ts';

export interface EvidenceLog {
  warn(obj: object, msg: string): void;
}

export interface Evidence {
  readonly audit: AuditLog;
  readonly recordings: Recordings;
  close(): Promise<void>;
}

/**
 * Where Airlock keeps files next to its store: the SQLite file's directory, or
 * `<policy dir>/airlock-data` for an in-memory or PostgreSQL store.
 */
export function dataDirOf(policy: Pick<Policy, 'store' | 'baseDir'>): string {
  const url = policy.store;
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path !== ':memory:' && path.length > 0)
      return dirname(isAbsolute(path) ? path : resolve(policy.baseDir, path));
  }
  return resolve(policy.baseDir, 'airlock-data');
}

export function recordingsDirOf(policy: Pick<Policy, 'store' | 'baseDir'>): string {
  return resolve(dataDirOf(policy), 'recordings');
}

export async function openEvidence(opts: {
  readonly policy: Policy;
  readonly store: Store;
  readonly log?: EvidenceLog;
}): Promise<Evidence> {
  const { policy, store, log } = opts;
  const audit = new AuditLog(store);
  await audit.init();
  const recordings = new Recordings({
    dir: recordingsDirOf(policy),
    store,
    audit,
    onError: (err, id) => log?.warn({ err, recording: id }, 'a recording could not be stored'),
  });
  return {
    audit,
    recordings,
    async close() {
      await recordings.close();
      await audit.close();
    },
  };
}
