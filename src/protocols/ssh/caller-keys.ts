/**
 * Public keys registered to principals on an SSH connection (`caller_keys`): which principal, if
 * any, a key offered at login belongs to. Signatures are checked by the caller of `find` with
 * the returned key. https://www.rfc-editor.org/rfc/rfc4252#section-7
 */
import ssh2, { type ParsedKey } from 'ssh2';
import type { SshConnection } from '../../core/policy/connections/ssh.ts';

export interface CallerKey {
  readonly principal: string;
  readonly key: ParsedKey;
}

const parsed = new WeakMap<SshConnection, readonly CallerKey[]>();

function keysOf(connection: SshConnection): readonly CallerKey[] {
  let keys = parsed.get(connection);
  if (!keys) {
    const list: CallerKey[] = [];
    for (const [principal, lines] of connection.callerKeys)
      for (const line of lines) {
        const k = ssh2.utils.parseKey(line);
        const key = Array.isArray(k) ? k[0] : k;
        // The schema checked the shape; a key ssh2 cannot read simply never matches.
        if (key && !(key instanceof Error)) list.push({ principal, key });
      }
    keys = list;
    parsed.set(connection, keys);
  }
  return keys;
}

/** The registered key with this algorithm and blob, if any. */
export function findCallerKey(connection: SshConnection, algo: string, blob: Buffer): CallerKey | undefined {
  return keysOf(connection).find((k) => k.key.getPublicSSH().equals(blob) && sameFamily(k.key.type, algo));
}

/** RSA keys sign with rsa-sha2-256/512 while the key type stays ssh-rsa. */
function sameFamily(type: string, algo: string): boolean {
  return type === algo || (type === 'ssh-rsa' && algo.startsWith('rsa-sha2-'));
}
