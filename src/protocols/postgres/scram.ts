/**
 * SCRAM-SHA-256 client, as PostgreSQL uses it to authenticate the gateway to the target.
 * https://www.postgresql.org/docs/current/sasl-authentication.html
 * RFC 5802 (SCRAM) and RFC 7677 (SCRAM-SHA-256). No channel binding: we send the `n,,` GS2 header.
 * PostgreSQL takes the user name from the startup packet, so the SCRAM user name is left empty.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { AirlockError } from '../../core/errors.ts';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest();
}

function fail(why: string): never {
  throw new AirlockError('AIRLOCK_E_UPSTREAM_AUTH', `SCRAM exchange with the target failed: ${why}`);
}

function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) fail('malformed server message');
    out.set(part[0]!, part.slice(2));
  }
  return out;
}

/**
 * SASLprep (RFC 4013) reduced to what matters in practice: NFKC normalization of non-ASCII
 * passwords. PostgreSQL falls back to the raw bytes when SASLprep fails, and ASCII passwords are
 * unchanged either way.
 */
function prepare(password: string): string {
  return /^[\x00-\x7f]*$/.test(password) ? password : password.normalize('NFKC');
}

export class ScramClient {
  readonly #password: string;
  readonly #nonce: string;
  readonly #user: string;
  #clientFirstBare = '';
  #expectedServerSignature: Buffer | undefined;

  /** `user` and `nonce` are for tests against published vectors; PostgreSQL wants neither. */
  constructor(password: string, options: { user?: string; nonce?: string } = {}) {
    this.#password = prepare(password);
    this.#nonce = options.nonce ?? randomBytes(18).toString('base64');
    this.#user = (options.user ?? '').replace(/=/g, '=3D').replace(/,/g, '=2C');
  }

  /** The SASLInitialResponse payload. */
  clientFirst(): string {
    this.#clientFirstBare = `n=${this.#user},r=${this.#nonce}`;
    return `n,,${this.#clientFirstBare}`;
  }

  /** Given server-first-message, the SASLResponse payload (client-final-message). */
  clientFinal(serverFirst: string): string {
    const a = attributes(serverFirst);
    const nonce = a.get('r');
    const salt = a.get('s');
    const iterations = Number(a.get('i'));
    if (!nonce?.startsWith(this.#nonce) || nonce.length === this.#nonce.length)
      fail('the server nonce does not extend ours');
    if (!salt) fail('no salt');
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 10_000_000)
      fail('bad iteration count');
    const salted = pbkdf2Sync(this.#password, Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.#expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final-message: the target must prove it knows the password too. */
  verifyServerFinal(serverFinal: string): void {
    const a = attributes(serverFinal);
    if (a.has('e')) fail(`the server reported ${a.get('e')}`);
    const v = a.get('v');
    if (!v || !this.#expectedServerSignature) fail('no server signature');
    const got = Buffer.from(v, 'base64');
    if (got.length !== 32 || !timingSafeEqual(got, this.#expectedServerSignature))
      fail('the server signature does not match: the target may not be who it claims');
  }
}
