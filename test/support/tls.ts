/**
 * A self-signed certificate for loopback, made by openssl in `dir` (cert.pem, key.pem). It is its
 * own CA, so a client that trusts cert.pem checks the chain and the host name (localhost or
 * 127.0.0.1) as it would for a real one.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SelfSigned {
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM text of each. */
  readonly cert: string;
  readonly key: string;
}

export function selfSignedCert(dir: string, commonName = 'localhost'): SelfSigned {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 },
  );
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
