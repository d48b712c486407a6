/**
 * Signed checkpoints. Every N records or T seconds the audit log appends a checkpoint record
 * that states "record SEQ has hash HASH" at a time, signed with the deployment's Ed25519 key.
 * Because each hash covers everything before it, one valid signature vouches for the whole
 * chain up to SEQ: rewriting any earlier record and recomputing the hashes after it (which
 * needs only database access) changes HASH, and producing a new signature needs the key.
 *
 * The signed bytes are the canonical JSON of the statement `{at, hash, key, seq, v}` (keys
 * sorted, no whitespace); the signature is Ed25519 (RFC 8032) over those bytes, base64url.
 * `key` is the key id: the first 16 hex digits of SHA-256 over the raw 32-byte public key.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hash,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { canonical } from './canonical.ts';

/** The audit record type of a checkpoint. */
export const CHECKPOINT_TYPE = 'audit.checkpoint';

export interface CheckpointStatement {
  readonly v: 1;
  /** The record the checkpoint vouches for. */
  readonly seq: number;
  /** That record's chain hash. */
  readonly hash: string;
  /** When it was signed, epoch milliseconds. */
  readonly at: number;
  /** Key id of the signing key. */
  readonly key: string;
}

export interface SignedCheckpoint extends CheckpointStatement {
  /** Ed25519 signature over canonical(statement), base64url. */
  readonly sig: string;
}

export class KeyFormatError extends TypeError {
  override readonly name = 'KeyFormatError';
}

/** Key id: first 16 hex digits of sha256 over the raw public key. */
export function keyIdOf(publicKey: KeyObject): string {
  return hash('sha256', rawPublicKey(publicKey), 'hex').slice(0, 16);
}

/** The 32 raw bytes of an Ed25519 public key. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' }) as { x?: string };
  if (!jwk.x) throw new KeyFormatError('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

export interface CheckpointKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

/** An Ed25519 private key from PEM (PKCS#8). */
export function parsePrivateKey(pem: string): CheckpointKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new KeyFormatError(`the audit signing key is not a PEM private key: ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new KeyFormatError(
      `the audit signing key is a ${privateKey.asymmetricKeyType ?? 'unknown'} key; it must be Ed25519`,
    );
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/**
 * An Ed25519 public key from PEM (SPKI), from a raw 32-byte key in base64/base64url, or from
 * the JSON that GET /api/v1/audit/key answers.
 */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  let key: KeyObject;
  try {
    if (t.startsWith('{')) {
      const j = JSON.parse(t) as { publicKey?: unknown };
      if (typeof j.publicKey !== 'string') throw new Error('no "publicKey" field');
      return parsePublicKey(j.publicKey);
    }
    if (t.startsWith('-----BEGIN')) key = createPublicKey(t);
    else {
      const raw = Buffer.from(t, 'base64url');
      if (raw.length !== 32) throw new Error(`${raw.length} bytes, not 32`);
      key = createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
        format: 'jwk',
      });
    }
  } catch (err) {
    throw new KeyFormatError(`not an Ed25519 public key (PEM or raw base64): ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new KeyFormatError(
      `the public key is a ${key.asymmetricKeyType ?? 'unknown'} key; it must be Ed25519`,
    );
  return key;
}

export function generateCheckpointKey(): { privatePem: string; key: CheckpointKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    key: { privateKey, publicKey, keyId: keyIdOf(publicKey) },
  };
}

export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ format: 'pem', type: 'spki' }).toString();
}

function statementBytes(s: CheckpointStatement): Buffer {
  return Buffer.from(canonical({ v: s.v, seq: s.seq, hash: s.hash, at: s.at, key: s.key }), 'utf8');
}

export function signCheckpoint(
  key: CheckpointKey,
  seq: number,
  headHash: string,
  at: number,
): SignedCheckpoint {
  const statement: CheckpointStatement = { v: 1, seq, hash: headHash, at, key: key.keyId };
  const sig = sign(null, statementBytes(statement), key.privateKey).toString('base64url');
  return { ...statement, sig };
}

/** Public keys by key id. */
export type KeyRing = ReadonlyMap<string, KeyObject>;

export function keyRing(keys: readonly KeyObject[]): KeyRing {
  return new Map(keys.map((k) => [keyIdOf(k), k]));
}

export type SignatureCheck = 'valid' | 'invalid' | 'unknown-key';

export function checkSignature(cp: SignedCheckpoint, keys: KeyRing): SignatureCheck {
  const key = keys.get(cp.key);
  if (!key) return 'unknown-key';
  let sig: Buffer;
  try {
    sig = Buffer.from(cp.sig, 'base64url');
  } catch {
    return 'invalid';
  }
  try {
    return verify(null, statementBytes(cp), key, sig) ? 'valid' : 'invalid';
  } catch {
    return 'invalid';
  }
}

/** A checkpoint from parsed JSON, or undefined when it does not have the shape of one. */
export function asCheckpoint(value: unknown): SignedCheckpoint | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (
    v.v !== 1 ||
    !Number.isSafeInteger(v.seq) ||
    (v.seq as number) < 1 ||
    typeof v.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(v.hash) ||
    typeof v.at !== 'number' ||
    !Number.isFinite(v.at) ||
    typeof v.key !== 'string' ||
    typeof v.sig !== 'string'
  )
    return undefined;
  return { v: 1, seq: v.seq as number, hash: v.hash, at: v.at, key: v.key, sig: v.sig };
}

export function parseCheckpointJson(text: string): SignedCheckpoint | undefined {
  try {
    return asCheckpoint(JSON.parse(text));
  } catch {
    return undefined;
  }
}
