/**
 * The `audit:` section of the policy file.
 *
 * ```yaml
 * audit:
 *   signing_key: "${file:./secrets/audit-signing.pem}"   # Ed25519, PKCS#8 PEM
 *   checkpoint_every: 1000                               # records
 *   checkpoint_interval: 1m
 *   anchors:
 *     - { type: file, path: /mnt/worm/airlock-anchors.jsonl }
 *     - { type: webhook, url: https://evidence.example.com/airlock, secret: "${env:ANCHOR_SECRET}" }
 *   recordings: ./airlock-data/recordings
 * ```
 *
 * Without `signing_key`, a key is generated once into the data directory (next to the SQLite
 * file) and kept there; without `anchors`, checkpoints are anchored to a file in the data
 * directory. Both defaults protect against someone who can only change the database; keep the
 * key and an anchor elsewhere to protect against someone who can change the data directory.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { duration } from '../policy/review.ts';
import { Secret } from '../policy/secret.ts';

const anchorSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('file'), path: z.string().min(1) }),
  z.strictObject({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
    /** HMAC-SHA256 key the receiver verifies X-Airlock-Signature with. */
    secret: z.string().min(1),
  }),
]);

export const auditSchema = z.strictObject({
  /** `${file:...}` or `${env:...}` holding an Ed25519 private key (PKCS#8 PEM). */
  signing_key: z.string().min(1).optional(),
  checkpoint_every: z.number().int().min(1).max(10_000_000).default(1000),
  checkpoint_interval: duration.default(60_000),
  anchors: z.array(anchorSchema).optional(),
  /** Directory for session recordings; default `<data dir>/recordings`. */
  recordings: z.string().min(1).optional(),
});
export type AuditConfig = z.output<typeof auditSchema>;

export type AnchorSettings =
  | { readonly type: 'file'; readonly path: string }
  | { readonly type: 'webhook'; readonly url: string; readonly secret: Secret };

export interface AuditSettings {
  /** Undefined: a key generated into the data directory. */
  readonly signingKey: Secret | undefined;
  readonly checkpointEvery: number;
  readonly checkpointIntervalMs: number;
  /** Undefined: one file anchor in the data directory. */
  readonly anchors: readonly AnchorSettings[] | undefined;
  /** Absolute. */
  readonly recordingsDir: string | undefined;
}

export const DEFAULT_AUDIT_SETTINGS: AuditSettings = {
  signingKey: undefined,
  checkpointEvery: 1000,
  checkpointIntervalMs: 60_000,
  anchors: undefined,
  recordingsDir: undefined,
};

export function resolveAudit(c: AuditConfig | undefined, baseDir: string): AuditSettings {
  if (!c) return DEFAULT_AUDIT_SETTINGS;
  return {
    signingKey: c.signing_key === undefined ? undefined : Secret.parse(c.signing_key, baseDir),
    checkpointEvery: c.checkpoint_every,
    checkpointIntervalMs: c.checkpoint_interval,
    anchors: c.anchors?.map((a) =>
      a.type === 'file'
        ? { type: 'file', path: resolve(baseDir, a.path) }
        : { type: 'webhook', url: a.url, secret: Secret.parse(a.secret, baseDir) },
    ),
    recordingsDir: c.recordings === undefined ? undefined : resolve(baseDir, c.recordings),
  };
}
