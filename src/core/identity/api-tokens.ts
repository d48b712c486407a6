/**
 * API tokens kept in the store: for service accounts and for people who want a token of their
 * own (narrower than themselves). The token is shown once, at creation; the store keeps its
 * SHA-256 (256 random bits, so a slow hash buys nothing). Tokens may expire and may be scoped
 * to connections.
 *
 * Who may do what: members of a token-admin group create tokens for any name with any groups,
 * and see and revoke every token. Anyone else creates tokens only for themselves, with their
 * own kind and a subset of their own groups, and sees and revokes only those.
 */
import { randomBytes } from 'node:crypto';
import type { Principal, PrincipalKind } from '../action.ts';
import { AirlockError } from '../errors.ts';
import type { ApiTokenRecord, Store } from '../store.ts';
import type { AuthContext } from './authenticator.ts';
import { generateToken, hashToken } from './tokens.ts';

export interface NewApiToken {
  /** The principal the token stands for; defaults to the creator. */
  readonly name?: string | undefined;
  readonly kind?: PrincipalKind | undefined;
  readonly groups?: readonly string[] | undefined;
  readonly connections?: readonly string[] | undefined;
  readonly description?: string | undefined;
  /** Lifetime in milliseconds; undefined: no expiry. */
  readonly ttlMs?: number | undefined;
}

/** What lists and API answers show: never the hash. */
export type ApiTokenView = Omit<ApiTokenRecord, 'hash'>;

export function tokenView(t: ApiTokenRecord): ApiTokenView {
  const { hash: _hash, ...view } = t;
  return view;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

export class ApiTokens {
  readonly #store: Store;
  /** Principals this class vouched for, and the token behind each (see create()). */
  readonly #issued = new WeakMap<Principal, ApiTokenRecord>();
  readonly #admins: ReadonlySet<string>;
  readonly #now: () => number;

  constructor(store: Store, opts: { admins?: readonly string[]; now?: () => number } = {}) {
    this.#store = store;
    this.#admins = new Set(opts.admins ?? ['admins']);
    this.#now = opts.now ?? Date.now;
  }

  isAdmin(p: Principal): boolean {
    return p.groups.some((g) => this.#admins.has(g));
  }

  /** Returns the token itself once; only its hash is stored. */
  async create(creator: Principal, input: NewApiToken): Promise<{ token: string; record: ApiTokenView }> {
    const admin = this.isAdmin(creator);
    const name = input.name ?? creator.name;
    if (!NAME.test(name))
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `"${name.slice(0, 140)}" is not a token name`, {
        hint: 'use letters, digits and - _ . : @ (at most 128)',
      });
    if (name !== creator.name && !admin)
      throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${creator.name} may only create tokens for itself`, {
        hint: `members of ${[...this.#admins].join(', ')} create tokens for service accounts`,
      });
    const kind = input.kind ?? (name === creator.name ? creator.kind : 'service');
    if (!admin && kind !== creator.kind)
      throw new AirlockError(
        'AIRLOCK_E_FORBIDDEN',
        `${creator.name} may not create a token of kind ${kind}`,
        {
          hint: `a token of your own has your kind (${creator.kind})`,
        },
      );
    const groups = [...new Set(input.groups ?? (name === creator.name ? creator.groups : []))];
    if (!admin) {
      const extra = groups.filter((g) => !creator.groups.includes(g));
      if (extra.length > 0)
        throw new AirlockError('AIRLOCK_E_FORBIDDEN', `${creator.name} is not in ${extra.join(', ')}`, {
          hint: 'a token of your own can carry only groups you are in',
        });
    }
    if (input.ttlMs !== undefined && (!Number.isSafeInteger(input.ttlMs) || input.ttlMs <= 0))
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'the token lifetime must be a positive duration');
    const now = this.#now();
    // A token made with a token never outlives or widens it: otherwise an expiring or
    // connection-scoped token could mint itself an unlimited successor.
    const parent = this.#issued.get(creator);
    let expiresAt = input.ttlMs === undefined ? undefined : now + input.ttlMs;
    let connections =
      input.connections && input.connections.length > 0 ? [...new Set(input.connections)] : undefined;
    if (parent && !admin) {
      if (parent.expiresAt !== undefined)
        expiresAt = Math.min(expiresAt ?? parent.expiresAt, parent.expiresAt);
      if (parent.connections !== undefined) {
        const allowed = parent.connections;
        const outside = (connections ?? []).filter((c) => !allowed.includes(c));
        if (outside.length > 0)
          throw new AirlockError('AIRLOCK_E_FORBIDDEN', `this token is not valid for ${outside.join(', ')}`, {
            hint: `a token made with it is limited to ${allowed.join(', ')}`,
          });
        connections ??= [...allowed];
      }
    }
    const token = generateToken();
    const record: ApiTokenRecord = {
      id: `tok_${randomBytes(9).toString('base64url')}`,
      name,
      kind,
      groups,
      connections,
      description: input.description?.trim() || undefined,
      createdBy: creator.name,
      createdAt: now,
      expiresAt,
      hash: hashToken(token),
    };
    await this.#store.createApiToken(record);
    return { token, record: tokenView(record) };
  }

  async list(viewer: Principal): Promise<ApiTokenView[]> {
    const all = await this.#store.listApiTokens(this.isAdmin(viewer) ? {} : { name: viewer.name });
    return all.map(tokenView);
  }

  async revoke(viewer: Principal, id: string): Promise<ApiTokenView> {
    const mine = (await this.#store.listApiTokens(this.isAdmin(viewer) ? {} : { name: viewer.name })).find(
      (t) => t.id === id,
    );
    // Same answer for "not yours" and "does not exist".
    if (!mine)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', `there is no token ${id.slice(0, 64)} you can revoke`, {
        hint: 'list your tokens with `airlock tokens list`',
        status: 404,
      });
    const after = await this.#store.revokeApiToken(id, this.#now(), viewer.name);
    return tokenView(after ?? mine);
  }

  /**
   * The principal of a stored token, or undefined when no stored token has this hash (the
   * caller then tries other kinds of credential). Revoked, expired and out-of-scope tokens throw.
   */
  async authenticate(token: string, ctx: AuthContext = {}): Promise<Principal | undefined> {
    return this.#principalOf(await this.#store.findApiToken(hashToken(token)), ctx);
  }

  /**
   * The principal of the stored token with this SHA-256, if it is still good (not revoked, not
   * expired); for sessions that keep the hash instead of the token.
   */
  async principalForHash(hash: string): Promise<Principal | undefined> {
    const t = await this.#store.findApiToken(hash);
    try {
      return this.#principalOf(t, {});
    } catch {
      return undefined;
    }
  }

  #principalOf(t: ApiTokenRecord | undefined, ctx: AuthContext): Principal | undefined {
    if (!t) return undefined;
    if (t.revokedAt !== undefined)
      throw new AirlockError('AIRLOCK_E_TOKEN_REVOKED', `the API token ${t.id} (${t.name}) was revoked`, {
        hint: 'ask for a new token, or create one with `airlock tokens create`',
      });
    if (t.expiresAt !== undefined && t.expiresAt <= this.#now())
      throw new AirlockError(
        'AIRLOCK_E_TOKEN_EXPIRED',
        `the API token ${t.id} (${t.name}) expired at ${new Date(t.expiresAt).toISOString()}`,
        { hint: 'create a new one with `airlock tokens create`' },
      );
    if (
      t.connections !== undefined &&
      ctx.connection !== undefined &&
      !t.connections.includes(ctx.connection)
    )
      throw new AirlockError(
        'AIRLOCK_E_TOKEN_SCOPE',
        `the API token ${t.id} (${t.name}) is not valid for connection "${ctx.connection}"`,
        { hint: `it is scoped to ${t.connections.join(', ')}` },
      );
    const principal: Principal = { name: t.name, kind: t.kind, groups: t.groups };
    this.#issued.set(principal, t);
    return principal;
  }
}
