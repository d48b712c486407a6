/**
 * Host keys, both ways: Airlock's own key (generated once, then kept, so callers' known_hosts
 * entries stay valid across restarts), and the pins a target must match.
 * Fingerprints: https://www.openssh.com/txt/release-6.8 (SHA256, unpadded base64 of the blob).
 * known_hosts format: sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT".
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import ssh2 from 'ssh2';
import { dataDirOf } from '../../core/audit/evidence.ts';
import type { Policy } from '../../core/policy/policy.ts';

/** `SHA256:…` of a public key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Where Airlock keeps its own host key: in its data directory (next to the SQLite file), so one
 * directory holds everything a gateway must keep.
 */
export function hostKeyPath(policy: Pick<Policy, 'store' | 'baseDir'>): string {
  return join(dataDirOf(policy), 'ssh_host_ed25519_key');
}

/** Reads the key at `path`, or generates an Ed25519 key there (mode 0600) on first start. */
export function loadOrCreateHostKey(path: string): { key: string; created: boolean } {
  if (existsSync(path)) return { key: readFileSync(path, 'utf8'), created: false };
  const pair = generateHostKey();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Write then rename, so a crash never leaves half a key that the next start would reject.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, pair.private, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  writeFileSync(`${path}.pub`, `${pair.public}\n`, { mode: 0o644 });
  return { key: pair.private, created: true };
}

/**
 * A new Ed25519 key that ssh2 can read back: a few in a thousand keys ssh2 generates come out
 * as "Malformed OpenSSH private key" to its own parser, and a kept key that cannot be read
 * would stop the listener from ever starting.
 */
function generateHostKey(): { private: string; public: string } {
  for (let attempt = 0; ; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'airlock' });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) || attempt >= 20) return pair;
  }
}

/** The public half of a private key, as `type base64`, and its fingerprint. */
export function publicKeyOf(privateKey: string): { line: string; fingerprint: string } {
  const parsed = ssh2.utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error('the host key could not be read');
  const blob = key.getPublicSSH();
  return { line: `${key.type} ${blob.toString('base64')}`, fingerprint: fingerprint(blob) };
}

export interface HostKeyPin {
  /** As written in the policy, for messages. */
  readonly text: string;
  matches(blob: Buffer): boolean;
}

/**
 * A pin: `SHA256:…`, a known_hosts line (`host keytype base64 [comment]`, optionally with a
 * `@cert-authority` or `@revoked` marker), or a bare `keytype base64`. A `@revoked` line
 * matches nothing; `@cert-authority` is not supported (Airlock pins the host key itself), so it
 * matches nothing either and the connection is refused.
 */
export function parsePin(text: string): HostKeyPin {
  const t = text.trim();
  if (t.startsWith('SHA256:')) {
    const want = t.replace(/=+$/, '');
    return { text: t, matches: (blob) => fingerprint(blob) === want };
  }
  const fields = t.split(/\s+/);
  if (fields[0]?.startsWith('@')) return { text: t, matches: () => false };
  // A known_hosts line has the host pattern first; a bare key starts with its type.
  const keyAt = /^(ssh-|ecdsa-|sk-)/.test(fields[0] ?? '') ? 0 : 1;
  const b64 = fields[keyAt + 1] ?? '';
  const want = Buffer.from(b64, 'base64');
  return { text: t, matches: (blob) => want.length > 0 && want.equals(blob) };
}
