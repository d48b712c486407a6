/**
 * MariaDB's `client_ed25519` authentication: an Ed25519 signature of the server's nonce, with the
 * password itself as the secret: the 64-byte expanded key is SHA-512(password) rather than
 * SHA-512 of a 32-byte seed, so no standard Ed25519 API can produce it (they all take the seed).
 * https://mariadb.com/kb/en/authentication-plugin-ed25519/
 * https://datatracker.ietf.org/doc/html/rfc8032#section-5.1.6 (signing, from the expanded key on)
 *
 * Plain BigInt arithmetic in extended coordinates: a login signs one 32-byte nonce, so speed does
 * not matter; the secret never leaves this process and the nonce is the target's.
 */
import { createHash } from 'node:crypto';

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const D = mod(-121665n * inverse(121666n));
const BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
const BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;

type Point = readonly [bigint, bigint, bigint, bigint];

function mod(a: bigint, m = P): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = mod(b);
  let k = e;
  while (k > 0n) {
    if (k & 1n) r = (r * x) % P;
    x = (x * x) % P;
    k >>= 1n;
  }
  return r;
}

function inverse(a: bigint): bigint {
  return pow(a, P - 2n);
}

function add(p: Point, q: Point): Point {
  const [x1, y1, z1, t1] = p;
  const [x2, y2, z2, t2] = q;
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(2n * D * t1 * t2);
  const d = mod(2n * z1 * z2);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function multiply(k: bigint): Point {
  let r: Point = [0n, 1n, 1n, 0n];
  let q: Point = [BX, BY, 1n, mod(BX * BY)];
  let n = k;
  while (n > 0n) {
    if (n & 1n) r = add(r, q);
    q = add(q, q);
    n >>= 1n;
  }
  return r;
}

function encode(p: Point): Buffer {
  const zi = inverse(p[2]);
  const x = mod(p[0] * zi);
  const y = mod(p[1] * zi);
  const out = Buffer.alloc(32);
  let v = y;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (x & 1n) out[31]! |= 0x80;
  return out;
}

function littleEndian(b: Buffer): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

function scalarBytes(v: bigint): Buffer {
  const out = Buffer.alloc(32);
  let x = v;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function sha512(...parts: Buffer[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Ed25519 signature (R || S) of `message` under the expanded key `az` (64 bytes). */
export function signWithExpandedKey(az: Buffer, message: Buffer): Buffer {
  const a = Buffer.from(az.subarray(0, 32));
  a[0]! &= 248;
  a[31]! &= 63;
  a[31]! |= 64;
  const scalar = littleEndian(a);
  const publicKey = encode(multiply(scalar));
  const r = mod(littleEndian(sha512(az.subarray(32, 64), message)), L);
  const R = encode(multiply(r));
  const h = mod(littleEndian(sha512(R, publicKey, message)), L);
  const s = mod(r + h * scalar, L);
  return Buffer.concat([R, scalarBytes(s)]);
}

/** What `client_ed25519` sends: the nonce signed with SHA-512(password) as the expanded key. */
export function ed25519PasswordProof(password: string, nonce: Buffer): Buffer {
  return signWithExpandedKey(sha512(Buffer.from(password, 'utf8')), nonce.subarray(0, 32));
}
