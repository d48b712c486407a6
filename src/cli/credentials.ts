/**
 * The CLI's token cache: what `airlock login` got from the identity provider, per gateway URL,
 * in $AIRLOCK_CONFIG_DIR/credentials.json (default ~/.config/airlock), readable by the user
 * only. AIRLOCK_TOKEN, when set, always wins over the cache.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface CachedCredential {
  readonly token: string;
  /** Epoch milliseconds, when known. */
  readonly expiresAt?: number | undefined;
  readonly issuer?: string | undefined;
  readonly principal?: string | undefined;
  /** To get a fresh ID token when this one expires (when the provider issued one). */
  readonly refreshToken?: string | undefined;
  readonly clientId?: string | undefined;
}

type CacheFile = Record<string, CachedCredential>;

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.AIRLOCK_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'airlock');
}

function cacheFile(env: NodeJS.ProcessEnv): string {
  return join(configDir(env), 'credentials.json');
}

function readCache(env: NodeJS.ProcessEnv): CacheFile {
  try {
    const parsed = JSON.parse(readFileSync(cacheFile(env), 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as CacheFile) : {};
  } catch {
    return {};
  }
}

function writeCache(env: NodeJS.ProcessEnv, cache: CacheFile): void {
  const dir = configDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = cacheFile(env);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(cache, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** The cached entry for this gateway, expired or not. */
export function cachedEntry(url: string, env: NodeJS.ProcessEnv = process.env): CachedCredential | undefined {
  const c = readCache(env)[url];
  return c && typeof c.token === 'string' ? c : undefined;
}

/** The cached token for this gateway, unless it has expired. */
export function cachedToken(url: string, env: NodeJS.ProcessEnv = process.env): CachedCredential | undefined {
  const c = readCache(env)[url];
  if (!c || typeof c.token !== 'string') return undefined;
  if (c.expiresAt !== undefined && c.expiresAt <= Date.now()) return undefined;
  return c;
}

export function saveToken(
  url: string,
  credential: CachedCredential,
  env: NodeJS.ProcessEnv = process.env,
): void {
  writeCache(env, { ...readCache(env), [url]: credential });
}

export function forgetToken(url: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const cache = readCache(env);
  if (!(url in cache)) return false;
  delete cache[url];
  writeCache(env, cache);
  return true;
}
