/**
 * The promise that credentials never leak, checked on everything a test gateway leaves behind:
 * its log (at debug level), its store and WAL files, recordings, exports — every file in its
 * directory except the secret files the test wrote on purpose — and every API response the
 * test read. A finding names the file or route, never the secret.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface Leak {
  readonly where: string;
  readonly secret: string;
}

/** Secrets as they could appear: as written, and base64/base64url-encoded (Basic auth, blobs). */
function forms(secret: string): Buffer[] {
  const raw = Buffer.from(secret, 'utf8');
  return [raw, Buffer.from(raw.toString('base64')), Buffer.from(raw.toString('base64url'))];
}

export function findLeaks(
  dir: string,
  secrets: Readonly<Record<string, string>>,
  skip: (path: string) => boolean,
): Leak[] {
  const leaks: Leak[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (skip(path)) continue;
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) {
        const bytes = readFileSync(path);
        for (const [label, secret] of Object.entries(secrets))
          if (secret.length >= 8 && forms(secret).some((f) => bytes.includes(f)))
            leaks.push({ where: relative(dir, path), secret: label });
      }
    }
  };
  walk(dir);
  return leaks;
}

export function leaksIn(text: string, secrets: Readonly<Record<string, string>>): string[] {
  return Object.entries(secrets)
    .filter(([, s]) => s.length >= 8 && forms(s).some((f) => text.includes(f.toString())))
    .map(([label]) => label);
}
