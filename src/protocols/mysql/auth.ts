/**
 * Password proofs for the authentication plugins the gateway speaks.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods.html
 *
 * To callers only the plain token is useful (Airlock keeps hashes of tokens, so a scramble
 * computed from one cannot be checked): caching_sha2_password's "full authentication" gives it
 * to us over TLS, or encrypted with the gateway's RSA key on a plain connection.
 */
import { constants, createHash, generateKeyPairSync, privateDecrypt, publicEncrypt } from 'node:crypto';

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i % b.length]!;
  return out;
}

/** mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). Empty for no password. */
export function nativePasswordProof(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const s1 = sha1(Buffer.from(password, 'utf8'));
  return xor(s1, sha1(scramble.subarray(0, 20), sha1(s1)));
}

/** caching_sha2_password fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble). */
export function cachingSha2Proof(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const m1 = sha256(Buffer.from(password, 'utf8'));
  return xor(m1, sha256(sha256(m1), scramble.subarray(0, 20)));
}

/** The password (NUL-terminated) XOR the scramble, RSA-OAEP encrypted with the server's key. */
export function rsaEncryptPassword(password: string, scramble: Buffer, publicKeyPem: string): Buffer {
  const plain = xor(Buffer.from(`${password}\0`, 'utf8'), scramble.subarray(0, 20));
  return publicEncrypt({ key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING }, plain);
}

export interface RsaKeys {
  readonly publicKeyPem: string;
  readonly privateKeyPem: string;
}

/** A key pair for callers' caching_sha2_password on plain connections (made once per listener). */
export function generateRsaKeys(): RsaKeys {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

/** Recovers the password a caller encrypted with our public key; undefined when it does not decrypt. */
export function rsaDecryptPassword(data: Buffer, scramble: Buffer, keys: RsaKeys): string | undefined {
  let plain: Buffer;
  try {
    plain = privateDecrypt({ key: keys.privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING }, data);
  } catch {
    return undefined;
  }
  const pw = xor(plain, scramble.subarray(0, 20));
  const end = pw.indexOf(0);
  return (end < 0 ? pw : pw.subarray(0, end)).toString('utf8');
}
