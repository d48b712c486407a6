/**
 * The private directory an in-process test gateway runs from: the test principals' tokens as
 * files under secrets/ (mode 0600) that the policy names by `${file:...}` reference, the policy
 * file with the head every test gateway shares (listeners on ephemeral loopback ports, a SQLite
 * store, the token identities), the gateway started from it and stopped again, and the REST API
 * called as one of the principals. The per-protocol helpers add their connections and clients.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { type Gateway, type GatewayOptions, startGateway } from '../../src/server/gateway.ts';
import { findLeaks, leaksIn } from './secret-scan.ts';

export interface Principal {
  readonly kind: string;
  readonly groups: readonly string[];
}

/** Principals every test gateway knows. */
export const PRINCIPALS = {
  /** The AI agent whose writes are held. */
  agent: { kind: 'agent', groups: ['agents'] },
  /** Reviewers. */
  alice: { kind: 'human', groups: ['dba'] },
  bob: { kind: 'human', groups: ['dba'] },
  /** A DBA who also issues writes: must never approve their own. */
  carol: { kind: 'human', groups: ['dba'] },
  /** A human outside the reviewer group. */
  eve: { kind: 'human', groups: ['support'] },
  /** For the benchmark: reads and writes allowed. */
  bench: { kind: 'service', groups: ['bench'] },
} as const;
export type PrincipalName = keyof typeof PRINCIPALS;

export interface ApiResponse<T> {
  readonly status: number;
  readonly body: T;
  readonly text: string;
}

/** A REST API call as principal `as` (a name the gateway knows, or a raw token), or unauthenticated. */
export type ApiCall<P extends string> = <T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  as?: P,
) => Promise<ApiResponse<T>>;

/**
 * Calls the API at `baseUrl`; `as` is looked up in `tokens` and, when it is none of them, sent
 * as the token itself. With `secrets`, an answer that carries any of them fails the call.
 */
export function apiCaller<P extends string>(
  baseUrl: string,
  tokens: Readonly<Record<P, string>>,
  secrets?: Readonly<Record<string, string>>,
): ApiCall<P | (string & {})> {
  return async <T>(method: string, path: string, body?: unknown, as?: string) => {
    const token = as === undefined ? undefined : Object.hasOwn(tokens, as) ? tokens[as as P] : as;
    const headers: Record<string, string> = {};
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (secrets !== undefined) {
      const leaked = leaksIn(text, secrets);
      if (leaked.length > 0)
        throw new Error(`${method} ${path} answered with a secret in it: ${leaked.join(', ')}`);
    }
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, text };
  };
}

export interface PolicyHead {
  /** Listeners besides the API; PostgreSQL is off unless named. */
  readonly listen: readonly string[];
  /** Default: a SQLite file in the directory. */
  readonly store?: string;
  /** Top-level YAML between `store:` and `identities:` (e.g. a `tls:` block). */
  readonly top?: string;
  /** More YAML inside `identities:` (two-space indent), e.g. an `oidc:` list. */
  readonly identities?: string;
}

export interface StartOptions {
  /** Log at debug level into gateway.log, which close() scans for secrets along with every other file. */
  readonly debugLog?: boolean;
  readonly listen?: GatewayOptions['listen'];
}

export interface PolicyDir<P extends string> {
  readonly dir: string;
  readonly policyFile: string;
  readonly storeFile: string;
  readonly tokens: Record<P, string>;
  /** Every credential written here, by label (the tokens and what secret() was given a label for). */
  readonly secrets: Readonly<Record<string, string>>;
  /** `identities: tokens:` items, one a principal, each token by `${file:...}` reference. */
  readonly identityLines: string;
  /** Writes secrets/NAME (mode 0600); with a label, the value is scanned for as a secret too. */
  secret(name: string, value: string, label?: string): void;
  /** Writes the policy file: the shared head, then `rest` (connections, rules, anything else). */
  writePolicy(head: PolicyHead, rest: string): void;
  /** Starts a gateway on the policy file; the directory goes if it fails to start. */
  start(opts?: StartOptions): Promise<Gateway>;
  /** The API of a gateway started here, as these principals, scanning answers when `scan`. */
  api(gateway: Gateway, scan?: boolean): ApiCall<P | (string & {})>;
  /**
   * Closes the gateway (once) and removes the directory; with `scan`, first fails if any file the
   * gateway wrote holds a secret.
   */
  close(gateway: Gateway, scan?: boolean): Promise<void>;
  remove(): void;
}

export function apiUrlOf(gateway: Gateway): string {
  return gateway.api.url.replace(/\/$/, '');
}

export function makePolicyDir<M extends Readonly<Record<string, Principal>>>(
  prefix: string,
  principals: M,
): PolicyDir<keyof M & string> {
  type P = keyof M & string;
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const policyFile = join(dir, 'airlock.yaml');
  const tokens = {} as Record<P, string>;
  const secrets: Record<string, string> = {};
  const lines: string[] = [];
  for (const [name, p] of Object.entries(principals) as [P, Principal][]) {
    tokens[name] = `alk_test_${name}_${randomBytes(24).toString('base64url')}`;
    secrets[`${name}'s token`] = tokens[name];
    writeFileSync(join(dir, 'secrets', `${name}.token`), `${tokens[name]}\n`, { mode: 0o600 });
    lines.push(
      `    - { name: ${name}, token: "\${file:./secrets/${name}.token}", kind: ${p.kind}, groups: [${p.groups.join(', ')}] }`,
    );
  }
  const identityLines = lines.join('\n');
  const remove = () => rmSync(dir, { recursive: true, force: true });
  let closed = false;
  return {
    dir,
    policyFile,
    storeFile: join(dir, 'data', 'airlock.db'),
    tokens,
    secrets,
    identityLines,
    secret(name, value, label) {
      writeFileSync(join(dir, 'secrets', name), value, { mode: 0o600 });
      if (label !== undefined) secrets[label] = value.trim();
    },
    writePolicy(head, rest) {
      const listen = [
        '  api: 127.0.0.1:0',
        `  postgres: ${head.listen.includes('postgres') ? '127.0.0.1:0' : 'false'}`,
        ...head.listen.filter((l) => l !== 'postgres').map((l) => `  ${l}: 127.0.0.1:0`),
      ];
      writeFileSync(
        policyFile,
        `listen:
${listen.join('\n')}
store: ${head.store ?? 'sqlite:./data/airlock.db'}
${head.top ?? ''}
identities:
  tokens:
${identityLines}
${head.identities ?? ''}

${rest}
`,
      );
    },
    async start(opts = {}) {
      try {
        return await startGateway({
          policy: loadPolicyFile(policyFile),
          ...(opts.listen === undefined ? {} : { listen: opts.listen }),
          ...(opts.debugLog
            ? {
                logger: pino(
                  { level: 'debug' },
                  pino.destination({ dest: join(dir, 'gateway.log'), sync: true }),
                ),
              }
            : {}),
        });
      } catch (err) {
        remove();
        throw err;
      }
    },
    api: (gateway, scan = false) => apiCaller(apiUrlOf(gateway), tokens, scan ? secrets : undefined),
    async close(gateway, scan = false) {
      if (closed) return;
      closed = true;
      try {
        await gateway.close();
        if (scan) {
          const leaks = findLeaks(
            dir,
            secrets,
            (path) => path === join(dir, 'secrets') || path === policyFile,
          );
          if (leaks.length > 0)
            throw new Error(
              `secrets leaked into the gateway's files: ${leaks.map((l) => `${l.secret} in ${l.where}`).join('; ')}`,
            );
        }
      } finally {
        remove();
      }
    },
    remove,
  };
}
