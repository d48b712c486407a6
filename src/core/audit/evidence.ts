/**
 * The gateway's evidence: the audit log (with signed checkpoints and their anchors outside the
 * store) and the session recorder, set up and torn down together so that recordings are sealed
 * into the chain, and a final checkpoint signed, before the log closes.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { AirlockError } from '../errors.ts';
import type { Policy } from '../policy/policy.ts';
import { Recordings } from '../recording/recorder.ts';
import type { Store } from '../store.ts';
import { type Anchor, FileAnchor, readAnchorFile, WebhookAnchor } from './anchors.ts';
import {
  type CheckpointKey,
  generateCheckpointKey,
  KeyFormatError,
  parsePrivateKey,
  type SignedCheckpoint,
} from './checkpoint.ts';
import { AuditLog } from './log.ts';
import { canPrune, pruneAudit } from './retention.ts';
import { type AnchorSettings, type AuditSettings, DEFAULT_AUDIT_SETTINGS } from './settings.ts';
import { FileSink, HttpSink, SinkRunner, type SinkTransport, SyslogSink } from './sinks.ts';

export interface EvidenceLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface Evidence {
  readonly audit: AuditLog;
  readonly recordings: Recordings;
  /** The checkpoint signing key (its public half is published at /api/v1/audit/key). */
  readonly key: CheckpointKey;
  readonly anchors: readonly Anchor[];
  /** Streaming sinks; their lag is `audit.headSeq - status().deliveredThrough`. */
  readonly sinks: readonly SinkRunner[];
  /** Every checkpoint the file anchors hold, for `verify` to compare the store against. */
  anchoredCheckpoints(): SignedCheckpoint[];
  close(): Promise<void>;
}

type PolicyPaths = Pick<Policy, 'store' | 'baseDir' | 'audit'>;

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

export function auditSettingsOf(policy: Pick<Policy, 'audit'>): AuditSettings {
  return policy.audit ?? DEFAULT_AUDIT_SETTINGS;
}

export function recordingsDirOf(policy: PolicyPaths): string {
  return auditSettingsOf(policy).recordingsDir ?? resolve(dataDirOf(policy), 'recordings');
}

export function anchorSettingsOf(policy: PolicyPaths): readonly AnchorSettings[] {
  return (
    auditSettingsOf(policy).anchors ?? [
      { type: 'file', path: join(dataDirOf(policy), 'audit-anchors.jsonl') },
    ]
  );
}

/** The generated key's file when the policy names none. */
export function generatedKeyPath(policy: PolicyPaths): string {
  return join(dataDirOf(policy), 'audit-signing-key.pem');
}

const KEY_HINT =
  'audit.signing_key must reference an Ed25519 private key in PEM, e.g. made with `openssl genpkey -algorithm ed25519 -out audit-signing.pem`';

/**
 * The checkpoint signing key: the configured one, else the one generated into the data
 * directory (created on first use when `create`; undefined when absent and not `create`).
 */
export function loadCheckpointKey(policy: PolicyPaths, opts: { create: boolean }): CheckpointKey | undefined {
  const configured = auditSettingsOf(policy).signingKey;
  if (configured) {
    try {
      return parsePrivateKey(configured.reveal());
    } catch (err) {
      if (err instanceof KeyFormatError)
        throw new AirlockError('AIRLOCK_E_CONFIG_INVALID', err.message, { hint: KEY_HINT });
      throw err;
    }
  }
  const path = generatedKeyPath(policy);
  if (existsSync(path)) {
    try {
      return parsePrivateKey(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new AirlockError('AIRLOCK_E_CONFIG_INVALID', `${path}: ${(err as Error).message}`, {
        hint: 'restore the file, or move it away to have a new key generated (older checkpoints then verify only with the old public key)',
      });
    }
  }
  if (!opts.create) return undefined;
  const { privatePem, key } = generateCheckpointKey();
  mkdirSync(dirname(path), { recursive: true });
  // 'wx': two processes starting at once must not each write a different key.
  try {
    writeFileSync(path, privatePem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return parsePrivateKey(readFileSync(path, 'utf8'));
    throw err;
  }
  return key;
}

/** Checkpoints held by the policy's file anchors (missing files hold none). */
export function readFileAnchors(anchors: readonly AnchorSettings[]): {
  checkpoints: SignedCheckpoint[];
  badLines: { path: string; lines: number[] }[];
} {
  const checkpoints: SignedCheckpoint[] = [];
  const badLines: { path: string; lines: number[] }[] = [];
  for (const a of anchors) {
    if (a.type !== 'file' || !existsSync(a.path)) continue;
    const c = readAnchorFile(a.path);
    checkpoints.push(...c.checkpoints);
    if (c.badLines.length > 0) badLines.push({ path: a.path, lines: c.badLines });
  }
  return { checkpoints, badLines };
}

export async function openEvidence(opts: {
  readonly policy: Policy;
  readonly store: Store;
  readonly log?: EvidenceLog;
}): Promise<Evidence> {
  const { policy, store, log } = opts;
  const settings = auditSettingsOf(policy);
  const key = loadCheckpointKey(policy, { create: true })!;
  const anchorSettings = anchorSettingsOf(policy);
  const onAnchorError = (anchor: string, err: unknown) =>
    log?.warn(
      { err, anchor },
      'an audit checkpoint could not be anchored; it will be retried with the next one',
    );
  const anchors: Anchor[] = anchorSettings.map((a) =>
    a.type === 'file'
      ? new FileAnchor(a.path, onAnchorError)
      : new WebhookAnchor({ url: a.url, secret: () => a.secret.reveal(), onError: onAnchorError }),
  );
  const audit = new AuditLog(store, {
    checkpoints: {
      key,
      every: settings.checkpointEvery,
      intervalMs: settings.checkpointIntervalMs,
      onCheckpoint: (cp, seq) => {
        for (const a of anchors) a.send(cp, seq);
      },
    },
  });
  await audit.init();
  log?.info({ keyId: key.keyId, anchors: anchors.map((a) => a.name) }, 'audit checkpoints are signed');
  const recordings = new Recordings({
    dir: recordingsDirOf(policy),
    store,
    audit,
    onError: (err, id) => log?.warn({ err, recording: id }, 'a recording could not be stored'),
  });
  const sinks = settings.sinks.map((k) => {
    let transport: SinkTransport;
    if (k.type === 'file') transport = new FileSink(k.path, k.rotateBytes, k.keep);
    else if (k.type === 'http') transport = new HttpSink(k.url, () => k.secret.reveal());
    else
      transport = new SyslogSink(
        { host: k.host, port: k.port },
        k.tls ? { ca: k.ca?.reveal() } : undefined,
        k.appName,
      );
    return new SinkRunner({
      store,
      transport,
      cursorFile: join(dataDirOf(policy), 'sinks', `${k.name}.cursor`),
      ...(k.type === 'http' ? { batch: k.batch } : {}),
      onError: (sink, err) =>
        log?.warn(
          { err, sink },
          'an audit sink is failing; it keeps its place and retries, nothing is dropped',
        ),
    });
  });
  for (const s of sinks) s.start();
  // Retention runs in the gateway, which owns the log's head: a cut is itself a record.
  let retentionTimer: NodeJS.Timeout | undefined;
  const retentionMs = settings.retentionMs;
  if (retentionMs !== undefined) {
    if (!canPrune(store))
      log?.warn({}, 'audit.retention is set, but this store cannot delete audit records; keeping all');
    else {
      const prune = () =>
        pruneAudit(store, audit, Date.now() - retentionMs).then(
          (r) => {
            if (r.deleted > 0)
              log?.info({ keptFrom: r.keptFrom, deleted: r.deleted }, 'audit retention: old records deleted');
          },
          (err) => log?.warn({ err }, 'audit retention failed; it is tried again in an hour'),
        );
      void prune();
      retentionTimer = setInterval(prune, 3_600_000);
      retentionTimer.unref();
    }
  }
  // A writer of this process has not opened anything yet, so every open part is a leftover.
  await recordings
    .recover()
    .then((n) => {
      if (n > 0) log?.info({ recovered: n }, 'recordings left open by an unclean stop were sealed');
    })
    .catch((err) => log?.warn({ err }, 'recordings left open by an unclean stop could not be sealed'));
  return {
    audit,
    recordings,
    key,
    anchors,
    sinks,
    anchoredCheckpoints: () => readFileAnchors(anchorSettings).checkpoints,
    async close() {
      if (retentionTimer) clearInterval(retentionTimer);
      await recordings.close();
      await audit.close();
      await Promise.allSettled(sinks.map((s) => s.stop()));
      await Promise.allSettled(anchors.map((a) => a.close()));
    },
  };
}
