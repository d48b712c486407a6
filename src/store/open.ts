/**
 * Store URLs → Store. Callers (server, CLI, demo) only ever see the Store port, so adding the
 * PostgreSQL store is a new branch here and nothing else.
 */
import { isAbsolute, resolve } from 'node:path';
import { AirlockError } from '../core/errors.ts';
import type { Store } from '../core/store.ts';
import { PostgresStore } from './postgres.ts';
import { SqliteStore } from './sqlite.ts';

/**
 * `sqlite:./path/to.db` (relative to `baseDir`, parent directories created), `sqlite:/abs/path`,
 * or `sqlite::memory:`; `postgres://user:password@host:port/database` (or `postgresql://`) for
 * a store shared by several replicas. The store is migrated before it is returned.
 */
export async function openStore(url: string, baseDir: string): Promise<Store> {
  const store = createStore(url, baseDir);
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

function createStore(url: string, baseDir: string): Store {
  if (url.startsWith('sqlite:')) {
    const rest = url.slice('sqlite:'.length);
    if (rest === ':memory:') return new SqliteStore({ filename: ':memory:' });
    // Accept sqlite://path too, a common spelling of the same thing.
    const path = rest.startsWith('//') ? rest.slice(2) : rest;
    if (path.length === 0)
      throw new AirlockError('AIRLOCK_E_CONFIG_INVALID', 'store "sqlite:" names no file', {
        hint: 'write store: sqlite:./airlock-data/airlock.db or sqlite::memory:',
      });
    return new SqliteStore({ filename: isAbsolute(path) ? path : resolve(baseDir, path) });
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      // The URL itself may hold a password: never echo it.
      throw new AirlockError('AIRLOCK_E_CONFIG_INVALID', 'the postgres:// store URL cannot be parsed', {
        hint: 'write store: postgres://user:password@host:5432/database (percent-encode special characters in the password)',
      });
    }
    if (parsed.hostname.length === 0 && !parsed.searchParams.has('host'))
      throw new AirlockError('AIRLOCK_E_CONFIG_INVALID', 'the postgres:// store URL names no host', {
        hint: 'write store: postgres://user:password@host:5432/database',
      });
    return new PostgresStore({ connectionString: url });
  }
  throw new AirlockError(
    'AIRLOCK_E_CONFIG_INVALID',
    `store "${scheme ? `${scheme}:` : url}" is not a supported store URL`,
    {
      hint: 'use store: sqlite:./airlock-data/airlock.db for one gateway, or postgres://user@host/db for several replicas',
    },
  );
}
