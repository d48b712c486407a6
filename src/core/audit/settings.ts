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
 *   sinks:                                               # every record, in order (sinks.ts)
 *     - { type: file, path: /var/log/airlock/audit.jsonl, rotate: 100MB, keep: 10 }
 *     - { type: http, url: https://siem.example.com/airlock, secret: "${env:SIEM_SECRET}" }
 *     - { type: syslog, address: siem.example.com:6514, tls: true }
 *   retention: 400d                                      # cut at a checkpoint (retention.ts)
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

const SIZE = /^(\d+)\s*(B|KB|MB|GB)?$/i;
const SIZE_UNITS = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 } as const;
const size = z
  .union([z.number().int().positive(), z.string().regex(SIZE, 'a size such as 100MB')])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = SIZE.exec(v.trim())!;
    return Number(m[1]) * SIZE_UNITS[(m[2] ?? 'B').toUpperCase() as keyof typeof SIZE_UNITS];
  });

const sinkName = {
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,63}$/, 'letters, digits, - _ .')
    .optional(),
};
const sinkSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('file'),
    path: z.string().min(1),
    rotate: size.default(100 * 1024 ** 2),
    keep: z.number().int().min(1).max(1000).default(10),
    ...sinkName,
  }),
  z.strictObject({
    type: z.literal('http'),
    url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
    secret: z.string().min(1),
    batch: z.number().int().min(1).max(10_000).default(500),
    ...sinkName,
  }),
  z.strictObject({
    type: z.literal('syslog'),
    address: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port'),
    tls: z.boolean().default(false),
    /** PEM CA bundle (file reference) for a private syslog CA. */
    ca: z.string().min(1).optional(),
    app_name: z.string().min(1).max(48).default('airlock'),
    ...sinkName,
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
  sinks: z.array(sinkSchema).default([]),
  /** Delete records older than this (cut at a checkpoint; the log stays verifiable). Default: keep all. */
  retention: duration.optional(),
});
export type AuditConfig = z.output<typeof auditSchema>;

export type AnchorSettings =
  | { readonly type: 'file'; readonly path: string }
  | { readonly type: 'webhook'; readonly url: string; readonly secret: Secret };

export type SinkSettings = { readonly name: string } & (
  | { readonly type: 'file'; readonly path: string; readonly rotateBytes: number; readonly keep: number }
  | { readonly type: 'http'; readonly url: string; readonly secret: Secret; readonly batch: number }
  | {
      readonly type: 'syslog';
      readonly host: string;
      readonly port: number;
      readonly tls: boolean;
      readonly ca: Secret | undefined;
      readonly appName: string;
    }
);

export interface AuditSettings {
  /** Undefined: a key generated into the data directory. */
  readonly signingKey: Secret | undefined;
  readonly checkpointEvery: number;
  readonly checkpointIntervalMs: number;
  /** Undefined: one file anchor in the data directory. */
  readonly anchors: readonly AnchorSettings[] | undefined;
  /** Absolute. */
  readonly recordingsDir: string | undefined;
  readonly sinks: readonly SinkSettings[];
  /** Milliseconds; undefined: keep everything. */
  readonly retentionMs: number | undefined;
}

export const DEFAULT_AUDIT_SETTINGS: AuditSettings = {
  signingKey: undefined,
  checkpointEvery: 1000,
  checkpointIntervalMs: 60_000,
  anchors: undefined,
  recordingsDir: undefined,
  sinks: [],
  retentionMs: undefined,
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
    retentionMs: c.retention,
    sinks: c.sinks.map((k, i): SinkSettings => {
      const name = k.name ?? `${k.type}-${i + 1}`;
      if (k.type === 'file')
        return { name, type: 'file', path: resolve(baseDir, k.path), rotateBytes: k.rotate, keep: k.keep };
      if (k.type === 'http')
        return { name, type: 'http', url: k.url, secret: Secret.parse(k.secret, baseDir), batch: k.batch };
      const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d+)$/.exec(k.address)!;
      return {
        name,
        type: 'syslog',
        host: (m[1] ?? m[2])!,
        port: Number(m[3]),
        tls: k.tls,
        ca: k.ca === undefined ? undefined : Secret.parse(k.ca, baseDir),
        appName: k.app_name,
      };
    }),
  };
}
