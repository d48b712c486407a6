/**
 * `type: ssh` connections: which host Airlock logs in to, with which credential, and which host
 * key that host must present. Callers log in to Airlock with the connection's name as their SSH
 * user name; they never see the credential or talk to the host directly.
 */
import { z } from 'zod';
import type { Secret } from '../secret.ts';
import { baseOf, type ConnectionBase, connectionCommon, type ResolveContext } from './common.ts';

/** `SHA256:` + unpadded base64 of the key blob's SHA-256, as `ssh-keygen -l` prints it. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;
/** A known_hosts line (`host[,host2] keytype base64`, markers and hashed hosts allowed). */
const KNOWN_HOSTS_LINE = /^(@\S+\s+)?\S+\s+(ssh-|ecdsa-|sk-)\S+\s+[A-Za-z0-9+/]+=*(\s.*)?$/;
/** Bare `keytype base64` (the first two fields of a .pub file). */
const PUBLIC_KEY = /^(ssh-|ecdsa-|sk-)\S+\s+[A-Za-z0-9+/]+=*(\s.*)?$/;
/** `host:port` destination pattern for port forwarding; `*` wildcards allowed in either part. */
const DESTINATION = /^(\[[0-9A-Fa-f:*]+\]|[A-Za-z0-9.*_-]+):(\d{1,5}|\*)$/;

const hostKey = z
  .string()
  .trim()
  .refine((s) => FINGERPRINT.test(s) || KNOWN_HOSTS_LINE.test(s) || PUBLIC_KEY.test(s), {
    message:
      'a SHA256 fingerprint (SHA256:… as `ssh-keygen -lf key.pub` prints it), a known_hosts line, or a public key (`ssh-ed25519 AAAA…`)',
  });

export const sshConnectionSchema = z.strictObject({
  type: z.literal('ssh'),
  upstream: z
    .strictObject({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535).default(22),
      user: z.string().min(1),
      /** `${file:./deploy_key}` or `${env:NAME}`: an OpenSSH or PEM private key. */
      private_key: z.string().min(1).optional(),
      /** For an encrypted private key. */
      passphrase: z.string().min(1).optional(),
      /** Password login, when the host takes no key. */
      password: z.string().min(1).optional(),
      /** The host key the target must present; one value or several (key rotation). */
      host_key: z.union([hostKey, z.array(hostKey).min(1)]),
    })
    .refine((u) => u.private_key !== undefined || u.password !== undefined, {
      message: 'give private_key (preferred) or password: Airlock logs in to the host with it',
      path: ['private_key'],
    }),
  /**
   * Port forwarding destinations callers may open through this connection (`db.internal:5432`,
   * `10.0.0.*:443`). Anything not listed is refused, whatever the rules say.
   */
  forwarding: z
    .array(z.string().regex(DESTINATION, 'host:port, e.g. db.internal:5432 (`*` wildcards allowed)'))
    .default([]),
  /**
   * Public keys callers may log in with instead of a token, by principal name
   * (`alice: ["ssh-ed25519 AAAA… alice@laptop"]`). The principal must be a known identity.
   */
  caller_keys: z
    .record(
      z.string().min(1),
      z
        .array(z.string().trim().regex(PUBLIC_KEY, 'a public key line, e.g. ssh-ed25519 AAAA… comment'))
        .min(1),
    )
    .default({}),
  ...connectionCommon,
});

export interface SshConnection extends ConnectionBase {
  readonly type: 'ssh';
  readonly upstream: {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly privateKey?: Secret | undefined;
    readonly passphrase?: Secret | undefined;
    readonly password?: Secret | undefined;
    /** Pins as written: fingerprints, known_hosts lines or public keys. */
    readonly hostKeys: readonly string[];
  };
  readonly forwarding: readonly string[];
  /** Principal name → public key lines that log in as that principal. */
  readonly callerKeys: ReadonlyMap<string, readonly string[]>;
}

export function resolveSshConnection(
  c: z.output<typeof sshConnectionSchema>,
  ctx: ResolveContext,
): SshConnection {
  const u = c.upstream;
  return {
    ...baseOf(ctx.name, c),
    type: 'ssh',
    upstream: {
      host: u.host,
      port: u.port,
      user: u.user,
      privateKey: u.private_key === undefined ? undefined : ctx.secret(u.private_key),
      passphrase: u.passphrase === undefined ? undefined : ctx.secret(u.passphrase),
      password: u.password === undefined ? undefined : ctx.secret(u.password),
      hostKeys: typeof u.host_key === 'string' ? [u.host_key] : u.host_key,
    },
    forwarding: c.forwarding,
    callerKeys: new Map(Object.entries(c.caller_keys)),
  };
}
